"""Webhook state: one item per job (``JOB#<id>#WH``, right after the job), and the secrets.

The item holds, for each delivery of the job's terminal event (the first one and
every redelivery), its state (``d_<delivery id>``: ``st`` sending | waiting |
succeeded | gone | failed, ``n`` attempts made, ``lease`` until when a sender
owns it, ``r0`` the attempt a dead letter's redrive started from); the view a
reader of the job sees (``callback_sent_at``, ``callback_status_code``,
``callback_error``: the last attempt); and the attempts themselves (``log``, the
last ``LOG_SIZE`` attempts, slot = the attempt's sequence number modulo that).
A delivery whose retries ran out is in the ``failed`` index (``fail_pk``,
``fail_at``) until a later delivery of the job succeeds.

The first attempt on a job's item is made without a claim and recorded with
one write of this small item (``record_first``): the stream hands a record to
one invocation at a time, and a record seen again finds that attempt recorded.
Every later attempt (a retry, a redelivery, a takeover, a redrive) claims first
and records after: two writes. None rewrites the job.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from . import layout
from .db import Expr, Refused, batch_get, call, from_item, query_all, table, to_item, update_expression

LOG_SIZE = 50
SENDING, WAITING, SUCCEEDED, GONE, FAILED = "sending", "waiting", "succeeded", "gone", "failed"


def delivery_attribute(delivery_id: str) -> str:
    return f"d_{delivery_id}"


class Claim(NamedTuple):
    claimed: bool
    attempt: int = 0  # the number of the attempt this claim allows (1-based, counted per delivery)
    round_start: int = 0  # attempts made before this round (a redriven dead letter starts a new one)
    seq: int = 0  # the attempt's number among all of the job's attempts (its log slot)
    current: dict[str, Any] | None = None  # the delivery as it was, when the claim was refused


def claim(
    org: str, job_id: str, delivery_id: str, seen: int, now_epoch: int, lease_until: int,
    takeover: bool = False, redrive: bool = False, ttl: int | None = None, event: dict[str, Any] | None = None,
) -> Claim:
    """Take the right to make attempt ``seen + 1`` of a delivery (one UpdateItem).

    ``seen`` is how many attempts the caller knows were made: 0 for a new event, k for
    the retry queued after attempt k. A plain claim succeeds for a new delivery or for
    the retry the delivery waits for; a ``takeover`` also if attempt ``seen`` is still
    "sending" and its holder's lease has run out (it crashed); a ``redrive`` (a dead
    letter sent back) if the delivery ended failed after ``seen`` attempts and the job is
    still in the failed index (not recovered since), and starts a new round of retries. Anything else is a duplicate (a stream record or SQS message
    seen twice) and is refused, so one event is never sent by two holders at once.
    """
    e = Expr()
    d = e.n(delivery_attribute(delivery_id))
    state = lambda st: f"{d}.{e.n('st')} = {e.v(st)} AND {d}.{e.n('n')} = {e.v(seen)}"  # noqa: E731
    sets = _job_sets(e, org, job_id, ttl, event) + [f"{e.n('log')} = if_not_exists({e.n('log')}, {e.v({})})"]
    if seen == 0 and not takeover:
        condition = f"attribute_not_exists({d})"
        sets.append(f"{d} = {e.v({'st': SENDING, 'n': 1, 'lease': lease_until, 'r0': 0})}")
    else:
        if redrive:
            # not if the job's failure was recovered since (a later delivery succeeded, or is
            # on its way: it marks the job failed again if it fails too)
            condition = f"{state(FAILED)} AND attribute_exists({e.n('fail_pk')})"
            sets.append(f"{d}.{e.n('r0')} = {e.v(seen)}")
        elif takeover:
            condition = f"({state(SENDING)} AND {d}.{e.n('lease')} < {e.v(now_epoch)}) OR ({state(WAITING)})"
        else:
            condition = state(WAITING)
        sets += [
            f"{d}.{e.n('st')} = {e.v(SENDING)}", f"{d}.{e.n('n')} = {e.v(seen + 1)}",
            f"{d}.{e.n('lease')} = {e.v(lease_until)}",
        ]
    try:
        data = call(
            "UpdateItem", TableName=table(), Key=to_item(layout.webhook_key(org, job_id)),
            UpdateExpression=update_expression(sets, adds=[f"{e.n('seq')} {e.v(1)}"]),
            ConditionExpression=condition, ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD",
            **e.kwargs(),
        )
    except Refused as refused:
        current = (refused.item or {}).get(delivery_attribute(delivery_id))
        return Claim(False, current=current)
    item = from_item(data["Attributes"]) or {}
    delivery = item[delivery_attribute(delivery_id)]
    return Claim(True, attempt=seen + 1, round_start=int(delivery.get("r0", 0)), seq=int(item["seq"]))


def record(
    org: str, job_id: str, delivery_id: str, attempt: int, seq: int, state: str, entry: dict[str, Any],
    failed_at: str | None = None,
) -> bool:
    """Write one attempt's outcome (one UpdateItem): the delivery's state, the job's
    ``callback_*`` view and the attempt in the log. ``failed_at`` puts the item in the
    failed index (retries exhausted); a success takes it out. False if the claim was lost."""
    e = Expr()
    d = e.n(delivery_attribute(delivery_id))
    sets, removes = _outcome(e, org, job_id, state, entry, failed_at)
    sets += [
        f"{d}.{e.n('st')} = {e.v(state)}",
        f"{e.n('log')}.{e.n(str(seq % LOG_SIZE))} = {e.v({**entry, 'seq': seq})}",
    ]
    try:
        call(
            "UpdateItem", TableName=table(), Key=to_item(layout.webhook_key(org, job_id)),
            UpdateExpression=update_expression(sets, removes),
            ConditionExpression=f"{d}.{e.n('n')} = {e.v(attempt)} AND {d}.{e.n('st')} = {e.v(SENDING)}",
            **e.kwargs(),
        )
    except Refused:
        return False
    return True


def record_first(
    org: str, job_id: str, delivery_id: str, state: str, entry: dict[str, Any], ttl: int | None = None,
    event: dict[str, Any] | None = None, failed_at: str | None = None,
) -> bool:
    """Write the outcome of the first attempt made on the job's webhook item, made without a
    claim (one UpdateItem): what ``claim`` and ``record`` together write for attempt 1 of a
    delivery. False, and nothing written, if the item already holds an attempt (another
    delivery of the job, or this one, came first): the caller then claims as usual. (A job
    deleted during the POST gets its webhook item back, alone: its ``ttl``, the job's
    retention, takes it away.)"""
    e = Expr()
    seq = 1
    sets, removes = _outcome(e, org, job_id, state, entry, failed_at)
    sets += _job_sets(e, org, job_id, ttl, event) + [
        f"{e.n(delivery_attribute(delivery_id))} = {e.v({'st': state, 'n': 1, 'lease': 0, 'r0': 0})}",
        f"{e.n('seq')} = {e.v(seq)}",
        f"{e.n('log')} = {e.v({str(seq % LOG_SIZE): {**entry, 'seq': seq}})}",
    ]
    try:
        call(
            "UpdateItem", TableName=table(), Key=to_item(layout.webhook_key(org, job_id)),
            UpdateExpression=update_expression(sets, removes), ConditionExpression=f"attribute_not_exists({e.n('seq')})",
            **e.kwargs(),
        )
    except Refused:
        return False
    return True


def _job_sets(e: Expr, org: str, job_id: str, ttl: int | None, event: dict[str, Any] | None) -> list[str]:
    """What an item takes from its job when an attempt is claimed (or recorded unclaimed): whose
    it is, what the stats need of the job, and the job's retention."""
    sets = [f"{e.n('organization_id')} = {e.v(org)}", f"{e.n('job_id')} = {e.v(job_id)}"]
    if ttl is not None:
        sets.append(f"{e.n('ttl')} = {e.v(ttl)}")
    for name in ("job_type", "completed_at"):
        if event and event.get(name):
            sets.append(f"{e.n(name)} = {e.v(event[name])}")
    return sets


