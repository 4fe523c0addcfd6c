"""Webhooks on terminal transitions (contract section 4).

A terminal transition of a job with a ``callback_url`` becomes a *task*: the
event to send, its ``webhook-id`` (the same on every attempt), the delivery
it belongs to, and how many attempts are known to have been made. Each
attempt:

1. claims the delivery with a conditional write (a duplicate stream record or
   SQS message, or a second sender, is refused) -- except the stream's first
   attempt on a job's webhook item, which is recorded in step 4 alone: a
   stream record is handled by one invocation at a time, and one seen again
   (a retried batch) finds that record and claims;
2. signs and POSTs the event (``sender.post``);
3. on a retryable failure queues the next attempt to SQS with the backoff
   delay; when retries are exhausted (or the URL is refused) it sends the
   event to the dead-letter queue; ``410 Gone`` stops at once;
4. records the attempt, the delivery's state and the job's ``callback_*``
   view in one write of the job's webhook item (storage/webhooks.py).

A sender that crashes mid-attempt leaves the delivery "sending" with a lease;
a later claim takes it over once the lease has run out. A first attempt that
crashes (or cannot record itself) leaves nothing: its stream record is
attempted again, and a retry it queued waits for its record, then, if none
came, claims the delivery itself. So no event is lost, and one is sent more
than once only when an attempt ends between its POST and its record.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

from . import errors, ids, queues, signing, states, telemetry
from .auth import Actor
from .config import settings
from .jobs import parse_job_id, retention_ttl, to_public
from .storage import jobs as job_store
from .storage import layout
from .storage import webhooks as store
from .storage.db import from_item
from .timeutil import epoch, iso, now, parse_iso

DELIVERED, RETRYING, DEAD_LETTERED, GONE, DEFERRED, DUPLICATE, JOB_DELETED = (
    "delivered", "retrying", "dead-lettered", "gone", "deferred", "duplicate", "job-deleted",
)


def webhook_id_for(job_id: str, status: str) -> str:
    """The id of a job's terminal event: stable, so every attempt and duplicate shares it."""
    return f"msg_{job_id.removeprefix('job-').replace('-', '')}_{status}"


def event_payload(job: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": f"job.{job['status']}",
        "timestamp": job["completed_at"],
        "job_id": job["id"],
        "status": job["status"],
        "completed_at": job["completed_at"],
        "metadata": job["metadata"],
        "stop_reason": job["stop_reason"],
        "job_type": job["job_type"],
    }


@dataclass(frozen=True)
class Task:
    organization_id: str
    job_id: str
    webhook_id: str
    delivery_id: str
    callback_url: str
    #: the event; None in queued tasks (an SQS message holds 256 KB, a job's metadata
    #: may be larger), which rebuild it from the job: a terminal job's event never changes
    payload: dict[str, Any] | None = None
    seen: int = 0  # attempts known to have been made
    takeover: bool = False  # claim attempt `seen + 1` if attempt `seen` was abandoned
    #: a dead letter: sent back to the retry queue (by the operator's redrive), it is
    #: attempted again, starting a new round of retries
    redrive: bool = False
    #: not before this moment (epoch milliseconds): SQS delays whole seconds, the rest of
    #: a retry's delay is waited by the sender, so the jitter is in milliseconds
    not_before: int = 0

    def message(self) -> dict[str, Any]:
        return {**asdict(self), "payload": None}

    @classmethod
    def from_message(cls, body: str) -> "Task":
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("a webhook task is a JSON object")
        # a dead letter carries more members (attempts, last_error): it can be redriven as is
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})

    def next(self, seen: int, takeover: bool = False, redrive: bool = False, not_before: int = 0) -> "Task":
        return Task(**{**asdict(self), "seen": seen, "takeover": takeover, "redrive": redrive, "not_before": not_before})


def task_for(job: dict[str, Any], delivery_id: str | None = None) -> Task:
    webhook_id = webhook_id_for(job["id"], job["status"])
    return Task(
        organization_id=job["organization_id"], job_id=job["id"], webhook_id=webhook_id,
        delivery_id=delivery_id or webhook_id, callback_url=job["callback_url"], payload=event_payload(job),
    )


