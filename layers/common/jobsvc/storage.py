"""The one module that talks to DynamoDB.

Single-table design (table and indexes are declared in template.yaml; a test
checks that these models agree with it):

======================  ======================  ===========================
item                    pk                      sk
======================  ======================  ===========================
job                     ``ORG#<org>``           ``JOB#<job id>``
idempotency record      ``ORG#<org>``           ``IDEM#<key>``
message                 ``JOB#<job id>``        ``MSG#<message id>``
API key                 ``APIKEY#<sha256>``     ``APIKEY``
======================  ======================  ===========================

Every job list is a ``Query`` on the table (all of an organization's jobs) or
on one of the sparse list indexes, each keyed ``ORG#<org>#...`` and sorted by
job id.  The expiry and heartbeat indexes serve the timeout sweep; their
partition keys are sharded so that no one partition takes every write.
"""
from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass
from typing import Any, Iterator

from pynamodb.attributes import BooleanAttribute, MapAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.connection import Connection
from pynamodb.constants import ALL_NEW
from pynamodb.exceptions import DeleteError, PutError, TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from . import errors, states
from .config import settings

_CFG = settings()
SWEEP_SHARDS = 8


class _Meta:
    table_name = _CFG.table_name
    region = _CFG.region
    host = _CFG.endpoint_url
    max_retry_attempts = 3


def _index_meta(name: str, projection) -> type:
    return type("Meta", (), {"index_name": name, "projection": projection})


class StatusIndex(GlobalSecondaryIndex):
    Meta = _index_meta("by-status", AllProjection())
    status_pk = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class TypeIndex(GlobalSecondaryIndex):
    Meta = _index_meta("by-type", AllProjection())
    type_pk = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class ActiveIndex(GlobalSecondaryIndex):
    Meta = _index_meta("active", AllProjection())
    active_pk = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class SourceIndex(GlobalSecondaryIndex):
    Meta = _index_meta("by-source", AllProjection())
    source_pk = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class ExpiryIndex(GlobalSecondaryIndex):
    """Jobs still ``created``/``pending``, by ``expires_at`` (the sweep expires them)."""

    Meta = _index_meta("expiry", KeysOnlyProjection())
    exp_pk = UnicodeAttribute(hash_key=True)
    expires_at = UnicodeAttribute(range_key=True)


class HeartbeatIndex(GlobalSecondaryIndex):
    """``running`` jobs by heartbeat deadline (epoch seconds; the sweep fails them)."""

    Meta = _index_meta("heartbeat", KeysOnlyProjection())
    hb_pk = UnicodeAttribute(hash_key=True)
    hb_due = NumberAttribute(range_key=True)


class PollIndex(GlobalSecondaryIndex):
    """Batch jobs the scheduler still has to poll (``running``), sharded."""

    Meta = _index_meta("polling", AllProjection())
    poll_pk = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class JobItem(Model):
    Meta = type("Meta", (_Meta,), {})

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    id = UnicodeAttribute()
    organization_id = UnicodeAttribute()
    user_id = UnicodeAttribute()
    status = UnicodeAttribute()
    job_type = UnicodeAttribute()
    created_at = UnicodeAttribute()
    last_updated_at = UnicodeAttribute()
    completed_at = UnicodeAttribute(null=True)
    metadata = MapAttribute(default=dict)
    background = BooleanAttribute(default=False)
    stop_reason = UnicodeAttribute(null=True)
    callback_url = UnicodeAttribute(null=True)
    callback_sent_at = UnicodeAttribute(null=True)
    callback_status_code = NumberAttribute(null=True)
    callback_error = UnicodeAttribute(null=True)
    ttft_ns = NumberAttribute(null=True)
    total_duration_ns = NumberAttribute(null=True)
    expires_at = UnicodeAttribute()
    heartbeat_timeout_seconds = NumberAttribute(null=True)
    # index keys (absent = not in that index)
    status_pk = UnicodeAttribute(null=True)
    type_pk = UnicodeAttribute(null=True)
    active_pk = UnicodeAttribute(null=True)
    source_pk = UnicodeAttribute(null=True)
    exp_pk = UnicodeAttribute(null=True)
    hb_pk = UnicodeAttribute(null=True)
    hb_due = NumberAttribute(null=True)
    # batch jobs (contract section 6)
    provider = UnicodeAttribute(null=True)
    provider_batch_id = UnicodeAttribute(null=True)
    provider_state = MapAttribute(null=True)  # what the adapter needs to read results back
    request_counts = MapAttribute(null=True)
    last_polled_at = UnicodeAttribute(null=True)
    last_poll_error = UnicodeAttribute(null=True)
    cancel_requested = BooleanAttribute(null=True)
    poll_pk = UnicodeAttribute(null=True)

    by_status = StatusIndex()
    by_type = TypeIndex()
    active = ActiveIndex()
    by_source = SourceIndex()
    expiry = ExpiryIndex()
    heartbeat = HeartbeatIndex()
    polling = PollIndex()


