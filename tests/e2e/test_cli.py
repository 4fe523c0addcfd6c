"""The `jobs` command, installed in a fresh virtual environment, against the local stack."""
from __future__ import annotations

import json
import signal

from tests.client.e2e_fixtures import background, client_env, client_venv, jobs_cmd  # noqa: F401  (fixtures)
from tests.client.support import free_port, wait_for


def make_jobs(api, tag: str, n: int, **create) -> list[str]:
    return [api.create(metadata={"source_id": tag}, **create)["id"] for _ in range(n)]


def test_list_json_table_and_limit(jobs_cmd, api, tag):
    ids = make_jobs(api, tag, 4, job_type="run")
    api.patch_ok(ids[0], status="pending")

    done = jobs_cmd("list", "--source-id", tag, "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [j["id"] for j in listed] == ids[::-1]

    done = jobs_cmd("list", "--source-id", tag, "--limit", "2", "--json")
    assert [j["id"] for j in json.loads(done.stdout)] == ids[::-1][:2]

    done = jobs_cmd("list", "--source-id", tag, "--status", "pending", "--type", "run", "--json")
    assert [j["id"] for j in json.loads(done.stdout)] == [ids[0]]

    done = jobs_cmd("list", "--source-id", tag)
    assert done.returncode == 0 and done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "TYPE", "CREATED", "UPDATED", "STOP_REASON", "SOURCE_ID"]
    assert [line.split()[0] for line in lines[1:]] == ids[::-1]
    status_column = lines[0].index("STATUS")
    assert [line[status_column:].split()[0] for line in lines[1:]] == ["created", "created", "created", "pending"]
    assert all(line.rstrip().endswith(tag) for line in lines[1:])


def test_get_and_cancel(jobs_cmd, api, tag):
    (job_id,) = make_jobs(api, tag, 1, status="running")
    done = jobs_cmd("get", job_id, "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["id"] == job_id
    done = jobs_cmd("get", job_id)
    fields = dict(line.split(None, 1) for line in done.stdout.splitlines())
    assert fields["id"] == job_id and fields["status"] == "running" and fields["metadata"] == json.dumps({"source_id": tag})

    done = jobs_cmd("cancel", job_id, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "cancelled"
    assert api.job(job_id)["stop_reason"] == "cancelled"

    # cancelling again: the API's 409, on stderr, exit 1
    done = jobs_cmd("cancel", job_id)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("error: 409 ") and done.stderr.count("\n") == 1


def test_errors_and_exit_codes(jobs_cmd, client_venv, stack):
    done = jobs_cmd("get", "job-01937000-0000-7000-8000-000000000000")
    assert done.returncode == 1 and done.stderr.startswith("error: 404 ")

    done = jobs_cmd("list", env=client_venv.env(stack["base"], "jsk_not_a_real_key_000000"))
    assert done.returncode == 1 and done.stderr.startswith("error: 401 ")

    done = jobs_cmd("list", env=client_venv.env(stack["base"], None))
    assert done.returncode == 2 and "JOBS_API_KEY" in done.stderr

    done = jobs_cmd("list", "--limit", "zero")
    assert done.returncode == 2 and "usage:" in done.stderr

    done = jobs_cmd("--url", f"http://127.0.0.1:{free_port()}", "list")
    assert done.returncode == 3 and done.stderr.startswith("error: cannot reach the API")

    done = jobs_cmd("--help")
    assert done.returncode == 0 and "exit codes:" in done.stdout


def test_stuck_lists_running_jobs_not_updated_lately(jobs_cmd, api, tag):
    (job_id,) = make_jobs(api, tag, 1, status="running")
    (other,) = make_jobs(api, tag, 1)  # not running: never listed

    def listed() -> list[dict]:
        done = jobs_cmd("stuck", "--older-than", "1s", "--source-id", tag, "--json")
        assert done.returncode == 0, done.stderr
        jobs = json.loads(done.stdout)
        return jobs if job_id in [j["id"] for j in jobs] else []

    jobs = wait_for(listed, timeout=60, every=0.5)  # once a second has gone by without an update
    assert jobs and [j["id"] for j in jobs] == [job_id] and other not in str(jobs)
    done = jobs_cmd("stuck", "--older-than", "1s", "--source-id", tag)
    assert done.stdout.splitlines()[1].startswith(job_id)
    # (that a job updated within the duration is left out needs the list's updated_before
    # filter: tests/e2e/test_client_operations.py)


def test_watch_redraws_until_ctrl_c(background, client_venv, api, tag):
    (job_id,) = make_jobs(api, tag, 1)
    watch = background([client_venv.jobs, "watch", "--interval", "0.2", "--source-id", tag])
    assert wait_frames(watch, job_id, 2)
    api.patch_ok(job_id, status="pending")
    assert wait_frames(watch, "pending", 1)
    watch.proc.send_signal(signal.SIGINT)
    assert watch.wait(timeout=30) == 0, watch.output()


def wait_frames(watch, text: str, n: int) -> bool:
    """Wait until ``n`` redraws of the table show ``text``."""
    return bool(wait_for(lambda: sum(text in frame for frame in "".join(watch.out).split("jobs watch")) >= n, timeout=60))
