"""Job logic: create, read, list, update/transition, cancel, delete, messages, and the
transitions the service makes itself (the timeout sweep).

Knows nothing about Lambda events or HTTP; raises the errors of errors.py. Each
operation on one job is one DynamoDB request on its success path (storage/jobs.py).
Every transition records itself in the job's history in that same write.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable

from . import errors, ids, states, telemetry
from .auth import Actor
from .config import settings
from .pages import Listing, bounded
from .storage import jobs as store
from .storage import layout
from .storage.db import check_json
from .timeutil import epoch, iso, now, parse_iso
from .urls import check_callback_url

if TYPE_CHECKING:  # pydantic stays out of the functions that do not parse requests
    from .schemas import JobCreate, JobUpdate, MessageCreate

JOB = "job"
MESSAGE = "message"
BATCH = "batch"
MAX_METADATA_KEYS_PER_UPDATE = 100
#: metadata.source_id is part of an index key (DynamoDB: 2048 bytes at most)
MAX_SOURCE_ID_BYTES = 1024
SWEEP_ACTOR, POLLER_ACTOR = "system:sweep", "system:poller"

PUBLIC_FIELDS = (
    "id", "status", "job_type", "created_at", "last_updated_at", "completed_at", "user_id",
    "organization_id", "metadata", "background", "stop_reason", "callback_url", "callback_sent_at",
    "callback_status_code", "callback_error", "ttft_ns", "total_duration_ns", "expires_at",
    "heartbeat_timeout_seconds",
)
CALLBACK_FIELDS = ("callback_sent_at", "callback_status_code", "callback_error")
#: what entering a terminal status takes a job out of: the active, due and polling indexes
LEAVES_AT_END = ("act_pk", "due_pk", "due_at", "poll_pk", "polled_at")


def to_public(job: dict[str, Any], webhook: dict[str, Any] | None = None) -> dict[str, Any]:
    """The job as the API shows it: its item, with the callback view from its webhook item."""
    out = {name: job.get(name) for name in PUBLIC_FIELDS}
    out["metadata"] = job.get("metadata") or {}
    out["background"] = bool(job.get("background"))
    for name in CALLBACK_FIELDS:
        out[name] = (webhook or {}).get(name)
    return out


def history_entry(at: str, actor: str, stop_reason: str | None) -> list[Any]:
    """One transition as the job stores it: ``history`` maps each status the job entered
    to [at, actor, stop_reason] (a status is entered at most once: the state machine has
    no cycles). Where it came from is the status entered before it."""
    return [at, actor, stop_reason]


def history_to_public(history: dict[str, list[Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for status, (at, actor, stop_reason) in sorted(history.items(), key=lambda kv: (states.ORDER.get(kv[0], 0), kv[1][0])):
        out.append({"status": status, "from": out[-1]["status"] if out else None, "at": at,
                    "actor": actor, "stop_reason": stop_reason})
    return out


def user_actor(actor: Actor) -> str:
    return f"user:{actor.user_id}"


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_metadata(metadata: dict[str, Any], what: str = "metadata") -> None:
    size = len(_canonical_json(metadata).encode())
    limit = settings().max_metadata_bytes
    if size > limit:
        raise errors.InvalidInput(f"{what} is {size} bytes serialised; at most {limit} are allowed")
    check_json(metadata, what)
    source = metadata.get("source_id")
    if isinstance(source, str) and len(source.encode()) > MAX_SOURCE_ID_BYTES:
        raise errors.InvalidInput(f"metadata.source_id is at most {MAX_SOURCE_ID_BYTES} bytes (it is indexed)")


def retention_ttl(completed_epoch: int) -> int | None:
    """When a job that ended at ``completed_epoch`` is deleted by the table's TTL (None: kept)."""
    seconds = settings().retention_seconds
    return completed_epoch + seconds if seconds > 0 else None


def due_at(status: str, created: int, expires: int, heartbeat_timeout: int | None) -> int | None:
    """When the sweep must first look at a new job (None: never). It may look early, never
    late: a job created with a heartbeat timeout is looked at within that timeout even if
    it is not running yet, so that entering ``running`` never has to move the date."""
    if status in (states.CREATED, states.PENDING):
        return min(expires, created + heartbeat_timeout) if heartbeat_timeout else expires
    if status == states.RUNNING and heartbeat_timeout:
        return created + heartbeat_timeout
    return None


