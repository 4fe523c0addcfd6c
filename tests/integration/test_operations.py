"""Operations: transition history from every actor, bulk cancel, stats from the stream (a record
seen twice counts once), the poller's order and per-provider cap, and the webhook sender's one
deadline for a whole answer."""
from __future__ import annotations

from datetime import timedelta

import pytest

from jobsvc import batches, errors, jobs, scheduler, sender, stats, storage
from jobsvc.auth import Actor
from jobsvc.config import settings
from jobsvc.schemas import BatchCreate, BulkCancel, JobCreate, JobUpdate
from jobsvc.storage import batches as batch_store
from jobsvc.storage import jobs as store_jobs
from jobsvc.storage import layout
from jobsvc.timeutil import now
from tests.helpers import LambdaContext, load_function
from tests.integration.test_capacity import Stream
from tests.waiting import settle

A, B = Actor("org-ops", "user-o"), Actor("org-ops-other", "user-p")


def history(actor, job):
    return [(h["status"], h["from"], h["actor"], h["stop_reason"]) for h in jobs.history(actor, job["id"])]


# ---- history --------------------------------------------------------------------------


def test_history_records_every_status_entered_by_whom_and_nothing_else(table):
    job, _ = jobs.create_job(A, JobCreate())
    jobs.update_job(A, job["id"], JobUpdate(status="pending"))
    jobs.update_job(A, job["id"], JobUpdate(status="pending", metadata={"a": 1}))  # the same status: not a transition
    jobs.update_job(A, job["id"], JobUpdate(metadata={"b": 2}))  # a heartbeat: not a transition
    with pytest.raises(errors.InvalidTransition):
        jobs.update_job(A, job["id"], JobUpdate(status="completed"))  # refused: leaves no entry
    jobs.update_job(Actor(A.organization_id, "colleague"), job["id"], JobUpdate(status="running"))
    jobs.update_job(A, job["id"], JobUpdate(status="failed", stop_reason="oom"))
    jobs.update_job(A, job["id"], JobUpdate(status="failed"))  # a retried terminal status: no entry
    assert history(A, job) == [
        ("created", None, "user:user-o", None), ("pending", "created", "user:user-o", None),
        ("running", "pending", "user:colleague", None), ("failed", "running", "user:user-o", "oom"),
    ]
    at = [h["at"] for h in jobs.history(A, job["id"])]
    assert at == sorted(at) and at[-1] == jobs.get_job(A, job["id"])["completed_at"]
    with pytest.raises(errors.NotFound):
        jobs.history(B, job["id"])  # another organization's job does not exist for it


def test_the_sweep_and_the_poller_are_named_in_the_history(table, monkeypatch):
    expiring, _ = jobs.create_job(A, JobCreate(status="pending", expires_in_seconds=60))
    silent, _ = jobs.create_job(A, JobCreate(status="running", heartbeat_timeout_seconds=10))
    batch, _ = batches.create_batch(A, BatchCreate(provider="simulated", requests=[{"custom_id": "a", "params": {}}]))
    later = now() + timedelta(seconds=120)
    monkeypatch.setattr(scheduler, "now", lambda: later)
    monkeypatch.setattr(scheduler, "epoch", lambda: int(later.timestamp()))
    for i in range(3):
        scheduler.run(lambda: 60_000, f"run-{i}")
    assert history(A, expiring)[-1] == ("expired", "pending", "system:sweep", "timeout")
    assert history(A, silent)[-1] == ("failed", "running", "system:sweep", "heartbeat_timeout")
    assert history(A, batch) == [("running", None, "user:user-o", None), ("completed", "running", "system:poller", "provider_ended")]


# ---- stuck jobs -------------------------------------------------------------------------


