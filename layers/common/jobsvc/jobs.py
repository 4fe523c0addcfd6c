"""Job logic: create, read, list, update/transition, cancel, delete, messages.

Knows nothing about Lambda events or HTTP; raises the errors of errors.py.
Every success path is a single DynamoDB request (see storage.py).
"""
from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable

from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from . import errors, ids, states, storage
from .auth import Actor
from .config import settings
if TYPE_CHECKING:  # pydantic stays out of the functions that do not parse requests
    from .schemas import JobCreate, JobUpdate, MessageCreate
from .storage import JobItem
from .timeutil import epoch, iso, now
from .urls import check_callback_url

JOB = "job"
MESSAGE = "message"
BATCH = "batch"
#: heartbeat deadline of a running job without a heartbeat timeout (never due).
NEVER = 10**11
MAX_METADATA_KEYS_PER_UPDATE = 100
#: metadata.source_id is part of an index key (DynamoDB: 2048 bytes at most)
MAX_SOURCE_ID_BYTES = 1024

PUBLIC_FIELDS = (
    "id", "status", "job_type", "created_at", "last_updated_at", "completed_at", "user_id",
    "organization_id", "metadata", "background", "stop_reason", "callback_url", "callback_sent_at",
    "callback_status_code", "callback_error", "ttft_ns", "total_duration_ns", "expires_at",
    "heartbeat_timeout_seconds",
)


def to_public(item: JobItem) -> dict[str, Any]:
    data = item.attribute_values
    out = {name: data.get(name) for name in PUBLIC_FIELDS}
    metadata = data.get("metadata")
    out["metadata"] = metadata.as_dict() if hasattr(metadata, "as_dict") else (metadata or {})
    return out


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def check_metadata(metadata: dict[str, Any], what: str = "metadata") -> None:
    size = len(_canonical_json(metadata).encode())
    limit = settings().max_metadata_bytes
    if size > limit:
        raise errors.InvalidInput(f"{what} is {size} bytes serialised; at most {limit} are allowed")
    storage.check_dynamodb_json(metadata, what)
    source = metadata.get("source_id")
    if isinstance(source, str) and len(source.encode()) > MAX_SOURCE_ID_BYTES:
        raise errors.InvalidInput(f"metadata.source_id is at most {MAX_SOURCE_ID_BYTES} bytes (it is indexed)")


def new_job_item(
    actor: Actor, status: str, job_type: str, metadata: dict[str, Any], lifetime: timedelta, **members: Any
) -> JobItem:
    """A new job (not stored yet) with its index keys; ``members`` are the other attributes."""
    moment = now()
    job_id = ids.new_id(JOB)
    org = actor.organization_id
    item = JobItem(
        storage.org_pk(org), storage.job_sk(job_id),
        id=job_id, organization_id=org, user_id=actor.user_id, status=status, job_type=job_type,
        created_at=iso(moment), last_updated_at=iso(moment), metadata=metadata,
        expires_at=iso(moment + lifetime),
        **storage.index_keys(org, job_id, status, job_type, metadata.get("source_id")),
        **members,
    )
    if status == states.RUNNING:
        item.hb_pk = storage.heartbeat_pk(job_id)
        item.hb_due = int(moment.timestamp()) + (item.heartbeat_timeout_seconds or NEVER)
    return item


def parse_job_id(job_id: str) -> str:
    parsed = ids.parse_id(job_id, JOB)
    if parsed is None:
        raise errors.JobNotFound(job_id[:80])
    return parsed


# ---- create ------------------------------------------------------------------------


def create_job(actor: Actor, body: JobCreate, idempotency_key: str | None = None) -> tuple[dict, bool]:
    """Create a job; returns (job, replayed). One request, with or without an idempotency key."""
    cfg = settings()
    check_metadata(body.metadata)
    if body.callback_url is not None:
        check_callback_url(body.callback_url, cfg.allow_private_callbacks)
    if idempotency_key is not None:
        if not (1 <= len(idempotency_key.encode()) <= 255) or not idempotency_key.isprintable():
            raise errors.InvalidInput("Idempotency-Key must be 1 to 255 bytes of printable characters")

    org = actor.organization_id
    item = new_job_item(
        actor, body.status, body.job_type, body.metadata, timedelta(seconds=body.expires_in_seconds),
        background=body.background, callback_url=body.callback_url,
        heartbeat_timeout_seconds=body.heartbeat_timeout_seconds,
    )

    if idempotency_key is None:
        storage.put_job(item)
        return to_public(item), False

    body_hash = hashlib.sha256(_canonical_json(body.model_dump(mode="json")).encode()).hexdigest()
    record = storage.IdempotencyItem(
        storage.org_pk(org),
        storage.idempotency_sk(idempotency_key),
        body_hash=body_hash,
        job_id=item.id,
        ttl=epoch() + cfg.idempotency_ttl_seconds,
    )
    try:
        existing = storage.put_job(item, record, now_epoch=epoch())
    except storage.TransactionConflict:
        raise errors.Conflict("another request with this Idempotency-Key is in progress; retry") from None
    if existing is None:
        return to_public(item), False
    if existing.body_hash != body_hash:
        raise errors.InvalidInput("this Idempotency-Key was already used with a different request body")
    original = storage.get_job(org, existing.job_id)
    if original is None:
        raise errors.Conflict("the job created with this Idempotency-Key has since been deleted")
    return to_public(original), True