def new_job_record(
    actor: Actor, status: str, job_type: str, metadata: dict[str, Any], lifetime: timedelta,
    job_id: str | None = None, **members: Any,
) -> dict[str, Any]:
    """A new job (not stored yet) with its index keys and first history entry."""
    moment = now()
    created = int(moment.timestamp())
    job_id = job_id or ids.new_id(JOB, spread=True)
    org = actor.organization_id
    record: dict[str, Any] = {
        **layout.job_key(org, job_id),
        "id": job_id, "organization_id": org, "user_id": actor.user_id, "status": status,
        "job_type": job_type, "created_at": iso(moment), "last_updated_at": iso(moment), "metadata": metadata,
        "expires_at": iso(moment + lifetime),
        "history": {status: history_entry(iso(moment), user_actor(actor), None)},
        **{k: v for k, v in members.items() if v is not None},
    }
    hbt = record.get("heartbeat_timeout_seconds")
    if status in states.ACTIVE:
        record["act_pk"] = layout.active_pk(org, job_id)
    when = due_at(status, created, created + int(lifetime.total_seconds()), hbt) if job_type != BATCH else None
    if when is not None:
        record["due_pk"], record["due_at"] = layout.due_pk(job_id), when
    if status == states.RUNNING:
        record["hb_due"] = created + (hbt or store.NEVER)
    source = layout.source_pk(org, job_id, metadata.get("source_id"))
    if source:
        record["src_pk"] = source
    return record


def parse_job_id(job_id: str) -> str:
    parsed = ids.parse_id(job_id, JOB)
    if parsed is None:
        raise errors.JobNotFound(job_id[:80])
    return parsed


# ---- create ------------------------------------------------------------------------


def create_job(actor: Actor, body: JobCreate, idempotency_key: str | None = None) -> tuple[dict, bool]:
    """Create a job; returns (job, replayed). One PutItem; two with an Idempotency-Key (the
    key's record first, naming the job's id, then the job), so a create retried after a
    crash between the two makes that same job, and two racing requests get one job."""
    cfg = settings()
    check_metadata(body.metadata)
    if body.callback_url is not None:
        check_callback_url(body.callback_url, cfg.allow_private_callbacks)
    if idempotency_key is not None:
        if not (1 <= len(idempotency_key.encode()) <= 255) or not idempotency_key.isprintable():
            raise errors.InvalidInput("Idempotency-Key must be 1 to 255 bytes of printable characters")

    org = actor.organization_id

    def record(job_id: str | None = None) -> dict[str, Any]:
        return new_job_record(
            actor, body.status, body.job_type, body.metadata, timedelta(seconds=body.expires_in_seconds),
            job_id=job_id, background=body.background, callback_url=body.callback_url,
            heartbeat_timeout_seconds=body.heartbeat_timeout_seconds, idempotency_key=idempotency_key,
        )

    if idempotency_key is None:
        job = record()
        store.put_job(job)
        telemetry.emit("JobsCreated", job_type=job["job_type"])
        return to_public(job), False

    body_hash = hashlib.sha256(_canonical_json(body.model_dump(mode="json")).encode()).hexdigest()
    job_id = ids.new_id(JOB, spread=True)
    held = store.put_idempotency(
        org, idempotency_key, {"body_hash": body_hash, "job_id": job_id, "ttl": epoch() + cfg.idempotency_ttl_seconds},
        now_epoch=epoch(),
    )
    if held is None:
        job = record(job_id)
        store.put_job(job)
        telemetry.emit("JobsCreated", job_type=job["job_type"])
        return to_public(job), False
    if held.get("body_hash") != body_hash:
        raise errors.InvalidInput("this Idempotency-Key was already used with a different request body")
    if held.get("deleted"):
        raise errors.Conflict("the job created with this Idempotency-Key has since been deleted")
    existing, webhook = store.get_job(org, held["job_id"])
    if existing is not None:
        return to_public(existing, webhook), True
    # the first request stored the key and not (yet) the job: make the job it named
    job = record(held["job_id"])
    try:
        store.put_job(job)
    except store.Refused:
        existing, webhook = store.get_job(org, held["job_id"])
        if existing is None:  # made and deleted in between
            raise errors.Conflict("the job created with this Idempotency-Key has since been deleted") from None
        return to_public(existing, webhook), True
    return to_public(job), True