def _outcome(
    e: Expr, org: str, job_id: str, state: str, entry: dict[str, Any], failed_at: str | None,
) -> tuple[list[str], list[str]]:
    """(sets, removes) of an attempt's outcome: the job's ``callback_*`` view, and the failed
    index (entered when retries ran out, left on a success)."""
    sets = [f"{e.n('callback_sent_at')} = {e.v(entry['sent_at'])}"]
    removes = []
    for name in ("status_code", "error"):
        target = e.n(f"callback_{name}")
        if entry.get(name) is None:
            removes.append(target)
        else:
            sets.append(f"{target} = {e.v(entry[name])}")
    if failed_at is not None:
        sets += [f"{e.n('fail_pk')} = {e.v(layout.failed_pk(org, job_id))}", f"{e.n('fail_at')} = {e.v(failed_at)}"]
    elif state == SUCCEEDED:
        removes += [e.n("fail_pk"), e.n("fail_at")]
    return sets, removes


def attempts(webhook_state: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The attempts kept in a webhook item, oldest first."""
    log = (webhook_state or {}).get("log") or {}
    return sorted(log.values(), key=lambda entry: entry.get("seq", 0))


def deliveries(webhook_state: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {k[2:]: v for k, v in (webhook_state or {}).items() if k.startswith("d_") and isinstance(v, dict)}


def failed_since(org: str, since: str, until: str, limit: int) -> list[dict[str, Any]]:
    """Webhook items whose last delivery ended failed between ``since`` and ``until``
    (the failed index, one Query per shard, at most ``limit`` in all)."""
    found: list[dict[str, Any]] = []
    for pk in layout.failed_pks(org):
        if len(found) >= limit:
            break
        e = Expr()
        found += query_all(
            limit - len(found), TableName=table(), IndexName="failed",
            KeyConditionExpression=f"{e.n('fail_pk')} = {e.v(pk)} AND {e.n('fail_at')} BETWEEN {e.v(since)} AND {e.v(until)}",
            **e.kwargs(),
        )
    return found[:limit]


def unmark_failed(org: str, job_id: str, fail_at: str) -> bool:
    """Take a webhook item out of the failed index if it is still there as read."""
    e = Expr()
    try:
        call(
            "UpdateItem", TableName=table(), Key=to_item(layout.webhook_key(org, job_id)),
            UpdateExpression=f"REMOVE {e.n('fail_pk')}, {e.n('fail_at')}",
            ConditionExpression=f"{e.n('fail_at')} = {e.v(fail_at)}", **e.kwargs(),
        )
    except Refused:
        return False
    return True


def delete_webhook_state(org_shard_pk: str, job_id: str) -> None:
    call("DeleteItem", TableName=table(), Key=to_item({"pk": org_shard_pk, "sk": f"JOB#{job_id}{layout.WEBHOOK_SUFFIX}"}))


# ---- a delivery's reads ----------------------------------------------------------------


def read_for_delivery(org: str, job_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None, dict[str, Any] | None]:
    """(the job, its webhook item, the organization's secret item), each None if absent, read
    strongly consistent in one BatchGetItem: a delivery's reads in one round trip instead of
    the job's Query and the secret's GetItem (3 read units instead of 2: each item is rounded
    up to 4 KB on its own)."""
    job_key, webhook_key, secret_key = layout.job_key(org, job_id), layout.webhook_key(org, job_id), layout.secret_key(org)
    found = {(item["pk"], item["sk"]): item for item in batch_get([job_key, webhook_key, secret_key], consistent=True)}

    def of(key: dict[str, str]) -> dict[str, Any] | None:
        return found.get((key["pk"], key["sk"]))

    return of(job_key), of(webhook_key), of(secret_key)


# ---- secrets ---------------------------------------------------------------------------


def get_secret(org: str) -> dict[str, Any] | None:
    data = call("GetItem", TableName=table(), Key=to_item(layout.secret_key(org)), ConsistentRead=True)
    return from_item(data.get("Item"))


def create_secret(org: str, secret: str) -> dict[str, Any]:
    """Store the organization's first secret; if one appeared meanwhile, return that one."""
    record = {**layout.secret_key(org), "secret": secret}
    try:
        call("PutItem", TableName=table(), Item=to_item(record), ConditionExpression="attribute_not_exists(pk)")
    except Refused:
        existing = get_secret(org)
        assert existing is not None
        return existing
    return record


def rotate_secret(org: str, new_secret: str, previous_valid_until: int, rotated_at: str) -> dict[str, Any]:
    """Make ``new_secret`` current; the current one stays valid until ``previous_valid_until``
    (a second rotation within that time drops the oldest)."""
    e = Expr()
    data = call(
        "UpdateItem", TableName=table(), Key=to_item(layout.secret_key(org)),
        UpdateExpression=update_expression([
            f"{e.n('previous_secret')} = if_not_exists({e.n('secret')}, {e.v(new_secret)})",
            f"{e.n('previous_valid_until')} = {e.v(previous_valid_until)}",
            f"{e.n('secret')} = {e.v(new_secret)}",
            f"{e.n('rotated_at')} = {e.v(rotated_at)}",
        ]),
        ReturnValues="ALL_NEW", **e.kwargs(),
    )
    return from_item(data["Attributes"]) or {}