# ---- read, list, delete ------------------------------------------------------------


def get_job(actor: Actor, job_id: str) -> dict:
    item = storage.get_job(actor.organization_id, parse_job_id(job_id))
    if item is None:
        raise errors.JobNotFound(job_id)
    return to_public(item)


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


def list_jobs(
    actor: Actor,
    *,
    before: str | None = None,
    after: str | None = None,
    limit: int = 50,
    order: str = "desc",
    status: str | None = None,
    active: bool | None = None,
    job_type: str | None = None,
    source_id: str | None = None,
    shape: Callable[[JobItem], dict] = to_public,
) -> list[dict]:
    if source_id is not None and len(source_id.encode()) > MAX_SOURCE_ID_BYTES:
        raise errors.InvalidInput(f"source_id is at most {MAX_SOURCE_ID_BYTES} bytes")
    bounds = id_bounds(JOB, after, before)
    if bounds is None:
        return []
    query = storage.ListQuery(
        org=actor.organization_id, low=bounds[0], high=bounds[1], descending=order == "desc",
        limit=limit, status=status, active=active, job_type=job_type, source_id=source_id,
    )
    return [shape(item) for item in storage.list_jobs(query)]


def delete_job(actor: Actor, job_id: str) -> dict:
    item = storage.delete_job(actor.organization_id, parse_job_id(job_id))
    if item is None:
        raise errors.JobNotFound(job_id)
    return to_public(item)


# ---- update / transition -----------------------------------------------------------


def _status_actions(job_id: str, org: str, target: str, moment: str) -> list[Action]:
    """What entering ``target`` at ``moment`` writes: the status, its index keys, completed_at."""
    actions: list[Action] = [
        JobItem.status.set(target),
        JobItem.status_pk.set(storage.status_key(org, target)),
    ]
    if states.is_terminal(target):
        actions += [
            JobItem.completed_at.set(moment),
            JobItem.active_pk.remove(),
            JobItem.exp_pk.remove(),
            JobItem.hb_pk.remove(),
            JobItem.poll_pk.remove(),
        ]
    elif target == states.RUNNING:
        actions += [JobItem.hb_pk.set(storage.heartbeat_pk(job_id)), JobItem.exp_pk.remove()]
    return actions


def _apply(
    org: str, job_id: str, target: str | None, actions: list[Action], condition: Condition,
    metadata_patch: dict[str, Any] | None = None,
) -> storage.UpdateOutcome:
    """One conditional UpdateItem: the update, a heartbeat, and the status change if any."""
    moment = now()
    actions = [
        JobItem.last_updated_at.set(iso(moment)),
        # a heartbeat: the sweep fails a running job whose deadline passes
        JobItem.hb_due.set((JobItem.heartbeat_timeout_seconds | NEVER) + int(moment.timestamp())),
        *actions,
    ]
    if target is not None:
        actions += _status_actions(job_id, org, target, iso(moment))
    return storage.update_job(org, job_id, actions, condition, metadata_patch)


def _api_update(
    actor: Actor, job_id: str, target: str | None, actions: list[Action], metadata_patch: dict[str, Any] | None = None
) -> tuple[storage.UpdateOutcome, str]:
    """An update through the API: allowed by the transition table, never on a batch job."""
    job_id = parse_job_id(job_id)
    condition = JobItem.status.is_in(*states.allowed_current(target)) & (JobItem.job_type != BATCH)
    outcome = _apply(actor.organization_id, job_id, target, actions, condition, metadata_patch)
    if outcome.job is None:
        raise errors.JobNotFound(job_id)
    if not outcome.applied and outcome.job.job_type == BATCH:
        raise errors.InvalidTransition(
            f"job {job_id} is a provider batch: its status follows the provider (cancel it with "
            f"PATCH /v1/batches/{job_id}/cancel)", outcome.job.status,
        )
    return outcome, job_id


