"""Jobs: read, write, delete, list; their idempotency records and messages.

A job is one item; its webhook state (the ``callback_*`` members a reader
sees, the deliveries and their attempts) is a second item right after it in
the same partition (``JOB#<id>#WH``, see webhooks.py), so reading a job and
its callback state is one ``Query``, and a webhook attempt never rewrites the
job (a job item with 1 KB of metadata costs 2 write units; the webhook item 1).
"""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, NamedTuple

from .. import errors
from . import layout
from .db import Cancelled, Expr, Refused, batch_get, call, from_item, table, to_av, to_item, update_expression

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

#: heartbeat deadline of a running job without a heartbeat timeout (never due)
NEVER = 10**11


# ---- one job ------------------------------------------------------------------------


def get_job(org: str, job_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The job and its webhook state (either may be None), strongly consistent, in one Query."""
    key = layout.job_key(org, job_id)
    data = call(
        "Query", TableName=table(), ConsistentRead=True,
        KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b",
        ExpressionAttributeValues={
            ":p": to_av(key["pk"]), ":a": to_av(key["sk"]), ":b": to_av(key["sk"] + layout.WEBHOOK_SUFFIX),
        },
    )
    job = webhook = None
    for item in data.get("Items", []):
        record = from_item(item)
        assert record is not None
        if record["sk"] == key["sk"]:
            job = record
        else:
            webhook = record
    return job, webhook


def get_webhook_state(org: str, job_id: str) -> dict[str, Any] | None:
    data = call("GetItem", TableName=table(), Key=to_item(layout.webhook_key(org, job_id)), ConsistentRead=True)
    return from_item(data.get("Item"))


def put_job(record: dict[str, Any]) -> None:
    """Store a new job (one PutItem; refused if the id exists, which never happens by chance)."""
    call("PutItem", TableName=table(), Item=to_item(record), ConditionExpression="attribute_not_exists(pk)")


@dataclass
class Write:
    """One conditional UpdateItem on a job, described by what it changes and requires."""

    sets: dict[str, Any] = field(default_factory=dict)
    removes: list[str] = field(default_factory=list)
    #: merged into ``metadata`` key by key (a None value removes the key); keys are plain names
    metadata: dict[str, Any] | None = None
    #: (status, entry): recorded in the ``history`` map unless that status is there already
    history: tuple[str, list[Any]] | None = None
    #: a heartbeat at this epoch second: hb_due = heartbeat_timeout_seconds + it
    heartbeat: int | None = None
    #: the job's status must be one of these
    statuses: Iterable[str] | None = None
    #: more conditions: (attribute, operator, value); operator one of = <> < <= > >=
    conditions: list[tuple[str, str, Any]] = field(default_factory=list)


class Outcome(NamedTuple):
    job: dict[str, Any] | None  # after the write, or as it was when the condition failed (None: no job)
    applied: bool


def update_job(org: str, job_id: str, write: Write) -> Outcome:
    """Apply ``write`` in one request. A failed condition hands back the job as it is
    (``ReturnValuesOnConditionCheckFailure``), so a 404 and a 409 cost no second read."""
    e = Expr()
    sets = [f"{e.n(name)} = {e.v(value)}" for name, value in write.sets.items()]
    removes = [e.n(name) for name in write.removes]
    for name, value in (write.metadata or {}).items():
        path = f"{e.n('metadata')}.{e.n(name)}"
        if value is None:
            removes.append(path)
        else:
            sets.append(f"{path} = {e.v(value)}")
    if write.history is not None:
        entry = f"{e.n('history')}.{e.n(write.history[0])}"
        sets.append(f"{entry} = if_not_exists({entry}, {e.v(write.history[1])})")
    if write.heartbeat is not None:
        sets.append(f"{e.n('hb_due')} = if_not_exists({e.n('heartbeat_timeout_seconds')}, {e.v(NEVER)}) + {e.v(write.heartbeat)}")
    conditions = ["attribute_exists(pk)"]
    if write.statuses is not None:
        conditions.append(f"{e.n('status')} IN ({', '.join(e.v(s) for s in sorted(write.statuses))})")
    for name, op, value in write.conditions:
        conditions.append(f"{e.n(name)} {op} {e.v(value)}")
    try:
        data = call(
            "UpdateItem", TableName=table(), Key=to_item(layout.job_key(org, job_id)),
            UpdateExpression=update_expression(sets, removes), ConditionExpression=" AND ".join(conditions),
            ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD", **e.kwargs(),
        )
    except Refused as refused:
        return Outcome(refused.item, applied=False)
    return Outcome(from_item(data["Attributes"]), applied=True)


def delete_job(org: str, job_id: str) -> Outcome:
    """Delete a job in one request, unless it is a batch still running. The outcome holds
    the deleted job (applied), or the job that was kept, or None if there was none. What is
    stored under it (webhook state, messages, results) goes through the stream (cleanup)."""
    e = Expr()
    try:
        data = call(
            "DeleteItem", TableName=table(), Key=to_item(layout.job_key(org, job_id)),
            ConditionExpression=f"attribute_exists(pk) AND NOT ({e.n('job_type')} = {e.v('batch')} "
                                f"AND {e.n('status')} = {e.v('running')})",
            ReturnValues="ALL_OLD", ReturnValuesOnConditionCheckFailure="ALL_OLD", **e.kwargs(),
        )
    except Refused as refused:
        return Outcome(refused.item, applied=False)
    return Outcome(from_item(data.get("Attributes")), applied=True)


# ---- lists ----------------------------------------------------------------------------

#: a page stops at this many jobs fetched by key (4 BatchGetItem requests)
MAX_FETCHED = 400
#: at most this many shard queries per page
MAX_QUERIES = 8


class ListQuery(NamedTuple):
    org: str
    low: str  # inclusive bounds on the job id
    high: str
    descending: bool
    limit: int
    status: str | None = None
    active: bool | None = None
    job_type: str | None = None
    source_id: str | None = None
    updated_before: str | None = None
    created_before: str | None = None
    statuses: frozenset[str] | None = None  # any of these (bulk cancel: the active ones)


class Page(NamedTuple):
    jobs: list[tuple[dict[str, Any], dict[str, Any] | None]]  # (job, webhook state), in list order
    #: None: nothing more matches. Otherwise the exclusive cursor (an id) for the next page:
    #: ``before`` when descending, ``after`` when ascending.
    resume: str | None
    requests: int = 0


def matches(job: dict[str, Any], q: ListQuery) -> bool:
    if not (q.low <= job.get("id", "") <= q.high):
        return False
    status = job.get("status")
    if q.status is not None and status != q.status:
        return False
    if q.statuses is not None and status not in q.statuses:
        return False
    if q.active is not None and (status in ACTIVE) != q.active:
        return False
    if q.job_type is not None and job.get("job_type") != q.job_type:
        return False
    if q.source_id is not None and (job.get("metadata") or {}).get("source_id") != q.source_id:
        return False
    if q.updated_before is not None and not job.get("last_updated_at", "") < q.updated_before:
        return False
    if q.created_before is not None and not job.get("created_at", "") < q.created_before:
        return False
    return True


ACTIVE = frozenset({"created", "pending", "running"})
TERMINAL = frozenset({"completed", "failed", "cancelled", "expired"})


def list_jobs(q: ListQuery) -> Page:
    """One page of jobs, in a bounded number of requests whatever the filters and the data.

    The access path: ``source_id`` -> the source index; batches -> the batches index;
    only active statuses wanted -> the active index (each: at most 4 Queries, then the
    jobs by key, at most 4 BatchGetItem); anything else -> the organization's 8 table
    partitions, filtered by DynamoDB (8 Queries). The other filters are checked on the
    jobs themselves. Every partition of the family is read in parallel and the results
    merged by id; a page stops where some partition has not been read further, or at
    the fetch bound, and says where to resume.
    """
    wanted = _wanted_statuses(q)
    if not wanted:
        return Page([], None)
    if q.source_id is not None:
        return _index_page(q, "source", layout.source_pks(q.org, q.source_id), with_webhook=not wanted <= ACTIVE)
    if q.job_type == "batch":
        running = wanted & {"running"}
        ended = wanted & TERMINAL
        pks = (layout.batches_pks(q.org, True) if running else []) + (layout.batches_pks(q.org, False) if ended else [])
        if not pks:
            return Page([], None)
        return _index_page(q, "batches", pks, with_webhook=bool(ended))
    if wanted <= ACTIVE:
        return _index_page(q, "active", layout.active_pks(q.org), with_webhook=False)
    return _table_page(q)


def _wanted_statuses(q: ListQuery) -> frozenset[str]:
    wanted = ACTIVE | TERMINAL
    if q.status is not None:
        wanted &= {q.status}
    if q.statuses is not None:
        wanted &= q.statuses
    if q.active is True:
        wanted &= ACTIVE
    elif q.active is False:
        wanted &= TERMINAL
    return frozenset(wanted)


class _Shard(NamedTuple):
    entries: list[tuple[str, Any]]  # (id, payload) in scan order
    last: str | None  # the id of the last item DynamoDB evaluated, when it stopped early


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _parallel(calls: list[Callable[[], Any]]) -> list[Any]:
    global _pool
    if len(calls) == 1:
        return [calls[0]()]
    with _pool_lock:
        if _pool is None:
            from concurrent.futures import ThreadPoolExecutor  # with the first list that reads shards at once

            _pool = ThreadPoolExecutor(max_workers=MAX_QUERIES, thread_name_prefix="shard-query")
    return list(_pool.map(lambda fn: fn(), calls))


def _merge(shards: list[_Shard], descending: bool, boundary_read: bool) -> tuple[list[tuple[str, Any]], str | None]:
    """Merge shard results by id, keeping only what is certain to be in order: a shard that
    stopped early at id F has not been read past F, so nothing past the furthest-back such F
    may be shown yet. Returns (entries, cursor): the exclusive cursor the next page starts
    from, or None if every shard was read to the end. ``boundary_read``: the item at F
    itself was read whole (an index entry; in the table, a job's webhook item may follow it)."""
    frontier = None
    for shard in shards:
        if shard.last is not None:
            if frontier is None or (shard.last > frontier if descending else shard.last < frontier):
                frontier = shard.last
    merged = sorted((entry for shard in shards for entry in shard.entries), key=lambda e: e[0], reverse=descending)
    if frontier is None:
        return merged, None
    if boundary_read:
        kept = [e for e in merged if (e[0] >= frontier if descending else e[0] <= frontier)]
        return kept, frontier
    kept = [e for e in merged if (e[0] > frontier if descending else e[0] < frontier)]
    return kept, _just_past(frontier, descending)


def _just_past(frontier: str, descending: bool) -> str:
    """The exclusive cursor that makes the next page start at ``frontier`` itself."""
    from ..ids import predecessor, successor

    cursor = successor(frontier, "job") if descending else predecessor(frontier, "job")
    assert cursor is not None
    return cursor


def _filter_expression(q: ListQuery, e: Expr) -> str | None:
    """What DynamoDB can filter on the table path (webhook items have no status: they pass)."""
    parts = []
    wanted = _wanted_statuses(q)
    if wanted != ACTIVE | TERMINAL:
        parts.append(f"{e.n('status')} IN ({', '.join(e.v(s) for s in sorted(wanted))})")
    if q.job_type is not None:
        parts.append(f"{e.n('job_type')} = {e.v(q.job_type)}")
    if q.updated_before is not None:
        parts.append(f"{e.n('last_updated_at')} < {e.v(q.updated_before)}")
    if q.created_before is not None:
        parts.append(f"{e.n('created_at')} < {e.v(q.created_before)}")
    if not parts:
        return None
    return f"attribute_not_exists({e.n('status')}) OR ({' AND '.join(parts)})"


def _table_page(q: ListQuery) -> Page:
    filtered = q.status is not None or q.active is not None or q.job_type is not None \
        or q.updated_before is not None or q.created_before is not None or q.statuses is not None
    # a job and its webhook item are two items; a filtered read looks further to find matches
    per_shard = min(1000, max(100, 2 * q.limit)) if filtered else min(1000, 2 * -(-q.limit * 5 // (4 * layout.JOB_SHARDS)) + 4)

    def query(shard: int) -> Callable[[], _Shard]:
        def run() -> _Shard:
            e = Expr()
            kwargs: dict[str, Any] = {}
            expression = _filter_expression(q, e)
            if expression:
                kwargs["FilterExpression"] = expression
            data = call(
                "Query", TableName=table(), Limit=per_shard, ScanIndexForward=not q.descending,
                KeyConditionExpression=f"pk = {e.v(layout.org_shard_pk(q.org, shard))} AND sk BETWEEN "
                                       f"{e.v('JOB#' + q.low)} AND {e.v('JOB#' + q.high + layout.WEBHOOK_SUFFIX)}",
                **e.kwargs(), **kwargs,
            )
            records = [from_item(i) for i in data.get("Items", [])]
            last = data.get("LastEvaluatedKey")
            entries: list[tuple[str, Any]] = []
            webhooks = {layout.id_of_sk(r["sk"]): r for r in records if r["sk"].endswith(layout.WEBHOOK_SUFFIX)}  # type: ignore[index]
            for record in records:
                if record and not record["sk"].endswith(layout.WEBHOOK_SUFFIX):
                    entries.append((record["id"], (record, webhooks.get(record["id"]))))
            last_id = layout.id_of_sk(last["sk"]["S"]) if last else None
            return _Shard(entries, last_id)
        return run

    shards = _parallel([query(s) for s in range(layout.JOB_SHARDS)])
    merged, resume = _merge(shards, q.descending, boundary_read=False)
    jobs = [payload for _, payload in merged if matches(payload[0], q)]
    if len(jobs) > q.limit:
        return Page(jobs[:q.limit], jobs[q.limit - 1][0]["id"], layout.JOB_SHARDS)
    return Page(jobs, resume, layout.JOB_SHARDS)


def _index_page(q: ListQuery, index: str, pks: list[str], with_webhook: bool) -> Page:
    """A page through a KEYS_ONLY index: its shards' entries merged, then the jobs read by
    key (BatchGetItem) and checked against every filter. When a filter may drop jobs the
    index cannot judge, up to the fetch bound are read, so that a page is rarely short."""
    pk_name = layout.INDEXES[index][0]
    fetch_bound = MAX_FETCHED // (2 if with_webhook else 1)
    judged_by_index = index == "active" and q.status is None and q.job_type is None \
        and q.updated_before is None and q.created_before is None and q.statuses is None
    take = min(q.limit, fetch_bound) if judged_by_index else fetch_bound

    def query(pk: str) -> Callable[[], _Shard]:
        def run() -> _Shard:
            e = Expr()
            data = call(
                "Query", TableName=table(), IndexName=index, Limit=take, ScanIndexForward=not q.descending,
                KeyConditionExpression=f"{e.n(pk_name)} = {e.v(pk)} AND {e.n('id')} BETWEEN {e.v(q.low)} AND {e.v(q.high)}",
                **e.kwargs(),
            )
            entries = [(r["id"], r) for r in map(from_item, data.get("Items", [])) if r]
            last = data.get("LastEvaluatedKey")
            return _Shard(entries, last["id"]["S"] if last else None)
        return run

    shards = _parallel([query(pk) for pk in pks])
    merged, resume = _merge(shards, q.descending, boundary_read=True)
    # one entry per job (an index never holds a job twice, but a batch may move between
    # its two partitions while we read)
    seen: set[str] = set()
    candidates = [entry for entry in merged if not (entry[0] in seen or seen.add(entry[0]))]  # type: ignore[func-returns-value]
    if len(candidates) > take:
        candidates = candidates[:take]
        resume = candidates[-1][0]
    keys: list[dict[str, Any]] = []
    for _, entry in candidates:
        keys.append({"pk": entry["pk"], "sk": entry["sk"]})
        if with_webhook:
            keys.append({"pk": entry["pk"], "sk": entry["sk"] + layout.WEBHOOK_SUFFIX})
    found: dict[str, dict[str, Any]] = {}
    requests = len(pks)
    for start in range(0, len(keys), 100):
        requests += 1
        for record in batch_get(keys[start:start + 100]):
            found[record["sk"]] = record
    jobs = []
    for _, entry in candidates:
        job = found.get(entry["sk"])
        if job is not None and matches(job, q):
            jobs.append((job, found.get(entry["sk"] + layout.WEBHOOK_SUFFIX)))
    if len(jobs) > q.limit:
        return Page(jobs[:q.limit], jobs[q.limit - 1][0]["id"], requests)
    return Page(jobs, resume, requests)


# ---- the sweep's index ------------------------------------------------------------------


def due_entries(now_epoch: int, limit: int) -> list[dict[str, Any]]:
    """Entries of the due index whose date has passed, at most ``limit`` (one Query per shard),
    starting at a shard picked at random, so that a backlog in some shards never starves
    the others run after run."""
    found: list[dict[str, Any]] = []
    pks = list(layout.due_pks())
    first = random.randrange(len(pks))
    for pk in pks[first:] + pks[:first]:
        if len(found) >= limit:
            break
        e = Expr()
        data = call(
            "Query", TableName=table(), IndexName="due", Limit=limit - len(found),
            KeyConditionExpression=f"{e.n('due_pk')} = {e.v(pk)} AND {e.n('due_at')} < {e.v(now_epoch)}",
            **e.kwargs(),
        )
        found += [r for r in map(from_item, data.get("Items", [])) if r]
    return found


def read_items(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items index entries point at (``pk``/``sk``), up to 100, in one BatchGetItem."""
    return batch_get([{"pk": e["pk"], "sk": e["sk"]} for e in entries])


# ---- idempotency -----------------------------------------------------------------------


def put_idempotency(org: str, key: str, record: dict[str, Any], now_epoch: int) -> dict[str, Any] | None:
    """Store an idempotency record unless a live one holds the key; returns None when
    stored, else the record that holds it."""
    e = Expr()
    try:
        call(
            "PutItem", TableName=table(), Item=to_item({**layout.idempotency_key(org, key), **record}),
            ConditionExpression=f"attribute_not_exists(pk) OR {e.n('ttl')} < {e.v(now_epoch)}",
            ReturnValuesOnConditionCheckFailure="ALL_OLD", **e.kwargs(),
        )
    except Refused as refused:
        return refused.item or get_idempotency(org, key)
    return None


def get_idempotency(org: str, key: str) -> dict[str, Any] | None:
    data = call("GetItem", TableName=table(), Key=to_item(layout.idempotency_key(org, key)), ConsistentRead=True)
    return from_item(data.get("Item"))


def mark_idempotency_deleted(org: str, key: str, job_id: str) -> None:
    """The job a key created was deleted: a replay of the key is refused from now on."""
    e = Expr()
    try:
        call(
            "UpdateItem", TableName=table(), Key=to_item(layout.idempotency_key(org, key)),
            UpdateExpression=f"SET {e.n('deleted')} = {e.v(True)}",
            ConditionExpression=f"{e.n('job_id')} = {e.v(job_id)}", **e.kwargs(),
        )
    except Refused:
        pass  # expired, or the key was used again since


# ---- messages --------------------------------------------------------------------------


def put_message(org: str, job_id: str, record: dict[str, Any]) -> bool:
    """Store a message if its job exists in ``org`` (one TransactWriteItems: the job is
    checked, not written). False if there is no such job."""
    try:
        call("TransactWriteItems", TransactItems=[
            {"ConditionCheck": {"TableName": table(), "Key": to_item(layout.job_key(org, job_id)),
                                "ConditionExpression": "attribute_exists(pk)"}},
            {"Put": {"TableName": table(), "Item": to_item(record), "ConditionExpression": "attribute_not_exists(pk)"}},
        ])
    except Cancelled as cancelled:
        if cancelled.refused(0):
            return False
        raise
    return True


def list_messages(job_id: str, low: str, high: str, descending: bool, limit: int, role: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a job's messages (one Query); the id to resume after, or None."""
    e = Expr()
    kwargs: dict[str, Any] = {}
    if role is not None:
        kwargs["FilterExpression"] = f"{e.n('role')} = {e.v(role)}"
    data = call(
        "Query", TableName=table(), ConsistentRead=True, ScanIndexForward=not descending,
        Limit=limit if role is None else max(limit, 100),
        KeyConditionExpression=f"pk = {e.v(layout.children_pk(job_id))} AND sk BETWEEN {e.v('MSG#' + low)} AND {e.v('MSG#' + high)}",
        **e.kwargs(), **kwargs,
    )
    records = [r for r in map(from_item, data.get("Items", [])) if r]
    last = data.get("LastEvaluatedKey")
    if len(records) > limit:
        return records[:limit], records[limit - 1]["id"]
    return records, (last["sk"]["S"].removeprefix("MSG#") if last else None)