# ---- read, list, delete ------------------------------------------------------------


def get_job(actor: Actor, job_id: str) -> dict:
    job, webhook = store.get_job(actor.organization_id, parse_job_id(job_id))
    if job is None:
        raise errors.JobNotFound(job_id)
    return to_public(job, webhook)


def history(actor: Actor, job_id: str) -> list[dict[str, Any]]:
    job, _ = store.get_job(actor.organization_id, parse_job_id(job_id))
    if job is None:
        raise errors.JobNotFound(job_id)
    return history_to_public(job.get("history") or {})


def id_bounds(prefix: str, after: str | None, before: str | None) -> tuple[str, str] | None:
    """Inclusive id bounds for exclusive ``after``/``before`` cursors (None: nothing between)."""
    low, high = f"{prefix}-00000000-0000-0000-0000-000000000000", f"{prefix}-ffffffff-ffff-ffff-ffff-ffffffffffff"
    for name, value in (("after", after), ("before", before)):
        if value is not None and ids.parse_id(value, prefix) is None:
            raise errors.InvalidInput(f"{name} must be a {prefix} id ({prefix}-<uuid>)")
    if after is not None:
        low = ids.successor(ids.parse_id(after, prefix), prefix)  # type: ignore[arg-type]
    if before is not None:
        high = ids.predecessor(ids.parse_id(before, prefix), prefix)  # type: ignore[arg-type]
    if low is None or high is None or low > high:
        return None
    return low, high


def _time_filter(name: str, value: str | None) -> str | None:
    """An RFC 3339 time as stored timestamps compare (UTC, microseconds)."""
    if value is None:
        return None
    try:
        return iso(parse_iso(value))
    except ValueError:
        raise errors.InvalidInput(f"{name} must be an RFC 3339 time, e.g. 2026-11-28T15:04:05Z") from None


def list_query(
    actor: Actor, *, before: str | None = None, after: str | None = None, limit: int = 50,
    order: str = "desc", status: str | None = None, active: bool | None = None,
    job_type: str | None = None, source_id: str | None = None, updated_before: str | None = None,
    created_before: str | None = None, statuses: frozenset[str] | None = None,
) -> store.ListQuery | None:
    """The storage query for the API's list parameters (None: nothing can match)."""
    if source_id is not None and len(source_id.encode()) > MAX_SOURCE_ID_BYTES:
        raise errors.InvalidInput(f"source_id is at most {MAX_SOURCE_ID_BYTES} bytes")
    updated = _time_filter("updated_before", updated_before)
    created = _time_filter("created_before", created_before)
    bounds = id_bounds(JOB, after, before)
    if bounds is None:
        return None
    return store.ListQuery(
        org=actor.organization_id, low=bounds[0], high=bounds[1], descending=order == "desc",
        limit=limit, status=status, active=active, job_type=job_type, source_id=source_id,
        updated_before=updated, created_before=created, statuses=statuses,
    )


def list_jobs(
    actor: Actor, *, shape: Callable[[dict, dict | None], dict] = to_public, order: str = "desc", **query: Any,
) -> Listing:
    """One page of jobs and where the next one starts (see pages.py)."""
    q = list_query(actor, order=order, **query)
    if q is None:
        return Listing([])
    page = store.list_jobs(q)
    cursor_name = "before" if q.descending else "after"
    resume = {cursor_name: page.resume} if page.resume else None
    return bounded(
        page.jobs, lambda pair: shape(*pair), lambda pair: {cursor_name: pair[0]["id"]}, resume,
    )


def delete_job(actor: Actor, job_id: str) -> dict:
    org = actor.organization_id
    job_id = parse_job_id(job_id)
    outcome = store.delete_job(org, job_id)
    job = outcome.job
    if job is None:
        raise errors.JobNotFound(job_id)
    if not outcome.applied:
        raise errors.InvalidTransition(
            f"job {job_id} is a provider batch still running: cancel it first "
            f"(PATCH /v1/batches/{job_id}/cancel), then delete it", job["status"],
        )
    webhook = store.get_webhook_state(org, job_id) if job.get("callback_url") and job["status"] in states.TERMINAL else None
    if job.get("idempotency_key"):
        store.mark_idempotency_deleted(org, job["idempotency_key"], job_id)
    return to_public(job, webhook)


