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
from typing import Callable

from . import batches, jobs, storage
from .config import settings
from .timeutil import epoch, iso, now

LEASE = "scheduler"
#: at most this many timeouts per run, so that a backlog never starves the batch poller
MAX_SWEEP = 2000
log = logging.getLogger(__name__)


@dataclass
class RunReport:
    ran: bool
    lease_holder: str | None = None
    lease_until: int | None = None
    expired: int = 0
    heartbeat_failed: int = 0
    polled: int = 0
    still_running: int = 0
    ended: dict[str, int] = field(default_factory=dict)
    poll_errors: int = 0
    left_for_next_run: int = 0


def run(remaining_ms: Callable[[], int], run_id: str) -> RunReport:
    cfg = settings()
    start = epoch()
    held = storage.take_lease(LEASE, run_id, start, start + cfg.scheduler_lease_seconds)
    if held is not None:
        return RunReport(ran=False, lease_holder=held.holder, lease_until=int(held.until))
    report = RunReport(ran=True)
    reserve_ms = cfg.scheduler_reserve_seconds * 1000

    def time_left() -> bool:
        return remaining_ms() > reserve_ms

    try:
        sweep(report, time_left)
        poll_batches(report, time_left, cfg.poll_concurrency)
    finally:
        storage.release_lease(LEASE, run_id)
    return report


def sweep(report: RunReport, time_left: Callable[[], bool]) -> None:
    """Expire created/pending jobs past expires_at; fail running jobs whose heartbeat stopped."""
    now_iso, now_epoch = iso(now()), epoch()
    done = 0
    for org, job_id in storage.due_expiries(now_iso):
        if done >= MAX_SWEEP or not time_left():
            break  # the rest is still due at the next run
        report.expired += jobs.expire_if_due(org, job_id, now_iso)
        done += 1
    for org, job_id in storage.due_heartbeats(now_epoch):
        if done >= MAX_SWEEP or not time_left():
            break
        report.heartbeat_failed += jobs.fail_if_heartbeat_missed(org, job_id, now_epoch)
        done += 1


def poll_batches(report: RunReport, time_left: Callable[[], bool], concurrency: int) -> None:
    """Poll every running batch, ``concurrency`` at a time; one bad batch never stops the others."""

    running = storage.running_batches()
    # one adapter (and HTTP session, and key lookup) per provider, shared by the pool
    adapters = {name: batches.adapter_for(name) for name in {item.provider for item in running}}

    def one(item: storage.JobItem) -> str:
        if not time_left():
            return "left"
        try:
            return batches.poll(item, adapters[item.provider])
        except Exception:  # a fault of ours or of DynamoDB: log it, the next run retries
            log.exception("polling batch %s failed", item.id)
            return "error"

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        outcomes = list(pool.map(one, running))
    for outcome in outcomes:
        if outcome == "left":
            report.left_for_next_run += 1
            continue
        report.polled += 1
        if outcome == "running":
            report.still_running += 1
        elif outcome == "error":
            report.poll_errors += 1
        else:
            report.ended[outcome] = report.ended.get(outcome, 0) + 1