def task_from_stream(old_image: dict | None, new_image: dict | None) -> Task | None:
    """The task for a stream record, or None if it is not a terminal transition of a job with a callback.

    (The event source mapping's filter passes only those; this keeps the
    function right whatever feeds it.)
    """
    if not new_image or not old_image or not new_image.get("sk", {}).get("S", "").startswith("JOB#"):
        return None
    old_status = old_image.get("status", {}).get("S")
    new_status = new_image.get("status", {}).get("S")
    if new_status not in states.TERMINAL or old_status not in states.ACTIVE:
        return None
    if not new_image.get("callback_url", {}).get("S"):
        return None
    return task_for(to_public(from_item(new_image) or {}))


def backoff_seconds(failed_attempt: int, rand: Callable[[], float] = random.random, retry_after: float | None = None) -> float:
    """Delay before the next attempt: the first delay (1 s) after the first failure, doubling,
    +-25 % jitter (in milliseconds), never over the cap (30 s); a receiver's ``Retry-After``
    (on a 429 or 503) is honoured up to the cap. The schedule is a deployment parameter."""
    cfg = settings()
    cap = cfg.webhook_backoff_cap_seconds
    base = min(cap, cfg.webhook_backoff_base_seconds * 2 ** (failed_attempt - 1))
    delay = min(cap, base * (0.75 + 0.5 * rand()))
    if retry_after is not None:
        delay = max(delay, min(cap, retry_after))
    return round(delay, 3)


def _schedule(queue_url: str, task: Task, delay: float) -> None:
    """Queue a task to run ``delay`` seconds from now: SQS waits the whole seconds, the
    sender the rest (see ``Task.not_before``)."""
    not_before = int((time.time() + delay) * 1000)
    queues.send(queue_url, replace(task, not_before=not_before).message(), int(delay))


def _secret(org: str) -> dict[str, Any]:
    """The organization's secret item, made on first use."""
    return store.get_secret(org) or _new_secret(org)


def _new_secret(org: str) -> dict[str, Any]:
    """The organization's first secret (or the one another request made meanwhile)."""
    return store.create_secret(org, signing.generate_secret())


def signing_secrets(org: str, item: dict[str, Any] | None = None) -> list[str]:
    """The secrets that sign a delivery now: the current one, and the previous one for 24 h
    (``item``: the secret item, if read already)."""
    item = item or _secret(org)
    secrets = [item["secret"]]
    if item.get("previous_secret") and item.get("previous_valid_until") and item["previous_valid_until"] > epoch():
        secrets.append(item["previous_secret"])
    return secrets


