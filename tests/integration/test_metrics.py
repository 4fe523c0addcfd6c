"""The metrics the functions emit (CloudWatch embedded metric format on stdout), for a known
workload: names, dimensions and values, as the dashboard and the alarms read them."""
from __future__ import annotations

import json
from collections import Counter

from jobsvc import jobs, scheduler, webhooks
from jobsvc.auth import Actor
from jobsvc.schemas import JobCreate, JobUpdate

A = Actor("org-metrics", "user-m")


def emitted(out: str) -> Counter:
    """(name, dimensions) -> summed value, from the EMF lines printed."""
    found: Counter = Counter()
    for line in out.splitlines():
        if not line.startswith("{") or "_aws" not in line:
            continue
        blob = json.loads(line)
        meta = blob["_aws"]["CloudWatchMetrics"][0]
        assert meta["Namespace"] == "JobLifecycle"
        (dimension_set,) = meta["Dimensions"]
        for metric in meta["Metrics"]:
            dims = tuple(sorted((d, blob[d]) for d in dimension_set if d != "service"))
            assert "service" in dimension_set
            value = blob[metric["Name"]]
            found[(metric["Name"], dims)] += sum(value) if isinstance(value, list) else value
    return found


def test_jobs_and_transitions_are_counted_by_status_and_type(table, capsys, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "JobLifecycle")
    capsys.readouterr()
    for job_type in ("job", "run", "run"):
        job, _ = jobs.create_job(A, JobCreate(job_type=job_type, status="running"))
        jobs.update_job(A, job["id"], JobUpdate(metadata={"beat": 1}))  # a heartbeat: not a transition
        jobs.update_job(A, job["id"], JobUpdate(status="running"))  # the same status: not a transition
        jobs.update_job(A, job["id"], JobUpdate(status="completed" if job_type == "run" else "failed"))
        jobs.update_job(A, job["id"], JobUpdate(status="completed" if job_type == "run" else "failed"))  # a retry
    cancelled, _ = jobs.create_job(A, JobCreate())
    jobs.cancel_job(A, cancelled["id"])
    found = emitted(capsys.readouterr().out)
    assert found[("JobsCreated", (("job_type", "job"),))] == 2
    assert found[("JobsCreated", (("job_type", "run"),))] == 2
    transitions = {dims: n for (name, dims), n in found.items() if name == "Transitions"}
    assert transitions == {
        (("job_type", "run"), ("status", "completed")): 2,
        (("job_type", "job"), ("status", "failed")): 1,
        (("job_type", "job"), ("status", "cancelled")): 1,
    }
    timings = [dims for (name, dims) in found if name == "ProcessingTime"]
    assert sorted(timings) == sorted(transitions)


def test_webhook_attempts_are_counted_by_failure_class(webhook_env, capsys, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "JobLifecycle")
    webhook_env.receiver.behaviour = lambda path, n: {"/a": 200, "/b": 503, "/c": 404}[path]
    tasks = []
    for path in ("/a", "/b", "/c"):
        job, _ = jobs.create_job(A, JobCreate(status="running", callback_url=webhook_env.receiver.url(path)))
        tasks.append(webhooks.task_for(jobs.update_job(A, job["id"], JobUpdate(status="completed"))))
    capsys.readouterr()
    for task in tasks:
        webhooks.deliver(task)
    found = emitted(capsys.readouterr().out)
    assert found[("WebhookAttempts", ())] == 3 and found[("WebhookDelivered", ())] == 1
    assert found[("WebhookFailures", (("class", "http_5xx"),))] == 1
    assert found[("WebhookFailures", (("class", "http_4xx"),))] == 1
    assert found[("WebhookLatency", ())] >= 0 and ("WebhookLatency", ()) in found


def test_the_sweep_reports_what_it_did(table, capsys, monkeypatch):
    from datetime import timedelta

    from jobsvc.timeutil import now

    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "JobLifecycle")
    jobs.create_job(A, JobCreate(expires_in_seconds=60))
    jobs.create_job(A, JobCreate(status="running", heartbeat_timeout_seconds=10))
    later = now() + timedelta(seconds=120)
    monkeypatch.setattr(scheduler, "now", lambda: later)
    monkeypatch.setattr(scheduler, "epoch", lambda: int(later.timestamp()))
    capsys.readouterr()
    scheduler.run(lambda: 60_000, "metrics-run")
    found = emitted(capsys.readouterr().out)
    assert found[("SweepExpired", ())] == 1 and found[("SweepHeartbeatFailed", ())] == 1
    assert found[("Transitions", (("job_type", "job"), ("status", "expired")))] == 1
