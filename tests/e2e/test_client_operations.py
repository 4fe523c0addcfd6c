"""The client and the `jobs` command on the operations of contract sections 1 and 9: lists paged
with a ``Link`` header, the ``updated_before`` filter (stuck jobs), job history, stats, bulk
cancel and callback recovery.

These need routes and list features that the service is gaining as this is written
(``GET /v1/jobs/{id}/history``, ``GET /v1/stats``, ``POST /v1/jobs/cancel``,
``POST /v1/callbacks/recover``, ``Link`` on lists, ``updated_before``): until they land, the
tests of this file fail.
"""
from __future__ import annotations

import json

from tests.client.e2e_fixtures import client_env, client_venv, jobs_cmd, py  # noqa: F401  (fixtures)


def test_lists_are_followed_through_their_link_header(py, api, tag):
    ids = [api.create(metadata={"source_id": tag})["id"] for _ in range(7)]
    result = py("""
        import requests
        from jobsvc_client import Client
        session = requests.Session()
        pages = []
        session.hooks["response"].append(lambda r, *a, **k: pages.append({"url": r.url, "link": r.headers.get("Link")}))
        c = Client(session=session)
        print(json.dumps({"ids": [j["id"] for j in c.list_jobs(source_id=ARGS["tag"], limit=3)], "pages": pages}))
    """, tag=tag)
    assert result["ids"] == ids[::-1]  # every job, in order, each once
    pages = result["pages"]
    assert len(pages) >= 3  # pages of at most 3
    assert pages[0]["link"] and 'rel="next"' in pages[0]["link"]
    assert pages[-1]["link"] is None or 'rel="next"' not in pages[-1]["link"]


def test_updated_before_and_jobs_stuck(py, jobs_cmd, api, tag):
    older = api.create(status="running", metadata={"source_id": tag})
    newer = api.create(status="running", metadata={"source_id": tag})
    assert older["last_updated_at"] < newer["created_at"]
    result = py("""
        from datetime import datetime, timedelta, timezone
        from jobsvc_client import Client
        c = Client()
        tag, cutoff = ARGS["tag"], ARGS["cutoff"]
        listed = lambda when: [j["id"] for j in c.list_jobs(status="running", source_id=tag, updated_before=when)]
        before = listed(cutoff)
        c.update_job(ARGS["older"], metadata={"beat": 1})  # a heartbeat: now updated after the cutoff
        after = listed(cutoff)
        later = listed(datetime.now(timezone.utc) + timedelta(hours=1))
        print(json.dumps({"before": before, "after": after, "later": later}))
    """, tag=tag, cutoff=newer["created_at"], older=older["id"])
    assert result["before"] == [older["id"]]
    assert result["after"] == []
    assert sorted(result["later"]) == sorted([older["id"], newer["id"]])

    done = jobs_cmd("stuck", "--older-than", "1h", "--source-id", tag, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []  # both were updated within the hour


def test_history_of_a_job(py, jobs_cmd, keys, tag):
    result = py("""
        from jobsvc_client import Client
        c = Client()
        job = c.create_job(metadata={"source_id": ARGS["tag"]})
        c.update_job(job["id"], status="pending")
        c.update_job(job["id"], status="running")
        c.update_job(job["id"], metadata={"step": 1})  # a heartbeat: not a transition
        c.update_job(job["id"], status="completed")
        with c.track(heartbeat_timeout_seconds=None) as t:
            pass
        print(json.dumps({"id": job["id"], "history": c.history(job["id"]), "tracked": c.history(t.job_id), "tracked_id": t.job_id}))
    """, tag=tag)
    history = result["history"]
    assert [(h["from"], h["status"]) for h in history] == [
        (None, "created"), ("created", "pending"), ("pending", "running"), ("running", "completed"),
    ]
    assert {h["actor"] for h in history} == {f"user:{keys['a'][2]}"}
    assert [h["at"] for h in history] == sorted(h["at"] for h in history)
    assert [h["status"] for h in result["tracked"]] == ["running", "completed"]

    done = jobs_cmd("history", result["id"])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["AT", "FROM", "STATUS", "ACTOR", "STOP_REASON"]
    assert [line.split()[2] for line in lines[1:]] == ["created", "pending", "running", "completed"]
    done = jobs_cmd("history", result["id"], "--json")
    assert [h["status"] for h in json.loads(done.stdout)] == ["created", "pending", "running", "completed"]


def test_stats(py, jobs_cmd):
    result = py("""
        from jobsvc_client import Client
        c = Client()
        job = c.create_job(job_type="run", status="running")
        c.update_job(job["id"], status="completed")
        print(json.dumps({"all": c.stats(), "runs": c.stats(hours=1, job_type="run")}))
    """)
    statuses = {"created", "pending", "running", "completed", "failed", "cancelled", "expired"}
    for stats in (result["all"], result["runs"]):
        assert set(stats["counts"]) == statuses and all(isinstance(v, int) for v in stats["counts"].values())
        window = stats["window"]
        assert {"since", "until", "created", "completed", "failed", "cancelled", "expired", "completion_rate",
                "avg_processing_ms", "callbacks"} <= set(window)
    assert result["runs"]["window"]["completed"] >= 1 and result["runs"]["window"]["created"] >= 1

    done = jobs_cmd("stats", "--hours", "1", "--type", "run")
    assert done.returncode == 0, done.stderr
    assert "completion rate" in done.stdout and "STATUS" in done.stdout
    done = jobs_cmd("stats", "--json")
    assert set(json.loads(done.stdout)["counts"]) == statuses


def test_bulk_cancel(py, api, tag):
    active = [api.create(metadata={"source_id": tag}, status=s)["id"] for s in ("created", "pending", "running")]
    finished = api.drive("completed", metadata={"source_id": tag})["id"]
    result = py("""
        from jobsvc_client import Client
        c = Client()
        calls = [c.bulk_cancel(source_id=ARGS["tag"], limit=2)]
        while calls[-1]["more"] and len(calls) < 10:
            calls.append(c.bulk_cancel(source_id=ARGS["tag"], limit=2))
        calls.append(c.bulk_cancel(source_id=ARGS["tag"]))  # nothing left
        print(json.dumps(calls))
    """, tag=tag)
    assert len(result[0]["cancelled"]) == 2 and result[0]["more"] is True
    cancelled = [job_id for call in result[:-1] for job_id in call["cancelled"]]
    assert sorted(cancelled) == sorted(active)
    assert result[-1] == {"cancelled": [], "more": False}
    for job_id in active:
        job = api.job(job_id)
        assert (job["status"], job["stop_reason"]) == ("cancelled", "cancelled")
    assert api.job(finished)["status"] == "completed"


def test_recover_callbacks(py):
    result = py("""
        from datetime import datetime, timedelta, timezone
        from jobsvc_client import Client
        now = datetime.now(timezone.utc)
        print(json.dumps(Client().recover_callbacks(now - timedelta(hours=1), until=now)))
    """)
    assert isinstance(result["queued"], int) and result["queued"] >= 0