def update_job(actor: Actor, job_id: str, body: JobUpdate) -> dict:
    """Apply an update in one conditional write; see the contract, section 2."""
    fields = body.model_fields_set
    actions: list[Action] = []
    if body.metadata:
        if len(body.metadata) > MAX_METADATA_KEYS_PER_UPDATE:
            raise errors.InvalidInput(f"an update may change at most {MAX_METADATA_KEYS_PER_UPDATE} metadata keys")
        check_metadata(body.metadata)
        if "source_id" in body.metadata:
            key = storage.source_key(actor.organization_id, body.metadata["source_id"])
            actions.append(JobItem.source_pk.set(key) if key else JobItem.source_pk.remove())
    if "callback_url" in fields and body.callback_url is not None:
        check_callback_url(body.callback_url, settings().allow_private_callbacks)
    for name in ("stop_reason", "ttft_ns", "total_duration_ns", "callback_url"):
        if name in fields:
            attr = getattr(JobItem, name)
            value = getattr(body, name)
            actions.append(attr.remove() if value is None else attr.set(value))

    outcome, job_id = _api_update(actor, job_id, body.status, actions, body.metadata or None)
    if outcome.applied:
        return to_public(outcome.job)  # type: ignore[arg-type]
    current = outcome.job.status  # type: ignore[union-attr]
    if body.status is not None and body.status == current:
        return to_public(outcome.job)  # type: ignore[arg-type]  # a retried terminal status: no change
    if body.status is None or body.status == current:
        raise errors.InvalidTransition(f"job {job_id} is {current}; a terminal job cannot be changed", current)
    raise errors.InvalidTransition(f"job {job_id} cannot move from {current} to {body.status}", current)


def cancel_job(actor: Actor, job_id: str) -> dict:
    outcome, job_id = _api_update(actor, job_id, states.CANCELLED, [JobItem.stop_reason.set("cancelled")])
    if outcome.applied:
        return to_public(outcome.job)  # type: ignore[arg-type]
    current = outcome.job.status  # type: ignore[union-attr]
    raise errors.InvalidTransition(f"job {job_id} is {current} and cannot be cancelled", current)


# ---- transitions the service makes itself (the scheduler) ---------------------------


def expire_if_due(org: str, job_id: str, now_iso: str) -> bool:
    """``created``/``pending`` past ``expires_at`` -> ``expired`` (stop_reason ``timeout``)."""
    condition = JobItem.status.is_in(states.CREATED, states.PENDING) & (JobItem.expires_at < now_iso)
    return _apply(org, job_id, states.EXPIRED, [JobItem.stop_reason.set("timeout")], condition).applied


def fail_if_heartbeat_missed(org: str, job_id: str, now_epoch: int) -> bool:
    """``running`` with no update for ``heartbeat_timeout_seconds`` -> ``failed`` (``heartbeat_timeout``)."""
    condition = (JobItem.status == states.RUNNING) & (JobItem.hb_due < now_epoch)
    return _apply(org, job_id, states.FAILED, [JobItem.stop_reason.set("heartbeat_timeout")], condition).applied


def update_running_batch(
    org: str, job_id: str, actions: list[Action], target: str | None = None, condition: Condition | None = None
) -> storage.UpdateOutcome:
    """The poller's write on a running batch job: its counts and poll state, and its end if
    ``target``. Refused, it hands back the job as it is (no second read needed)."""
    if target is not None and states.RUNNING not in states.sources_of(target, states.BATCH_TRANSITIONS):
        raise ValueError(f"a batch cannot move from running to {target}")
    running = (JobItem.status == states.RUNNING) & (JobItem.job_type == BATCH)
    return _apply(org, job_id, target, actions, running if condition is None else running & condition)


# ---- messages ----------------------------------------------------------------------


def message_to_public(item: storage.MessageItem) -> dict:
    return {
        "id": item.id, "job_id": item.job_id, "role": item.role,
        "content": json.loads(item.content_json), "created_at": item.created_at,
    }


def add_message(actor: Actor, job_id: str, body: MessageCreate) -> dict:
    job_id = parse_job_id(job_id)
    content_json = json.dumps(body.content, ensure_ascii=False, separators=(",", ":"))
    limit = settings().max_message_bytes
    if len(content_json.encode()) > limit:
        raise errors.InvalidInput(f"message content is larger than {limit} bytes")
    message_id = ids.new_id(MESSAGE)
    item = storage.MessageItem(
        storage.job_children_pk(job_id), f"MSG#{message_id}", id=message_id, job_id=job_id,
        organization_id=actor.organization_id, role=body.role, content_json=content_json,
        created_at=iso(now()),
    )
    if not storage.put_message(actor.organization_id, item):
        raise errors.JobNotFound(job_id)
    return message_to_public(item)


def list_messages(
    actor: Actor, job_id: str, *, before: str | None = None, after: str | None = None,
    limit: int = 50, order: str = "asc", role: str | None = None,
) -> list[dict]:
    job_id = parse_job_id(job_id)
    if storage.get_job(actor.organization_id, job_id) is None:
        raise errors.JobNotFound(job_id)
    bounds = id_bounds(MESSAGE, after, before)
    if bounds is None:
        return []
    items = storage.list_messages(job_id, bounds[0], bounds[1], order == "desc", limit, role)
    return [message_to_public(item) for item in items]