# ---- update / transition -----------------------------------------------------------


def _transition(
    org: str, job_id: str, target: str | None, actor: str, write: store.Write, allowed: frozenset[str],
    stop_reason: str | None = None, moment: datetime | None = None,
) -> store.Outcome:
    """One conditional UpdateItem: ``write``, on a job whose status is in ``allowed``, plus
    entering ``target`` if given. Every successful write is a heartbeat. Entering a status
    records it in the history (once: asking again for the status a job has is not a
    transition); a terminal status also sets ``completed_at`` and the retention TTL and
    takes the job out of the active, due and polling indexes (the only index writes a
    transition makes)."""
    moment = moment or now()
    write.statuses = allowed
    write.sets["last_updated_at"] = iso(moment)
    write.heartbeat = int(moment.timestamp())
    if target is not None:
        write.sets["status"] = target
        write.history = (target, history_entry(iso(moment), actor, stop_reason))
        if states.is_terminal(target):
            write.sets["completed_at"] = iso(moment)
            ttl = retention_ttl(int(moment.timestamp()))
            if ttl is not None:
                write.sets["ttl"] = ttl
            for name in LEAVES_AT_END:
                write.sets.pop(name, None)
            write.removes += list(LEAVES_AT_END)
    outcome = store.update_job(org, job_id, write)
    if target is not None and outcome.applied and outcome.job is not None:
        job = outcome.job
        if job.get("history", {}).get(target, [None])[0] == iso(moment):  # entered now, not a repeat
            telemetry.emit("Transitions", status=target, job_type=job.get("job_type"))
            if states.is_terminal(target):
                elapsed = (moment - parse_iso(job["created_at"])).total_seconds() * 1000
                telemetry.emit("ProcessingTime", elapsed, telemetry.MILLISECONDS, status=target, job_type=job.get("job_type"))
    return outcome


def _api_update(
    actor: Actor, job_id: str, target: str | None, write: store.Write, stop_reason: str | None = None,
) -> tuple[store.Outcome, str]:
    """An update through the API: allowed by the transition table, never on a batch job."""
    job_id = parse_job_id(job_id)
    write.conditions.append(("job_type", "<>", BATCH))
    outcome = _transition(
        actor.organization_id, job_id, target, user_actor(actor), write, states.allowed_current(target), stop_reason,
    )
    if outcome.job is None:
        raise errors.JobNotFound(job_id)
    if not outcome.applied and outcome.job.get("job_type") == BATCH:
        raise errors.InvalidTransition(
            f"job {job_id} is a provider batch: its status follows the provider (cancel it with "
            f"PATCH /v1/batches/{job_id}/cancel)", outcome.job["status"],
        )
    return outcome, job_id


def _public_after(actor: Actor, job: dict[str, Any]) -> dict[str, Any]:
    """A job an update handed back; a terminal one may have a webhook state to show."""
    webhook = None
    if job["status"] in states.TERMINAL and job.get("callback_url"):
        webhook = store.get_webhook_state(actor.organization_id, job["id"])
    return to_public(job, webhook)


def update_job(actor: Actor, job_id: str, body: JobUpdate) -> dict:
    """Apply an update in one conditional write; see the contract, section 2."""
    fields = body.model_fields_set
    write = store.Write()
    org = actor.organization_id
    parsed = parse_job_id(job_id)
    if body.metadata:
        if len(body.metadata) > MAX_METADATA_KEYS_PER_UPDATE:
            raise errors.InvalidInput(f"an update may change at most {MAX_METADATA_KEYS_PER_UPDATE} metadata keys")
        check_metadata(body.metadata)
        write.metadata = body.metadata
        if "source_id" in body.metadata:
            key = layout.source_pk(org, parsed, body.metadata["source_id"])
            if key:
                write.sets["src_pk"] = key
            else:
                write.removes.append("src_pk")
    if "callback_url" in fields and body.callback_url is not None:
        check_callback_url(body.callback_url, settings().allow_private_callbacks)
    for name in ("stop_reason", "ttft_ns", "total_duration_ns", "callback_url"):
        if name in fields:
            value = getattr(body, name)
            if value is None:
                write.removes.append(name)
            else:
                write.sets[name] = value
    stop_reason = body.stop_reason if "stop_reason" in fields else None
    outcome, job_id = _api_update(actor, job_id, body.status, write, stop_reason)
    job = outcome.job
    assert job is not None
    if outcome.applied:
        return to_public(job)  # not terminal before this write: no webhook was sent yet
    current = job["status"]
    if body.status is not None and body.status == current:
        return _public_after(actor, job)  # a retried terminal status: no change
    if body.status is None or body.status == current:
        raise errors.InvalidTransition(f"job {job_id} is {current}; a terminal job cannot be changed", current)
    raise errors.InvalidTransition(f"job {job_id} cannot move from {current} to {body.status}", current)