def deliver(task: Task) -> str:
    """Make the next attempt of a task; returns what happened (for logs and tests)."""
    from . import sender  # requests: only the callbacks function sends, the API only queues

    cfg = settings()
    # a task that carries its event came straight from the stream (a queued one never does)
    from_stream = task.payload is not None
    wait = task.not_before / 1000 - time.time()
    if wait > 0:
        if wait > 2:  # came much too early (a redrive, a clock): look again later
            queues.send(cfg.webhook_queue_url, task.message(), int(wait))
            return DEFERRED
        time.sleep(wait)
    # the job, its webhook item and the secret in one read: the secret as it is when the
    # delivery starts (a rotation signs every delivery that starts after it)
    job, webhook, secret_item = store.read_for_delivery(task.organization_id, task.job_id)
    if job is None:
        return JOB_DELETED  # deleted while its webhook was pending: nothing to announce
    if task.payload is None:
        task = replace(task, payload=event_payload(to_public(job)))
    assert task.payload is not None
    moment = epoch()
    completed = task.payload.get("completed_at")
    ttl = retention_ttl(int(parse_iso(completed).timestamp())) if completed else None
    # the stream's first attempt, on a job's webhook item that holds none yet, goes without a
    # claim and is recorded in one write: a stream record is handled by one invocation at a time,
    # and seen again (a retried batch) it finds this attempt recorded, and claims like any other.
    # A queued task always claims (SQS may hand one message to two pollers at once).
    first = from_stream and task.seen == 0 and not task.takeover and not task.redrive and "seq" not in (webhook or {})
    if first:
        attempt, round_start, seq = 1, 0, 1
    else:
        claim = store.claim(
            task.organization_id, task.job_id, task.delivery_id, task.seen, moment, moment + cfg.webhook_lease_seconds,
            takeover=task.takeover, redrive=task.redrive, ttl=ttl, event=task.payload,
        )
        if not claim.claimed:
            return _refused_claim(task, claim, moment)
        attempt, round_start, seq = claim.attempt, claim.round_start, claim.seq

    body = json.dumps(task.payload, separators=(",", ":"), ensure_ascii=False)
    secrets = signing_secrets(task.organization_id, secret_item or _new_secret(task.organization_id))
    timestamp = epoch()
    headers = {
        "Content-Type": "application/json",
        "webhook-id": task.webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.sign(secrets, task.webhook_id, timestamp, body),
    }
    sent_at = iso(now())
    outcome = sender.post(
        task.callback_url, body, headers, cfg.webhook_timeout_seconds, cfg.allow_private_callbacks
    )

    telemetry.emit("WebhookAttempts")
    if outcome.succeeded:
        telemetry.emit("WebhookDelivered")
        if completed:
            latency = (now() - parse_iso(completed)).total_seconds() * 1000
            telemetry.emit("WebhookLatency", max(0.0, latency), telemetry.MILLISECONDS)
    else:
        telemetry.emit("WebhookFailures", **{"class": telemetry.failure_class(outcome.status_code, outcome.error)})
    if outcome.succeeded:
        state, result = store.SUCCEEDED, DELIVERED
    elif outcome.status_code == 410:
        state, result = store.GONE, GONE
    elif outcome.final or attempt - round_start > cfg.webhook_max_retries:
        state, result = store.FAILED, DEAD_LETTERED
    else:
        state, result = store.WAITING, RETRYING

    # the next hop is queued before the outcome is recorded: a crash in between leaves the
    # delivery "sending" under a lease, which a later claim takes over (or, after a first
    # attempt, nothing: its stream record is attempted again, and this retry waits for a record)
    if state == store.WAITING:
        delay = backoff_seconds(attempt - round_start, retry_after=outcome.retry_after)
        _schedule(cfg.webhook_queue_url, task.next(seen=attempt), delay)
    elif state == store.FAILED:
        telemetry.emit("WebhookDeadLettered")
        queues.send(cfg.webhook_dlq_url, {
            **task.next(seen=attempt, redrive=True).message(),
            "attempts": attempt, "last_error": outcome.error, "last_status_code": outcome.status_code,
        })

    entry = {
        "webhook_id": task.webhook_id, "delivery_id": task.delivery_id, "event_type": task.payload["type"],
        "attempt": attempt, "sent_at": sent_at, "status_code": outcome.status_code, "error": outcome.error,
        "duration_ms": outcome.duration_ms, "succeeded": outcome.succeeded,
    }
    failed_at = sent_at if state == store.FAILED else None
    if first:
        if store.record_first(task.organization_id, task.job_id, task.delivery_id, state, entry, ttl, task.payload,
                              failed_at):
            return result
        # another attempt on the item came first (a redelivery, or this event twice at once):
        # record this one as attempt 1 the usual way, if the delivery is still nobody's
        claim = store.claim(task.organization_id, task.job_id, task.delivery_id, 0, moment,
                            moment + cfg.webhook_lease_seconds, ttl=ttl, event=task.payload)
        if not claim.claimed:
            return DUPLICATE
        seq = claim.seq
    store.record(task.organization_id, task.job_id, task.delivery_id, attempt, seq, state, entry, failed_at=failed_at)
    return result


def _refused_claim(task: Task, claim: store.Claim, moment: int) -> str:
    current = claim.current
    if current is None and task.seen > 0 and not task.redrive:
        if not task.takeover:
            # the retry of a first attempt whose record (one write, made after queueing this
            # retry) has not landed yet: look again when a sender's lease would have run out
            _schedule(settings().webhook_queue_url, task.next(seen=task.seen, takeover=True),
                      settings().webhook_lease_seconds)
            return DEFERRED
        # still nothing: that first attempt never recorded itself (it crashed, or its write kept
        # failing): this message carries the delivery on, claiming it as a new delivery would
        return deliver(replace(task, seen=0, takeover=False, payload=None))
    if current is None or current.get("st") != store.SENDING:
        return DUPLICATE  # already delivered, given up, or another attempt owns the next step
    attempts, lease_until = int(current.get("n", 0)), int(current.get("lease", 0))
    if lease_until < moment and not task.takeover:
        return deliver(task.next(seen=attempts, takeover=True))
    # someone is sending right now, or crashed doing so: look again when the lease has run
    # out (the check also takes the next attempt if the holder only failed to queue it)
    _schedule(settings().webhook_queue_url, task.next(seen=attempts, takeover=True), lease_until - moment + 1)
    return DEFERRED