class IdempotencyItem(Model):
    Meta = type("Meta", (_Meta,), {})

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    body_hash = UnicodeAttribute()
    job_id = UnicodeAttribute()
    ttl = NumberAttribute()


class MessageItem(Model):
    Meta = type("Meta", (_Meta,), {})

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    id = UnicodeAttribute()
    job_id = UnicodeAttribute()
    organization_id = UnicodeAttribute()
    role = UnicodeAttribute()
    content_json = UnicodeAttribute()
    created_at = UnicodeAttribute()


class ApiKeyItem(Model):
    Meta = type("Meta", (_Meta,), {})

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    organization_id = UnicodeAttribute()
    user_id = UnicodeAttribute()
    created_at = UnicodeAttribute()
    name = UnicodeAttribute(null=True)


_transactions = Connection(region=_CFG.region, host=_CFG.endpoint_url)


def botocore_clients() -> list[Any]:
    """Every botocore client this module uses (tests count requests on them)."""
    models = [m for m in globals().values() if isinstance(m, type) and issubclass(m, Model) and m is not Model]
    return [m._get_connection().connection.client for m in models] + [_transactions.client]


# ---- keys --------------------------------------------------------------------------


def org_pk(org: str) -> str:
    return f"ORG#{org}"


def job_sk(job_id: str) -> str:
    return f"JOB#{job_id}"


def job_children_pk(job_id: str) -> str:
    """The partition of what is stored under a job: messages, deliveries, attempts, results."""
    return f"JOB#{job_id}"


def _shard(job_id: str) -> int:
    return zlib.crc32(job_id.encode()) % SWEEP_SHARDS


def status_key(org: str, status: str) -> str:
    return f"ORG#{org}#STATUS#{status}"


def type_key(org: str, job_type: str) -> str:
    return f"ORG#{org}#TYPE#{job_type}"


def active_key(org: str) -> str:
    return f"ORG#{org}#ACTIVE"


def source_key(org: str, source_id: Any) -> str | None:
    """The by-source index key of a job whose ``metadata.source_id`` is ``source_id``
    (None: only a non-empty string is indexed)."""
    return f"ORG#{org}#SOURCE#{source_id}" if isinstance(source_id, str) and source_id else None


def index_keys(org: str, job_id: str, status: str, job_type: str, source_id: Any) -> dict[str, str | None]:
    """The list-index keys a new job has in ``status`` (None = absent from that index)."""
    open_ = status in (states.CREATED, states.PENDING)
    return {
        "status_pk": status_key(org, status),
        "type_pk": type_key(org, job_type),
        "active_pk": None if states.is_terminal(status) else active_key(org),
        "source_pk": source_key(org, source_id),
        "exp_pk": f"EXP#{_shard(job_id)}" if open_ else None,
    }


def heartbeat_pk(job_id: str) -> str:
    return f"HB#{_shard(job_id)}"


def poll_pk(job_id: str) -> str:
    return f"POLL#{_shard(job_id)}"


# ---- JSON <-> DynamoDB values ------------------------------------------------------