def cancel_job(actor: Actor, job_id: str) -> dict:
    write = store.Write(sets={"stop_reason": "cancelled"})
    outcome, job_id = _api_update(actor, job_id, states.CANCELLED, write, "cancelled")
    job = outcome.job
    assert job is not None
    if outcome.applied:
        return to_public(job)
    raise errors.InvalidTransition(f"job {job_id} is {job['status']} and cannot be cancelled", job["status"])


#: bulk cancel reads at most this many pages of matching jobs per request
BULK_PAGES = 10
BULK_WORKERS = 8


def bulk_cancel(actor: Actor, body: Any) -> dict[str, Any]:
    """Cancel every active job matching a filter, each by its own conditional write exactly
    as ``cancel_job`` (history, webhook), at most ``limit``; ``more`` says some may remain.
    Batches are left alone (their cancel goes to the provider: /v1/batches/{id}/cancel)."""
    from concurrent.futures import ThreadPoolExecutor

    if body.status is None and body.job_type is None and body.source_id is None and body.created_before is None:
        raise errors.InvalidInput("give at least one filter: status, job_type, source_id or created_before")
    statuses = frozenset({body.status}) if body.status else frozenset(states.ACTIVE)
    cancelled: list[str] = []
    before: str | None = None
    if body.created_before is not None:
        # ids sort by creation time: start the scan at created_before (with a second's margin
        # for an id made a little ahead of its created_at), not at the newest job, so that
        # newer jobs never hide the older ones it asks for
        moment = parse_iso(_time_filter("created_before", body.created_before))
        before = ids.first_at(JOB, int(moment.timestamp() * 1000) + 1000)
    more = False
    with ThreadPoolExecutor(max_workers=BULK_WORKERS) as pool:
        for _ in range(BULK_PAGES):
            q = list_query(actor, before=before, limit=min(400, body.limit - len(cancelled)), order="desc",
                           statuses=statuses, job_type=body.job_type, source_id=body.source_id,
                           created_before=body.created_before)
            if q is None:
                break
            page = store.list_jobs(q)
            targets = [job["id"] for job, _ in page.jobs if job.get("job_type") != BATCH]

            def one(job_id: str) -> str | None:
                write = store.Write(sets={"stop_reason": "cancelled"}, conditions=[("job_type", "<>", BATCH)])
                outcome = _transition(actor.organization_id, job_id, states.CANCELLED, user_actor(actor), write,
                                      statuses, "cancelled")
                return job_id if outcome.applied else None

            cancelled += [job_id for job_id in pool.map(one, targets) if job_id]
            if len(cancelled) >= body.limit:
                more = page.resume is not None
                break
            if page.resume is None:
                break
            before = page.resume
        else:
            more = True
    return {"cancelled": cancelled, "more": more}


# ---- transitions the service makes itself (the sweep) --------------------------------


def sweep_one(org: str, job_id: str, job: dict[str, Any] | None, moment: datetime) -> str:
    """Look at a job the due index says is due: expire it, fail it for a missed heartbeat,
    or move its due date to when it must be looked at again. Returns what it did:
    "expired", "failed", "rescheduled", "removed" (no deadline any more) or "gone"."""
    if job is None:
        return "gone"
    now_iso, now_epoch = iso(moment), int(moment.timestamp())
    status = job.get("status")
    hbt = job.get("heartbeat_timeout_seconds")
    if status in (states.CREATED, states.PENDING) and job.get("expires_at", "") < now_iso:
        write = store.Write(sets={"stop_reason": "timeout"}, conditions=[("expires_at", "<", now_iso)])
        if _transition(org, job_id, states.EXPIRED, SWEEP_ACTOR, write, frozenset({states.CREATED, states.PENDING}), "timeout", moment).applied:
            return "expired"
    elif status == states.RUNNING and hbt and int(job.get("hb_due", store.NEVER)) < now_epoch:
        write = store.Write(sets={"stop_reason": "heartbeat_timeout"}, conditions=[("hb_due", "<", now_epoch)])
        if _transition(org, job_id, states.FAILED, SWEEP_ACTOR, write, frozenset({states.RUNNING}), "heartbeat_timeout", moment).applied:
            return "failed"
    return reschedule(org, job_id, job, now_epoch)