# ---- API: attempts, redelivery, secrets ------------------------------------------------


ATTEMPT_FIELDS = ("webhook_id", "event_type", "attempt", "sent_at", "status_code", "error", "duration_ms", "succeeded")


def list_attempts(actor: Actor, job_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The job's webhook attempts, oldest first (the last ``LOG_SIZE`` are kept)."""
    job_id = parse_job_id(job_id)
    job, webhook = job_store.get_job(actor.organization_id, job_id)
    if job is None:
        raise errors.JobNotFound(job_id)
    return [{name: entry.get(name) for name in ATTEMPT_FIELDS} for entry in store.attempts(webhook)][:limit]


def request_redelivery(actor: Actor, job_id: str) -> dict[str, str]:
    """Queue the terminal event of a job again (a new delivery, the same webhook-id)."""
    job_id = parse_job_id(job_id)
    job, _ = job_store.get_job(actor.organization_id, job_id)
    if job is None:
        raise errors.JobNotFound(job_id)
    if not states.is_terminal(job["status"]):
        raise errors.InvalidTransition(f"job {job_id} is {job['status']}; only a terminal job has an event to redeliver", job["status"])
    if not job.get("callback_url"):
        raise errors.InvalidTransition(f"job {job_id} has no callback_url", job["status"])
    return _queue_redelivery(to_public(job))


#: a recover call queues at most this many redeliveries (call again for the rest)
MAX_RECOVER = 1000


def recover(actor: Actor, since: str, until: str | None = None, seconds: float | None = None) -> dict[str, int]:
    """Send again every terminal event of the caller's organization whose delivery ended
    failed between ``since`` and ``until`` (the failed index), at most ``MAX_RECOVER``, and
    for at most ``seconds`` (the time the caller has left): call again for the rest.

    Each redelivery is queued before its entry leaves the failed index, so that a crash in
    between loses nothing (the entry is found again); its delivery id comes from the failure
    it recovers, so that queueing it twice sends it once (the second claim is a duplicate).
    If it fails too, its own failure puts the job back in the index."""
    start = _time("since", since)
    end = _time("until", until) if until is not None else iso(now())
    if end < start:
        raise errors.InvalidInput("until is before since")
    stop = None if seconds is None else time.monotonic() + seconds
    queued = 0
    for entry in store.failed_since(actor.organization_id, start, end, MAX_RECOVER):
        if stop is not None and time.monotonic() > stop:
            break
        job_id = layout.id_of_sk(entry["sk"])
        job, _ = job_store.get_job(actor.organization_id, job_id)
        if job is not None and job.get("callback_url") and states.is_terminal(job["status"]):
            failure = "".join(ch for ch in entry["fail_at"] if ch.isalnum())
            _queue_redelivery(to_public(job), f"recover-{failure}")
            queued += 1
        store.unmark_failed(actor.organization_id, job_id, entry["fail_at"])
    return {"queued": queued}


def _time(name: str, value: str) -> str:
    try:
        return iso(parse_iso(value))
    except ValueError:
        raise errors.InvalidInput(f"{name} must be an RFC 3339 time, e.g. 2026-11-28T15:04:05Z") from None


def _queue_redelivery(job: dict[str, Any], name: str | None = None) -> dict[str, str]:
    webhook_id = webhook_id_for(job["id"], job["status"])
    task = task_for(job, delivery_id=f"{webhook_id}.{name or 'redelivery-' + ids.uuid7().hex}")
    queues.send(settings().webhook_queue_url, task.message())
    return {"webhook_id": task.webhook_id, "delivery_id": task.delivery_id}


def get_secret(actor: Actor) -> dict[str, str]:
    return {"secret": _secret(actor.organization_id)["secret"]}


def rotate_secret(actor: Actor) -> dict[str, str]:
    org = actor.organization_id
    _secret(org)  # a first rotation still keeps a (new) previous secret for 24 h
    item = store.rotate_secret(org, signing.generate_secret(), epoch() + 24 * 3600, iso(now()))
    return {"secret": item["secret"]}
