"""The scheduled run: the batch poller and the timeout sweep (contract sections 2, 5, 6).

One run at a time: a run first takes a lease item in the table with a
conditional write (the serverless leader lock); a run that finds the lease
held does nothing. Work is found through indexes, never a scan. The run stops
taking new work when little time is left before the function's timeout and
leaves the rest to the next run.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from . import batches, jobs, states, telemetry
from .config import settings
from .storage import access, layout
from .storage import batches as batch_store
from .storage import jobs as job_store
from .timeutil import epoch, now

LEASE = "scheduler"
#: at most this many timeouts per run, so that a backlog never starves the batch poller
MAX_SWEEP = 2000
log = logging.getLogger("jobs")  # Powertools' service logger (POWERTOOLS_SERVICE_NAME), set up by the function


@dataclass
class RunReport:
    ran: bool
    lease_holder: str | None = None
    lease_until: int | None = None
    expired: int = 0
    heartbeat_failed: int = 0
    rescheduled: int = 0
    polled: int = 0
    still_running: int = 0
    resuming: int = 0
    ended: dict[str, int] = field(default_factory=dict)
    poll_errors: int = 0
    left_for_next_run: int = 0
    capped: dict[str, int] = field(default_factory=dict)


def run(remaining_ms: Callable[[], int], run_id: str) -> RunReport:
    cfg = settings()
    start = epoch()
    held = access.take_lease(LEASE, run_id, start, start + cfg.scheduler_lease_seconds)
    if held is not None:
        return RunReport(ran=False, lease_holder=held.get("holder"), lease_until=int(held.get("until", 0)))
    report = RunReport(ran=True)
    reserve_ms = cfg.scheduler_reserve_seconds * 1000

    def time_left() -> bool:
        return remaining_ms() > reserve_ms

    try:
        sweep(report, time_left)
        poll_batches(report, time_left, cfg.poll_concurrency, cfg.poll_max_per_provider)
    finally:
        access.release_lease(LEASE, run_id)
        telemetry.emit("SweepExpired", report.expired)
        telemetry.emit("SweepHeartbeatFailed", report.heartbeat_failed)
    return report


def sweep(report: RunReport, time_left: Callable[[], bool], limit: int = MAX_SWEEP) -> None:
    """Look at every job whose due date has passed (the due index): expire created/pending
    jobs past expires_at, fail running jobs whose heartbeat stopped, and give the others
    their next due date. Jobs are read 100 at a time (BatchGetItem), each acted on by one
    conditional write that re-checks the deadline (a heartbeat that lands first wins)."""
    moment = now()
    entries = job_store.due_entries(int(moment.timestamp()), limit)
    for start in range(0, len(entries), 100):
        if not time_left():
            break  # the rest is still due at the next run
        chunk = entries[start:start + 100]
        found = {r["sk"]: r for r in job_store.read_items(chunk)}
        for entry in chunk:
            job_id = layout.id_of_sk(entry["sk"])
            org = layout.org_of_pk(entry["pk"])
            # the time of this write (a run lasts minutes: the run's start would stamp the
            # transition before a user's write that landed meanwhile)
            outcome = jobs.sweep_one(org, job_id, found.get(entry["sk"]), now())
            if outcome == "expired":
                report.expired += 1
            elif outcome == "failed":
                report.heartbeat_failed += 1
            elif outcome in ("rescheduled", "removed"):
                report.rescheduled += 1


def poll_batches(report: RunReport, time_left: Callable[[], bool], concurrency: int, per_provider: int) -> None:
    """Poll running batches, least recently polled first, ``concurrency`` at a time and at
    most ``per_provider`` per provider per run (so a slow provider's tail is reached next
    run, and no provider is flooded); one bad batch never stops the others."""
    entries = batch_store.polling_entries()
    # the index may lag: a batch that ended since is not polled (nor its results rewritten)
    running = [job for job in batch_store.read_jobs(entries) if job.get("status") == states.RUNNING]
    taken: dict[str, int] = {}
    chosen = []
    for job in running:
        provider = job.get("provider", "")
        if taken.get(provider, 0) >= per_provider:
            report.capped[provider] = report.capped.get(provider, 0) + 1
            continue
        taken[provider] = taken.get(provider, 0) + 1
        chosen.append(job)
    # one adapter (and HTTP session, and key lookup) per provider, shared by the pool
    adapters = {name: batches.adapter_for(name) for name in taken}

    def one(job: dict[str, Any]) -> str:
        if not time_left():
            return "left"
        try:
            return batches.poll(job, adapters[job["provider"]], time_left)
        except Exception:  # a fault of ours or of DynamoDB: log it, the next run retries
            log.exception("polling a batch failed", extra={"job_id": job.get("id"), "organization_id": job.get("organization_id")})
            return "error"

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        outcomes = list(pool.map(one, chosen))
    for outcome in outcomes:
        if outcome == "left":
            report.left_for_next_run += 1
            continue
        report.polled += 1
        if outcome == "running":
            report.still_running += 1
        elif outcome == "resuming":
            report.resuming += 1
        elif outcome == "error":
            report.poll_errors += 1
        else:
            report.ended[outcome] = report.ended.get(outcome, 0) + 1