def reschedule(org: str, job_id: str, job: dict[str, Any], now_epoch: int) -> str:
    """Set a job's next due date from what it is now (a conditional write on its status,
    which a heartbeat does not change: a job that moved on meanwhile is left for the
    next run, when its entry is still due)."""
    status = job.get("status")
    hbt = job.get("heartbeat_timeout_seconds")
    if status in (states.CREATED, states.PENDING):
        expires = int(parse_iso(job["expires_at"]).timestamp())
        when: int | None = min(expires, now_epoch + hbt) if hbt else expires
    elif status == states.RUNNING and hbt:
        when = max(int(job.get("hb_due", now_epoch)), now_epoch)
    else:
        when = None
    write = store.Write(statuses={status} if status else None)
    if when is None:
        write.removes += ["due_pk", "due_at"]
    else:
        write.sets["due_at"] = when
    e = store.update_job(org, job_id, write)
    if not e.applied:
        return "gone" if e.job is None else "moved"
    return "removed" if when is None else "rescheduled"


def update_running_batch(
    org: str, job_id: str, write: store.Write, target: str | None = None, stop_reason: str | None = None,
) -> store.Outcome:
    """The poller's write on a running batch job: its counts and poll state, and its end
    if ``target``. Refused, it hands back the job as it is (no second read needed)."""
    if target is not None and states.RUNNING not in states.sources_of(target, states.BATCH_TRANSITIONS):
        raise ValueError(f"a batch cannot move from running to {target}")
    write.conditions.append(("job_type", "=", BATCH))
    if target is not None and states.is_terminal(target):
        write.sets["bat_pk"] = layout.batches_pk(org, job_id, running=False)
    return _transition(org, job_id, target, POLLER_ACTOR, write, frozenset({states.RUNNING}), stop_reason)


# ---- messages ----------------------------------------------------------------------


def message_to_public(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item["id"], "job_id": item["job_id"], "role": item["role"],
        "content": json.loads(item["content_json"]), "created_at": item["created_at"],
    }


def add_message(actor: Actor, job_id: str, body: MessageCreate) -> dict:
    job_id = parse_job_id(job_id)
    content_json = json.dumps(body.content, ensure_ascii=False, separators=(",", ":"))
    limit = settings().max_message_bytes
    if len(content_json.encode()) > limit:
        raise errors.InvalidInput(f"message content is larger than {limit} bytes")
    message_id = ids.new_id(MESSAGE)
    record = {
        "pk": layout.children_pk(job_id), "sk": f"MSG#{message_id}", "id": message_id, "job_id": job_id,
        "organization_id": actor.organization_id, "role": body.role, "content_json": content_json,
        "created_at": iso(now()),
    }
    if not store.put_message(actor.organization_id, job_id, record):
        raise errors.JobNotFound(job_id)
    return message_to_public(record)


def list_messages(
    actor: Actor, job_id: str, *, before: str | None = None, after: str | None = None,
    limit: int = 50, order: str = "asc", role: str | None = None,
) -> Listing:
    job_id = parse_job_id(job_id)
    job, _ = store.get_job(actor.organization_id, job_id)
    if job is None:
        raise errors.JobNotFound(job_id)
    bounds = id_bounds(MESSAGE, after, before)
    if bounds is None:
        return Listing([])
    descending = order == "desc"
    records, resume = store.list_messages(job_id, bounds[0], bounds[1], descending, limit, role)
    cursor_name = "before" if descending else "after"
    return bounded(
        records, message_to_public, lambda record: {cursor_name: record["id"]},
        {cursor_name: resume} if resume else None,
    )