def to_attribute_value(value: Any) -> dict[str, Any]:
    """A JSON value as a DynamoDB AttributeValue (pre-serialised, so PynamoDB passes it as is)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": repr(value) if isinstance(value, float) else str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list):
        return {"L": [to_attribute_value(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {k: to_attribute_value(v) for k, v in value.items()}}
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def check_dynamodb_json(value: Any, what: str, depth: int = 0) -> None:
    """Refuse JSON that DynamoDB cannot store faithfully (raises InvalidInput)."""
    if depth > 16:
        raise errors.InvalidInput(f"{what} is nested too deeply (at most 16 levels)")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if abs(value) >= 10**38:
            raise errors.InvalidInput(f"{what} holds an integer with more than 38 digits")
        return
    if isinstance(value, float):
        if not math.isfinite(value) or (value != 0 and not 1e-130 < abs(value) < 1e125):
            raise errors.InvalidInput(f"{what} holds a number out of range")
        return
    if isinstance(value, list):
        for v in value:
            check_dynamodb_json(v, what, depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not k:
                raise errors.InvalidInput(f"{what} has an empty key")
            check_dynamodb_json(v, what, depth + 1)
        return
    raise errors.InvalidInput(f"{what} is not JSON")


# ---- jobs --------------------------------------------------------------------------


def get_job(org: str, job_id: str) -> JobItem | None:
    try:
        # strongly consistent: a job read right after its create, update or delete sees it
        return JobItem.get(org_pk(org), job_sk(job_id), consistent_read=True)
    except JobItem.DoesNotExist:
        return None


def put_job(job: JobItem, idempotency: IdempotencyItem | None = None, now_epoch: int = 0) -> IdempotencyItem | None:
    """Store a new job: one PutItem, or one TransactWriteItems with its idempotency record.

    Returns None on success, or the live idempotency record that already holds the key.
    """
    if idempotency is None:
        try:
            job.save(condition=JobItem.pk.does_not_exist())
        except PutError as exc:
            _raise_input_error(_error_code(exc), _error_response(exc))
            raise
        return None
    try:
        with TransactWrite(connection=_transactions) as tx:
            tx.save(job, condition=JobItem.pk.does_not_exist())
            tx.save(
                idempotency,
                condition=IdempotencyItem.pk.does_not_exist() | (IdempotencyItem.ttl < now_epoch),
                return_values="ALL_OLD",
            )
    except TransactWriteError as exc:
        held = _refused(exc, 1)
        if held is not None:
            return IdempotencyItem.from_raw_data(held.raw_item) if held.raw_item else idempotency
        _reraise(exc)
    return None


class TransactionConflict(errors.Conflict):
    """DynamoDB refused a transaction because another one was writing the same item (409: retry)."""

    def __init__(self, detail: str = "another request wrote the same item at the same moment; retry") -> None:
        super().__init__(detail)


def _refused(exc: TransactWriteError, index: int) -> Any:
    """The cancellation reason of item ``index`` if its condition failed, else None."""
    reasons = exc.cancellation_reasons
    reason = reasons[index] if len(reasons) > index else None
    return reason if reason is not None and reason.code == "ConditionalCheckFailed" else None


def _reraise(exc: TransactWriteError) -> None:
    """Raise what a transaction refused for another reason means: a conflict (409) or bad input."""
    if any(r is not None and r.code == "TransactionConflict" for r in exc.cancellation_reasons):
        raise TransactionConflict() from exc
    _raise_input_error(_error_code(exc), _error_response(exc))
    raise exc


@dataclass
class UpdateOutcome:
    job: JobItem | None  # the job after the update, or as it was when the condition failed
    applied: bool


def update_job(
    org: str, job_id: str, actions: list[Action], condition: Condition, metadata_patch: dict[str, Any] | None = None
) -> UpdateOutcome:
    """One conditional UpdateItem on a job.

    The condition always includes the job's existence.  On a failed condition
    DynamoDB hands back the item as it is (``ReturnValuesOnConditionCheckFailure``),
    so the caller can tell 404 from 409 without a second request.
    ``metadata_patch`` is merged key by key in the same update (None removes a key).
    """
    conn = JobItem._get_connection().connection
    kwargs = conn.get_operation_kwargs(
        _Meta.table_name,
        org_pk(org),
        range_key=job_sk(job_id),
        actions=actions,
        condition=JobItem.pk.exists() & condition,
        return_values=ALL_NEW,
        return_values_on_condition_failure="ALL_OLD",
    )
    if metadata_patch:
        _merge_metadata(kwargs, metadata_patch)
    try:
        data = conn.dispatch("UpdateItem", kwargs)
    except Exception as exc:
        response = _error_response(exc)
        if _error_code(exc) == "ConditionalCheckFailedException":
            item = response.get("Item")
            return UpdateOutcome(JobItem.from_raw_data(item) if item else None, applied=False)
        _raise_input_error(_error_code(exc), response)
        raise
    return UpdateOutcome(JobItem.from_raw_data(data["Attributes"]), applied=True)


_CLAUSE = re.compile(r"(SET|REMOVE|ADD|DELETE) (.*?)(?= (?:SET|REMOVE|ADD|DELETE) |$)")


def _merge_metadata(kwargs: dict[str, Any], patch: dict[str, Any]) -> None:
    """Add ``SET metadata.<key> = v`` / ``REMOVE metadata.<key>`` to an update.

    Written here rather than with PynamoDB paths, which read ``[n]`` in a key
    as a list index: a metadata key is always one attribute name, whatever it holds.
    """
    names = kwargs.setdefault("ExpressionAttributeNames", {})
    values = kwargs.setdefault("ExpressionAttributeValues", {})
    names["#md"] = "metadata"
    clauses: dict[str, list[str]] = {}
    for keyword, body in _CLAUSE.findall(kwargs.get("UpdateExpression", "")):
        clauses.setdefault(keyword, []).append(body)
    for i, (key, value) in enumerate(patch.items()):
        names[f"#mk{i}"] = key
        if value is None:
            clauses.setdefault("REMOVE", []).append(f"#md.#mk{i}")
        else:
            values[f":mv{i}"] = to_attribute_value(value)
            clauses.setdefault("SET", []).append(f"#md.#mk{i} = :mv{i}")
    kwargs["UpdateExpression"] = " ".join(f"{keyword} {', '.join(parts)}" for keyword, parts in clauses.items())


def _error_response(exc: BaseException) -> dict[str, Any]:
    """The botocore error response behind a PynamoDB exception: the original one, which keeps
    the item ``ReturnValuesOnConditionCheckFailure`` hands back (PynamoDB's copy drops it)."""
    found: dict[str, Any] = {}
    link: BaseException | None = exc
    while link is not None:
        found = getattr(link, "response", None) or found
        link = getattr(link, "cause", None) or link.__cause__
    return found


def _error_code(exc: BaseException) -> str | None:
    return _error_response(exc).get("Error", {}).get("Code")


def _is_condition_failure(exc: BaseException) -> bool:
    return _error_code(exc) == "ConditionalCheckFailedException"


def _raise_input_error(code: str | None, response: dict) -> None:
    if code == "ValidationException":
        message = response.get("Error", {}).get("Message", "")
        if "item size" in message.lower():
            raise errors.BodyTooLarge("the job would exceed the maximum item size (400 KB)")
        raise errors.InvalidInput(f"the job cannot be stored: {message}")


def delete_job(org: str, job_id: str) -> JobItem | None:
    """Delete a job in one request; returns the deleted job, or None if there was none."""
    conn = JobItem._get_connection()
    try:
        data = conn.delete_item(
            org_pk(org), range_key=job_sk(job_id), condition=JobItem.pk.exists(), return_values="ALL_OLD"
        )
    except DeleteError as exc:
        if _is_condition_failure(exc):
            return None
        raise
    return JobItem.from_raw_data(data["Attributes"])


@dataclass(frozen=True)
class ListQuery:
    org: str
    low: str  # inclusive bounds on the job id
    high: str
    descending: bool
    limit: int
    status: str | None = None
    active: bool | None = None
    job_type: str | None = None
    source_id: str | None = None


def list_jobs(q: ListQuery) -> list[JobItem]:
    """One page of jobs.

    The most selective filter picks the index (source, status, type, active, or
    the organization's partition); the others become a filter expression, in
    which case DynamoDB may need more than one request to fill the page.
    """
    filters: list[Condition] = []
    if q.source_id is not None:
        model, hash_key = JobItem.by_source, f"ORG#{q.org}#SOURCE#{q.source_id}"
    elif q.status is not None:
        model, hash_key = JobItem.by_status, status_key(q.org, q.status)
    elif q.job_type is not None:
        model, hash_key = JobItem.by_type, type_key(q.org, q.job_type)
    elif q.active:
        model, hash_key = JobItem.active, active_key(q.org)
    else:
        model, hash_key = JobItem, org_pk(q.org)
    if q.status is not None and model is not JobItem.by_status:
        filters.append(JobItem.status == q.status)
    if q.job_type is not None and model is not JobItem.by_type:
        filters.append(JobItem.job_type == q.job_type)
    if q.active is True and model is not JobItem.active:
        filters.append(JobItem.status.is_in(*states.ACTIVE))
    elif q.active is False:
        filters.append(JobItem.status.is_in(*states.TERMINAL))

    if model is JobItem:
        key_condition = JobItem.sk.between(job_sk(q.low), job_sk(q.high))
    else:
        key_condition = JobItem.id.between(q.low, q.high)
    condition = None
    for f in filters:
        condition = f if condition is None else condition & f
    return list(
        model.query(
            hash_key,
            range_key_condition=key_condition,
            filter_condition=condition,
            scan_index_forward=not q.descending,
            limit=q.limit,
            page_size=q.limit if condition is None else max(q.limit, 100),
        )
    )


# ---- idempotency -------------------------------------------------------------------


def idempotency_sk(key: str) -> str:
    return f"IDEM#{key}"


# ---- messages ----------------------------------------------------------------------


def put_message(org: str, message: MessageItem) -> bool:
    """Store a message if its job exists in ``org`` (one TransactWriteItems). False if not."""
    try:
        with TransactWrite(connection=_transactions) as tx:
            tx.condition_check(JobItem, org_pk(org), job_sk(message.job_id), condition=JobItem.pk.exists())
            tx.save(message, condition=MessageItem.pk.does_not_exist())
    except TransactWriteError as exc:
        if _refused(exc, 0):
            return False
        _reraise(exc)
    return True


def list_messages(
    job_id: str, low: str, high: str, descending: bool, limit: int, role: str | None
) -> list[MessageItem]:
    return list(
        MessageItem.query(
            job_children_pk(job_id),
            range_key_condition=MessageItem.sk.between(f"MSG#{low}", f"MSG#{high}"),
            filter_condition=(MessageItem.role == role) if role else None,
            scan_index_forward=not descending,
            limit=limit,
            page_size=limit if role is None else max(limit, 100),
        )
    )


# ---- API keys ----------------------------------------------------------------------


def api_key_pk(key_hash: str) -> str:
    return f"APIKEY#{key_hash}"


def get_api_key(key_hash: str) -> ApiKeyItem | None:
    try:
        return ApiKeyItem.get(api_key_pk(key_hash), "APIKEY")
    except ApiKeyItem.DoesNotExist:
        return None


def put_api_key(item: ApiKeyItem) -> None:
    item.save()


def delete_api_key(key_hash: str) -> bool:
    try:
        ApiKeyItem(api_key_pk(key_hash), "APIKEY").delete(condition=ApiKeyItem.pk.exists())
    except DeleteError as exc:
        if _is_condition_failure(exc):
            return False
        raise
    return True


# ---- webhooks: secrets, deliveries, attempts ---------------------------------------
#
#   webhook secret     ORG#<org>      WEBHOOK_SECRET
#   delivery           JOB#<job id>   DLV#<delivery id>   (one per event sent; a redelivery is another)
#   attempt            JOB#<job id>   ATT#<attempt id>    (one per HTTP attempt, time-ordered)


class WebhookSecretItem(Model):
    Meta = type("Meta", (_Meta,), {})

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    secret = UnicodeAttribute()
    previous_secret = UnicodeAttribute(null=True)
    previous_valid_until = NumberAttribute(null=True)  # epoch seconds
    rotated_at = UnicodeAttribute(null=True)


class DeliveryItem(Model):
    """The state of one event's delivery; every claim and outcome is a conditional write on it."""

    Meta = type("Meta", (_Meta,), {})

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    webhook_id = UnicodeAttribute()
    state = UnicodeAttribute()  # sending | waiting | succeeded | gone | failed
    attempts = NumberAttribute(default=0)
    lease_until = NumberAttribute(default=0)


class AttemptItem(Model):
    Meta = type("Meta", (_Meta,), {})

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    webhook_id = UnicodeAttribute()
    delivery_id = UnicodeAttribute()
    event_type = UnicodeAttribute()
    attempt = NumberAttribute()
    sent_at = UnicodeAttribute()
    status_code = NumberAttribute(null=True)
    error = UnicodeAttribute(null=True)
    duration_ms = NumberAttribute()
    succeeded = BooleanAttribute()


WEBHOOK_SECRET_SK = "WEBHOOK_SECRET"


def get_webhook_secret(org: str) -> WebhookSecretItem | None:
    try:
        return WebhookSecretItem.get(org_pk(org), WEBHOOK_SECRET_SK)
    except WebhookSecretItem.DoesNotExist:
        return None


def create_webhook_secret(org: str, secret: str) -> WebhookSecretItem:
    """Store the organization's first secret; if one appeared meanwhile, return that one."""
    item = WebhookSecretItem(org_pk(org), WEBHOOK_SECRET_SK, secret=secret)
    try:
        item.save(condition=WebhookSecretItem.pk.does_not_exist())
    except PutError as exc:
        if not _is_condition_failure(exc):
            raise
        return WebhookSecretItem.get(org_pk(org), WEBHOOK_SECRET_SK, consistent_read=True)
    return item


def rotate_webhook_secret(org: str, new_secret: str, previous_valid_until: int, rotated_at: str) -> WebhookSecretItem:
    """Make ``new_secret`` current; the current one stays valid until ``previous_valid_until``."""
    conn = WebhookSecretItem._get_connection().connection
    kwargs = conn.get_operation_kwargs(
        _Meta.table_name,
        org_pk(org),
        range_key=WEBHOOK_SECRET_SK,
        actions=[
            WebhookSecretItem.previous_secret.set(WebhookSecretItem.secret | new_secret),
            WebhookSecretItem.previous_valid_until.set(previous_valid_until),
            WebhookSecretItem.secret.set(new_secret),
            WebhookSecretItem.rotated_at.set(rotated_at),
        ],
        return_values=ALL_NEW,
    )
    data = conn.dispatch("UpdateItem", kwargs)
    return WebhookSecretItem.from_raw_data(data["Attributes"])


@dataclass
class Claim:
    claimed: bool
    attempt: int = 0  # the number of the attempt this claim allows (1-based)
    job_missing: bool = False
    current: DeliveryItem | None = None  # the delivery as it was, when the claim was refused


def claim_delivery(
    org: str, job_id: str, delivery_id: str, webhook_id: str, seen: int, now_epoch: int, lease_until: int,
    takeover: bool = False,
) -> Claim:
    """Take the right to make attempt ``seen + 1`` of a delivery (one TransactWriteItems).

    ``seen`` is the number of attempts the caller knows were made: 0 for a new
    event, k for the retry queued after attempt k. A plain claim succeeds for a
    new delivery (seen 0, no item yet) or for the retry the item waits for; a
    ``takeover`` claim also succeeds if attempt ``seen`` is still "sending" and
    its holder's lease has run out (it crashed). Any other claim is a duplicate
    (a stream record delivered twice, an SQS message received twice) and is
    refused, so an event is never sent by two holders at once. A refused claim
    returns the delivery as it is.
    """
    waiting = (DeliveryItem.state == "waiting") & (DeliveryItem.attempts == seen)
    if takeover:
        abandoned = (DeliveryItem.state == "sending") & (DeliveryItem.attempts == seen) & (DeliveryItem.lease_until < now_epoch)
        condition = abandoned | waiting
    elif seen == 0:
        condition = DeliveryItem.pk.does_not_exist()
    else:
        condition = waiting
    item = DeliveryItem(job_children_pk(job_id), f"DLV#{delivery_id}")
    try:
        with TransactWrite(connection=_transactions) as tx:
            tx.condition_check(JobItem, org_pk(org), job_sk(job_id), condition=JobItem.pk.exists())
            tx.update(
                item,
                actions=[
                    DeliveryItem.webhook_id.set(webhook_id),
                    DeliveryItem.state.set("sending"),
                    DeliveryItem.attempts.set(seen + 1),
                    DeliveryItem.lease_until.set(lease_until),
                ],
                condition=condition,
                return_values="ALL_OLD",
            )
    except TransactWriteError as exc:
        if _refused(exc, 0):
            return Claim(False, job_missing=True)
        held = _refused(exc, 1)
        if held is not None:
            return Claim(False, current=DeliveryItem.from_raw_data(held.raw_item) if held.raw_item else None)
        _reraise(exc)
    return Claim(True, attempt=seen + 1)


def record_attempt(
    org: str, job_id: str, delivery_id: str, attempt: AttemptItem, state: str, job_actions: list[Action]
) -> bool:
    """Write one attempt's outcome: the delivery's state, the attempt row and the job's
    ``callback_*`` members, in one transaction. Returns False if the job is gone
    (then the delivery and the attempt are still recorded)."""
    delivery = DeliveryItem(job_children_pk(job_id), f"DLV#{delivery_id}")
    held = (DeliveryItem.attempts == attempt.attempt) & (DeliveryItem.state == "sending")
    try:
        with TransactWrite(connection=_transactions) as tx:
            tx.update(delivery, actions=[DeliveryItem.state.set(state)], condition=held)
            tx.save(attempt)
            tx.update(
                JobItem(org_pk(org), job_sk(job_id)), actions=job_actions, condition=JobItem.pk.exists()
            )
    except TransactWriteError as exc:
        if _refused(exc, 2):
            with TransactWrite(connection=_transactions) as tx:
                tx.update(delivery, actions=[DeliveryItem.state.set(state)], condition=held)
                tx.save(attempt)
            return False
        raise
    return True


def list_attempts(job_id: str, limit: int) -> list[AttemptItem]:
    return list(
        AttemptItem.query(
            job_children_pk(job_id), range_key_condition=AttemptItem.sk.startswith("ATT#"), limit=limit, page_size=limit
        )
    )



# ---- batches, the scheduler's lease, the simulated provider ------------------------
#
#   batch result       JOB#<job id>          ITEM#<custom id>
#   scheduler lease    LEASE#<name>          LEASE
#   simulated batch    SIMBATCH#<batch id>   SIMBATCH


class BatchResultItem(Model):
    Meta = type("Meta", (_Meta,), {})

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    custom_id = UnicodeAttribute()
    status = UnicodeAttribute()
    result_json = UnicodeAttribute()
    truncated = BooleanAttribute(default=False)


class LeaseItem(Model):
    Meta = type("Meta", (_Meta,), {})

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    holder = UnicodeAttribute()
    until = NumberAttribute()


class SimulatedBatchItem(Model):
    Meta = type("Meta", (_Meta,), {})

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    requests_json = UnicodeAttribute()
    polls = NumberAttribute(default=0)
    cancel_requested = BooleanAttribute(default=False)
    created_at = UnicodeAttribute()


class BatchOwnerItem(Model):
    """Which organization tracks a provider batch: the deployment's provider key is shared,
    so one organization may not register another's batch id and read its results."""

    Meta = type("Meta", (_Meta,), {})

    pk = UnicodeAttribute(hash_key=True)  # PROVBATCH#<provider>#<provider batch id>
    sk = UnicodeAttribute(range_key=True)  # OWNER
    organization_id = UnicodeAttribute()




def put_batch_job(job: JobItem) -> bool:
    """Store a new batch job and claim its provider batch for the job's organization (one
    TransactWriteItems). False if another organization already tracks that provider batch."""
    owner = BatchOwnerItem(
        f"PROVBATCH#{job.provider}#{job.provider_batch_id}", "OWNER", organization_id=job.organization_id
    )
    try:
        with TransactWrite(connection=_transactions) as tx:
            tx.save(job, condition=JobItem.pk.does_not_exist())
            tx.save(owner, condition=BatchOwnerItem.pk.does_not_exist() | (BatchOwnerItem.organization_id == job.organization_id))
    except TransactWriteError as exc:
        if _refused(exc, 1):
            return False
        _reraise(exc)
    return True


def running_batches() -> list[JobItem]:
    """Every batch job still running, from the polling index (one Query per shard)."""
    found: list[JobItem] = []
    for shard in range(SWEEP_SHARDS):
        found.extend(JobItem.polling.query(f"POLL#{shard}"))
    return found


def due_expiries(now_iso: str) -> Iterator[tuple[str, str]]:
    """(organization, job id) of created/pending jobs past ``expires_at``, read as needed."""
    for shard in range(SWEEP_SHARDS):
        for item in JobItem.expiry.query(f"EXP#{shard}", JobItem.expires_at < now_iso):
            yield item.pk.removeprefix("ORG#"), item.sk.removeprefix("JOB#")


def due_heartbeats(now_epoch: int) -> Iterator[tuple[str, str]]:
    """(organization, job id) of running jobs whose heartbeat deadline has passed, read as needed."""
    for shard in range(SWEEP_SHARDS):
        for item in JobItem.heartbeat.query(f"HB#{shard}", JobItem.hb_due < now_epoch):
            yield item.pk.removeprefix("ORG#"), item.sk.removeprefix("JOB#")


def put_batch_results(results: list[BatchResultItem]) -> None:
    """Store results (BatchWriteItem, 25 a request; overwriting makes a repeat harmless)."""
    with BatchResultItem.batch_write() as batch:
        for item in results:
            batch.save(item)


def list_batch_results(job_id: str, after: str | None, limit: int) -> list[BatchResultItem]:
    # "ITEM$" sorts right after every "ITEM#..." key; "\x00" makes the lower bound exclusive
    low = f"ITEM#{after}\x00" if after is not None else "ITEM#"
    condition = BatchResultItem.sk.between(low, "ITEM$")
    return list(BatchResultItem.query(job_children_pk(job_id), range_key_condition=condition, limit=limit, page_size=limit))


def take_lease(name: str, holder: str, now_epoch: int, until: int) -> LeaseItem | None:
    """Take the named lease if it is free or expired; returns None on success, else the holder's lease."""
    item = LeaseItem(f"LEASE#{name}", "LEASE", holder=holder, until=until)
    try:
        item.save(condition=LeaseItem.pk.does_not_exist() | (LeaseItem.until < now_epoch))
    except PutError as exc:
        if not _is_condition_failure(exc):
            raise
        try:
            return LeaseItem.get(f"LEASE#{name}", "LEASE", consistent_read=True)
        except LeaseItem.DoesNotExist:
            return LeaseItem(f"LEASE#{name}", "LEASE", holder="?", until=now_epoch)
    return None


def release_lease(name: str, holder: str) -> None:
    try:
        LeaseItem(f"LEASE#{name}", "LEASE").delete(condition=LeaseItem.holder == holder)
    except DeleteError as exc:
        if not _is_condition_failure(exc):
            raise


def simulated_batch(batch_id: str) -> SimulatedBatchItem | None:
    try:
        return SimulatedBatchItem.get(f"SIMBATCH#{batch_id}", "SIMBATCH", consistent_read=True)
    except SimulatedBatchItem.DoesNotExist:
        return None


def put_simulated_batch(item: SimulatedBatchItem) -> None:
    item.save()


def count_simulated_poll(batch_id: str) -> SimulatedBatchItem:
    item = SimulatedBatchItem(f"SIMBATCH#{batch_id}", "SIMBATCH")
    item.update(actions=[SimulatedBatchItem.polls.add(1)], condition=SimulatedBatchItem.pk.exists())
    return item


def cancel_simulated_batch(batch_id: str) -> None:
    SimulatedBatchItem(f"SIMBATCH#{batch_id}", "SIMBATCH").update(
        actions=[SimulatedBatchItem.cancel_requested.set(True)], condition=SimulatedBatchItem.pk.exists()
    )


class _KeyItem(Model):
    """Any item of the table, by its keys alone (for deletes that do not care what it is)."""

    Meta = type("Meta", (_Meta,), {})

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)




def delete_job_children(job_id: str) -> int:
    """Delete everything stored under a deleted job (messages, webhook deliveries and attempts,
    batch results): Query its partition, BatchWriteItem the deletes. Returns how many."""
    removed = 0
    with _KeyItem.batch_write() as batch:
        for item in _KeyItem.query(job_children_pk(job_id), attributes_to_get=["pk", "sk"]):
            batch.delete(item)
            removed += 1
    return removed
