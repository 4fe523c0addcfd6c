"""The scheduler: the timeout sweep and the lease, against moto (the simulated provider for batches)."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from jobsvc import batches, jobs, scheduler
from jobsvc.storage import batches as batch_store
from jobsvc.storage import layout
from jobsvc.auth import Actor
from jobsvc.schemas import BatchCreate, JobCreate, JobUpdate
from jobsvc.timeutil import now

A, B = Actor("org-a", "u"), Actor("org-b", "u")


def later(monkeypatch, seconds: int) -> None:
    """Run the sweep as if ``seconds`` had passed."""
    moment = now() + timedelta(seconds=seconds)
    monkeypatch.setattr(scheduler, "now", lambda: moment)
    monkeypatch.setattr(scheduler, "epoch", lambda: int(moment.timestamp()))


def status(actor, job):
    got = jobs.get_job(actor, job["id"])
    return got["status"], got["stop_reason"]


def test_sweep_expires_and_fails_the_right_jobs_and_no_others(table, monkeypatch):
    make = lambda actor=A, **body: jobs.create_job(actor, JobCreate(**body))[0]  # noqa: E731
    created_due = make(expires_in_seconds=3600)
    pending_due = make(status="pending", expires_in_seconds=3600)
    other_org_due = make(B, expires_in_seconds=3600)
    created_later = make(expires_in_seconds=86400)
    running_long_ago = make(status="running", heartbeat_timeout_seconds=60)
    running_patient = make(status="running", heartbeat_timeout_seconds=86400)
    running_without_heartbeat = make(status="running", expires_in_seconds=60)
    promoted = make(expires_in_seconds=3600)
    jobs.update_job(A, promoted["id"], JobUpdate(status="pending"))
    jobs.update_job(A, promoted["id"], JobUpdate(status="running"))  # running: no longer expires
    done = make(status="running", heartbeat_timeout_seconds=60)
    jobs.update_job(A, done["id"], JobUpdate(status="completed"))

    later(monkeypatch, 2 * 3600)
    report = scheduler.RunReport(ran=True)
    scheduler.sweep(report, lambda: True)

    assert status(A, created_due) == ("expired", "timeout")
    assert status(A, pending_due) == ("expired", "timeout")
    assert status(B, other_org_due) == ("expired", "timeout")
    assert status(A, running_long_ago) == ("failed", "heartbeat_timeout")
    for job in (created_later, running_patient, running_without_heartbeat):
        assert status(A, job)[0] in ("created", "running") and status(A, job)[1] is None
    assert status(A, promoted) == ("running", None)
    assert status(A, done) == ("completed", None)
    assert (report.expired, report.heartbeat_failed) == (3, 1)
    assert jobs.get_job(A, created_due["id"])["completed_at"] is not None


def test_a_heartbeat_keeps_a_running_job_alive(table, monkeypatch):
    job = jobs.create_job(A, JobCreate(status="running", heartbeat_timeout_seconds=60))[0]
    later(monkeypatch, 50)
    jobs_now = now() + timedelta(seconds=50)
    monkeypatch.setattr(jobs, "now", lambda: jobs_now)
    jobs.update_job(A, job["id"], JobUpdate(metadata={"progress": 1}))  # a heartbeat at +50 s
    later(monkeypatch, 100)  # 50 s after the heartbeat: not due
    scheduler.sweep(scheduler.RunReport(ran=True), lambda: True)
    assert status(A, job) == ("running", None)
    later(monkeypatch, 111)
    scheduler.sweep(scheduler.RunReport(ran=True), lambda: True)
    assert status(A, job) == ("failed", "heartbeat_timeout")


def test_the_sweep_reads_indexes_not_the_table(table, monkeypatch):
    from local.counting import count_dynamodb_requests

    for _ in range(30):
        jobs.create_job(A, JobCreate(expires_in_seconds=86400))
    with count_dynamodb_requests() as calls:
        scheduler.sweep(scheduler.RunReport(ran=True), lambda: True)
    assert "Scan" not in calls
    assert calls == ["Query"] * layout.DUE_SHARDS  # nothing due: one Query per shard of the due index


def test_overlapping_runs_poll_each_batch_once(table, monkeypatch):
    made = [batches.create_batch(A, BatchCreate(provider="simulated", requests=[{"custom_id": "x", "params": {}}]))[0] for _ in range(3)]
    entered, release = threading.Event(), threading.Event()
    real_poll = batches.poll

    def slow_poll(*args):
        entered.set()
        release.wait(10)
        return real_poll(*args)

    monkeypatch.setattr(batches, "poll", slow_poll)
    reports = {}
    first = threading.Thread(target=lambda: reports.setdefault("first", scheduler.run(lambda: 60_000, "run-1")))
    first.start()
    assert entered.wait(10)
    reports["second"] = scheduler.run(lambda: 60_000, "run-2")  # overlaps the first
    release.set()
    first.join(10)
    assert reports["second"].ran is False and reports["second"].lease_holder == "run-1"
    assert reports["first"].ran is True and reports["first"].polled == 3
    for batch in made:
        assert batch_store.simulated_batch(batch["provider_batch_id"])["polls"] == 1
    # the lease was released: the next run goes ahead
    assert scheduler.run(lambda: 60_000, "run-3").ran is True


def test_a_crashed_runs_retry_takes_its_lease_over_at_once(table):
    """A run that dies holding the lease blocks other runs until the lease runs out; Lambda
    retries the crashed (asynchronous) invocation with the same request id, and that retry
    takes the lease over at once."""
    from jobsvc.storage import access

    started = int(time.time())
    assert access.take_lease(scheduler.LEASE, "crashed-run", started, started + 330) is None  # then it dies
    assert scheduler.run(lambda: 60_000, "next-scheduled-run").ran is False
    assert scheduler.run(lambda: 60_000, "crashed-run").ran is True  # its retry
    assert scheduler.run(lambda: 60_000, "next-scheduled-run").ran is True  # released at the retry's end


def test_a_run_near_its_timeout_leaves_work_for_the_next(table):
    for _ in range(4):
        batches.create_batch(A, BatchCreate(provider="simulated", requests=[{"custom_id": "x", "params": {}}]))
    report = scheduler.run(lambda: 1_000, "short-run")  # less than the reserve left
    assert report.ran and report.polled == 0 and report.left_for_next_run == 4
    assert scheduler.run(lambda: 60_000, "next-run").polled == 4


def test_a_simulated_batch_ends_with_items_and_the_right_status(table):
    batch, _ = batches.create_batch(A, BatchCreate(provider="simulated", requests=[
        {"custom_id": "ok", "params": {}},
        {"custom_id": "bad", "params": {"simulate": "errored"}},
        {"custom_id": "late", "params": {"simulate": "expired"}},
    ]))
    assert batch["status"] == "running" and batch["request_counts"]["processing"] == 3
    outcomes = [scheduler.run(lambda: 60_000, f"r{i}") for i in range(3)]
    assert [o.still_running for o in outcomes] == [1, 1, 0] and outcomes[2].ended == {"completed": 1}
    done = batches.get_batch(A, batch["id"])
    assert done["status"] == "completed" and done["request_counts"] == {
        "processing": 0, "succeeded": 1, "errored": 1, "canceled": 0, "expired": 1,
    }
    items = batches.list_items(A, batch["id"]).items
    assert [(i["custom_id"], i["status"]) for i in items] == [("bad", "failed"), ("late", "expired"), ("ok", "completed")]
    assert [i["custom_id"] for i in batches.list_items(A, batch["id"], after="bad", limit=1).items] == ["late"]
    assert scheduler.run(lambda: 60_000, "after").polled == 0  # no longer in the polling index


@pytest.mark.parametrize("outcome,expected", [("expired", "expired"), ("canceled", "completed")])
def test_every_item_expired_means_expired(table, outcome, expected):
    batch, _ = batches.create_batch(A, BatchCreate(provider="simulated", requests=[
        {"custom_id": f"r{i}", "params": {"simulate": outcome}} for i in range(3)
    ]))
    for i in range(3):
        scheduler.run(lambda: 60_000, f"r{i}")
    assert batches.get_batch(A, batch["id"])["status"] == expected


def test_a_cancelled_simulated_batch_ends_cancelled(table):
    batch, _ = batches.create_batch(A, BatchCreate(provider="simulated", requests=[{"custom_id": "a", "params": {}}]))
    answer = batches.cancel_batch(A, batch["id"])
    assert answer["cancel_requested"] is True and answer["status"] == "running"
    report = scheduler.run(lambda: 60_000, "r")
    assert report.ended == {"cancelled": 1}
    done = batches.get_batch(A, batch["id"])
    assert done["status"] == "cancelled" and done["request_counts"]["canceled"] == 1
    assert [i["status"] for i in batches.list_items(A, batch["id"]).items] == ["cancelled"]