def test_updated_before_with_status_running_lists_the_stuck_jobs(table, monkeypatch):
    stuck, _ = jobs.create_job(A, JobCreate(status="running"))
    moment = now() + timedelta(minutes=30)
    monkeypatch.setattr(jobs, "now", lambda: moment)  # everything from here happens 30 minutes later
    alive, _ = jobs.create_job(A, JobCreate(status="running"))
    jobs.update_job(A, alive["id"], JobUpdate(metadata={"beat": 1}))
    cutoff = (now() + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    listed = jobs.list_jobs(A, status="running", updated_before=cutoff)
    assert [j["id"] for j in listed.items] == [stuck["id"]]
    with pytest.raises(errors.InvalidInput):
        jobs.list_jobs(A, status="running", updated_before="yesterday")


# ---- bulk cancel ------------------------------------------------------------------------


def test_bulk_cancel_cancels_each_match_like_a_single_cancel_and_says_if_more_remain(table):
    mine = [jobs.create_job(A, JobCreate(status=s, metadata={"source_id": "wave"}))[0] for s in ("created", "pending", "running")] * 1
    mine += [jobs.create_job(A, JobCreate(metadata={"source_id": "wave"}))[0] for _ in range(3)]
    done, _ = jobs.create_job(A, JobCreate(status="running", metadata={"source_id": "wave"}))
    jobs.update_job(A, done["id"], JobUpdate(status="completed"))
    theirs, _ = jobs.create_job(B, JobCreate(metadata={"source_id": "wave"}))
    other, _ = jobs.create_job(A, JobCreate(metadata={"source_id": "calm"}))

    first = jobs.bulk_cancel(A, BulkCancel(source_id="wave", limit=4))
    assert len(first["cancelled"]) == 4 and first["more"] is True
    second = jobs.bulk_cancel(A, BulkCancel(source_id="wave"))
    assert len(second["cancelled"]) == 2 and second["more"] is False
    assert sorted(first["cancelled"] + second["cancelled"]) == sorted(j["id"] for j in mine)
    for job in mine:
        got = jobs.get_job(A, job["id"])
        assert got["status"] == "cancelled" and got["stop_reason"] == "cancelled"
        assert history(A, job)[-1][0] == "cancelled"
    assert jobs.get_job(A, done["id"])["status"] == "completed"
    assert jobs.get_job(B, theirs["id"])["status"] == "created"  # never another organization's
    assert jobs.get_job(A, other["id"])["status"] == "created"
    assert jobs.bulk_cancel(A, BulkCancel(source_id="wave")) == {"cancelled": [], "more": False}


def test_bulk_cancel_by_status_and_type_leaves_batches_to_their_own_route(table):
    run, _ = jobs.create_job(A, JobCreate(job_type="run", status="running"))
    job, _ = jobs.create_job(A, JobCreate(job_type="job", status="running"))
    batch, _ = batches.create_batch(A, BatchCreate(provider="simulated", requests=[{"custom_id": "a", "params": {}}]))
    assert jobs.bulk_cancel(A, BulkCancel(status="running", job_type="run"))["cancelled"] == [run["id"]]
    assert jobs.bulk_cancel(A, BulkCancel(status="running"))["cancelled"] == [job["id"]]
    assert batches.get_batch(A, batch["id"])["status"] == "running"


def test_bulk_cancel_created_before_reaches_old_jobs_under_many_newer_ones(table, monkeypatch):
    """"Cancel everything older than X" starts where X is, not at the newest job: newer
    jobs, however many, never stop it from reaching the old ones."""
    old = [jobs.create_job(A, JobCreate())[0] for _ in range(3)]
    cutoff = now() + timedelta(milliseconds=5)
    import time

    time.sleep(1.2)  # past the second of margin the scan starts with
    newer = [jobs.create_job(A, JobCreate())[0] for _ in range(30)]
    # one short page a call (really: 10 pages, each read through at most MAX_FETCHED entries)
    monkeypatch.setattr(jobs, "BULK_PAGES", 1)
    monkeypatch.setattr(store_jobs, "MAX_FETCHED", 8)
    got = jobs.bulk_cancel(A, BulkCancel(created_before=cutoff.isoformat().replace("+00:00", "Z"), limit=10))
    assert sorted(got["cancelled"]) == sorted(j["id"] for j in old)
    assert all(jobs.get_job(A, j["id"])["status"] == "created" for j in newer)


def test_bulk_cancel_needs_a_filter(table):
    jobs.create_job(A, JobCreate())
    with pytest.raises(errors.InvalidInput):
        jobs.bulk_cancel(A, BulkCancel())
    with pytest.raises(errors.InvalidInput):
        jobs.bulk_cancel(A, BulkCancel(created_before="not a time"))


# ---- stats ------------------------------------------------------------------------------


def test_stats_match_a_mixed_workload_even_when_records_come_twice(webhook_env):
    from jobsvc import webhooks

    stream = Stream()
    projector = load_function("projector")
    webhook_env.receiver.behaviour = lambda path, n: 200 if path == "/ok" else 500
    made = {}
    for i in range(12):
        job_type = "run" if i % 3 else "job"
        job, _ = jobs.create_job(A, JobCreate(job_type=job_type, status="running",
                                              callback_url=webhook_env.receiver.url("/ok" if i % 4 else "/bad")))
        made[job["id"]] = job_type
    ids = list(made)
    for job_id in ids[:5]:
        done = jobs.update_job(A, job_id, JobUpdate(status="completed"))
        webhooks.deliver(webhooks.task_for(done))
    for job_id in ids[5:7]:
        jobs.update_job(A, job_id, JobUpdate(status="failed"))
    jobs.cancel_job(A, ids[7])
    jobs.delete_job(A, ids[8])
    jobs.create_job(B, JobCreate())  # another organization's never counts
    records = stream.new()
    # the stream delivers at least once: the whole batch twice, and a part of it a third time
    for batch in (records, records, records[3:17]):
        projector.lambda_handler({"Records": batch}, LambdaContext())
    got = stats.read(A)
    assert got["counts"] == {"created": 0, "pending": 0, "running": 3, "completed": 5, "failed": 2,
                             "cancelled": 1, "expired": 0}
    window = got["window"]
    assert (window["created"], window["completed"], window["failed"], window["cancelled"]) == (12, 5, 2, 1)
    assert window["completion_rate"] == round(5 / 8, 4) and window["avg_processing_ms"] >= 0
    ok = sum(1 for job_id in ids[:5] if ids.index(job_id) % 4)
    assert window["callbacks"]["delivered"] == ok and window["callbacks"]["failed"] == 0
    runs = stats.read(A, job_type="run")
    assert runs["window"]["created"] == sum(1 for t in made.values() if t == "run")
    assert stats.read(B)["counts"]["created"] == 1 and stats.read(B)["window"]["completed"] == 0


def test_a_stats_read_is_a_bounded_number_of_requests(table):
    from tests.helpers import count_dynamodb_requests

    for _ in range(5):
        jobs.create_job(A, JobCreate())
    with count_dynamodb_requests() as calls:
        stats.read(A, hours=720)
    assert sorted(calls) == ["GetItem", "Query"]


def test_the_projector_writes_each_counter_item_once_per_batch_whatever_the_partitions(table):
    """An organization's counters are one partition: a batch holding records of all its job
    partitions writes each counter item it touches once (the count item, the hour's item)."""
    stream = Stream()
    projector = load_function("projector")
    made = [jobs.create_job(A, JobCreate(status="running"))[0] for _ in range(24)]
    assert len({layout.job_shard(job["id"]) for job in made}) == layout.JOB_SHARDS
    for job in made:
        jobs.update_job(A, job["id"], JobUpdate(status="completed"))
    records = stream.new()
    written: list[tuple[str, str]] = []

    def listener(stage, operation, params):  # params: the request as sent
        if stage == "before" and operation == "UpdateItem":
            written.append((params["Key"]["pk"]["S"], params["Key"]["sk"]["S"]))

    with storage.watching(listener):
        projector.lambda_handler({"Records": records}, LambdaContext())
    assert len(written) == len(set(written)) and {pk for pk, _ in written} == {f"STATS#{A.organization_id}"}
    assert len(written) <= 3  # COUNTS and the hour's item (two hours if the batch spans one's end)
    assert stats.read(A)["counts"]["completed"] == 24


# ---- the poller's order and cap ---------------------------------------------------------


def test_the_least_recently_polled_batches_go_first_and_each_provider_is_capped(table, monkeypatch):
    monkeypatch.setenv("POLL_MAX_PER_PROVIDER", "2")
    monkeypatch.setenv("SIMULATED_POLLS_TO_FINISH", "10")
    settings.cache_clear()
    made = [batches.create_batch(A, BatchCreate(provider="simulated", requests=[{"custom_id": "a", "params": {}}]))[0]
            for _ in range(5)]
    for i in range(3):
        report = scheduler.run(lambda: 60_000, f"run-{i}")
        assert report.polled == 2 and report.capped == {"simulated": 3}
    polls = [batch_store.simulated_batch(b["provider_batch_id"])["polls"] for b in made]
    assert sorted(polls) == [1, 1, 1, 1, 2]  # 6 polls over 5 batches: nobody polled twice before all once


def test_the_polling_index_is_read_past_its_pages(table):
    """A shard of the polling index read in pages (here one entry a page) gives every running
    batch: each page asks the same query (DynamoDB refuses names or values a page leaves unused)."""
    made = {batches.create_batch(A, BatchCreate(provider="simulated", requests=[{"custom_id": "a", "params": {}}]))[0]["id"]
            for _ in range(12)}
    assert {layout.id_of_sk(entry["sk"]) for entry in batch_store.polling_entries(limit_per_shard=1)} == made


# ---- the sender's deadline --------------------------------------------------------------


def test_a_receiver_that_trickles_its_answer_fails_at_the_deadline(webhook_env):
    # a byte every 0.3 s: each read is quick, the whole answer takes 12 s
    webhook_env.receiver.behaviour = lambda path, n: ("trickle", 0.3, 200, 40)
    outcome = sender.post(webhook_env.receiver.url(), "{}", {}, timeout=1.0, allow_private=True)
    assert not outcome.succeeded and outcome.error == "timed out after 1 s"
    # the sender hung up at its deadline: the receiver never got its answer out
    (received,) = webhook_env.receiver.requests
    assert settle(lambda: received.trickled, quiet=2) < 40


def test_a_name_that_does_not_resolve_is_retried_not_final(webhook_env):
    outcome = sender.post("https://no-such-host.invalid/hook", "{}", {}, timeout=1.0, allow_private=False)
    assert not outcome.succeeded and not outcome.final and outcome.error.startswith("connection failed")


# ---- guard rails of issue 9.11 and 9.13 ----------------------------------------------------


def test_a_running_batch_cannot_be_deleted_until_it_has_ended(table):
    batch, _ = batches.create_batch(A, BatchCreate(provider="simulated", requests=[{"custom_id": "a", "params": {}}]))
    with pytest.raises(errors.InvalidTransition) as refused:
        jobs.delete_job(A, batch["id"])
    assert refused.value.status_code == 409 and refused.value.current_status == "running"
    batches.cancel_batch(A, batch["id"])
    scheduler.run(lambda: 60_000, "end-it")
    assert jobs.delete_job(A, batch["id"])["status"] == "cancelled"


def test_the_simulated_provider_can_be_switched_off(table, monkeypatch):
    monkeypatch.setenv("SIMULATED_PROVIDER", "false")
    settings.cache_clear()
    with pytest.raises(errors.InvalidInput, match="switched off"):
        batches.create_batch(A, BatchCreate(provider="simulated", requests=[{"custom_id": "a", "params": {}}]))
    assert batches.list_batches(A).items == []


@pytest.mark.parametrize("organization", ["a#b", "a|b", "", " lead", "x" * 129])
def test_organization_ids_cannot_reach_another_organizations_keys(table, organization):
    from jobsvc import auth

    with pytest.raises(ValueError):
        auth.create_key(organization, "user", key="jsk_guard_rail_0123456789")


def test_durations_are_64_bit():
    from pydantic import ValidationError

    assert JobUpdate(ttft_ns=2**63 - 1, total_duration_ns=0).ttft_ns == 2**63 - 1
    for name in ("ttft_ns", "total_duration_ns"):
        with pytest.raises(ValidationError):
            JobUpdate(**{name: 2**63})
