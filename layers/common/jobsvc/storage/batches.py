"""Batch jobs: who owns a provider batch, the running ones for the poller, their results,
and the simulated provider's own batches.

A batch job is a job item (jobs.py) with the batch members, in the ``batches``
index of its organization (running or ended) and, while running, in the
service-wide ``polling`` index ordered by when it was last polled. Results are
items under the job (``JOB#<id>`` / ``ITEM#<custom id>``), written 25 at a time.
"""
from __future__ import annotations

from typing import Any, Callable

from . import layout
from ..errors import Unavailable
from .db import Cancelled, Expr, Refused, batch_get, batch_write, call, from_item, query_all, table, to_item, update_expression


def put_batch_job(record: dict[str, Any]) -> str | None:
    """Store a new batch job and claim its provider batch for the job's organization (one
    TransactWriteItems). Returns None when stored; otherwise the id of the job of that
    organization that already tracks the batch, or "" if another organization does."""
    org = record["organization_id"]
    owner = {**layout.owner_key(record["provider"], record["provider_batch_id"]),
             "organization_id": org, "job_id": record["id"]}
    try:
        call("TransactWriteItems", TransactItems=[
            {"Put": {"TableName": table(), "Item": to_item(record), "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Put": {"TableName": table(), "Item": to_item(owner), "ConditionExpression": "attribute_not_exists(pk)",
                     "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
        ])
    except Cancelled as cancelled:
        if cancelled.refused(1):
            held = cancelled.item(1) or {}
            return held.get("job_id", "") if held.get("organization_id") == org else ""
        raise
    return None


def get_owner(provider: str, provider_batch_id: str) -> dict[str, Any] | None:
    data = call("GetItem", TableName=table(), Key=to_item(layout.owner_key(provider, provider_batch_id)), ConsistentRead=True)
    return from_item(data.get("Item"))


def release_owner(provider: str, provider_batch_id: str, job_id: str) -> None:
    """A deleted batch job no longer tracks its provider batch."""
    e = Expr()
    try:
        call("DeleteItem", TableName=table(), Key=to_item(layout.owner_key(provider, provider_batch_id)),
             ConditionExpression=f"{e.n('job_id')} = {e.v(job_id)}", **e.kwargs())
    except Refused:
        pass


def polling_entries(limit_per_shard: int = 1000) -> list[dict[str, Any]]:
    """Every running batch's entry in the polling index (keys and ``polled_at``),
    least recently polled first."""
    found: list[dict[str, Any]] = []
    for pk in layout.poll_pks():
        e = Expr()
        found += query_all(TableName=table(), IndexName="polling", Limit=limit_per_shard,
                           KeyConditionExpression=f"{e.n('poll_pk')} = {e.v(pk)}", **e.kwargs())
    found.sort(key=lambda entry: entry.get("polled_at", 0))
    return found


def read_jobs(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The job items of index entries (BatchGetItem, 100 a request), in the entries' order."""
    found: dict[str, dict[str, Any]] = {}
    keys = [{"pk": e["pk"], "sk": e["sk"]} for e in entries]
    for start in range(0, len(keys), 100):
        for record in batch_get(keys[start:start + 100]):
            found[record["sk"]] = record
    return [found[e["sk"]] for e in entries if e["sk"] in found]


def put_results(records: list[dict[str, Any]], time_left: Callable[[], bool] | None = None) -> int:
    """Store results (BatchWriteItem, 25 a request; overwriting makes a repeat harmless).
    Returns how many could not be stored before ``time_left()`` said stop (0: all)."""
    for start in range(0, len(records), 25):
        chunk = [{"PutRequest": {"Item": to_item(r)}} for r in records[start:start + 25]]
        left = batch_write(chunk, time_left)
        if left:
            return left + max(0, len(records) - start - 25)
    return 0


def list_results(job_id: str, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a batch's results by custom_id (one Query); the custom_id to resume after."""
    e = Expr()
    # "ITEM$" sorts right after every "ITEM#..." key; "\x00" makes the lower bound exclusive
    low = f"ITEM#{after}\x00" if after is not None else "ITEM#"
    data = call(
        "Query", TableName=table(), ConsistentRead=True, Limit=limit,
        KeyConditionExpression=f"pk = {e.v(layout.children_pk(job_id))} AND sk BETWEEN {e.v(low)} AND {e.v('ITEM$')}",
        **e.kwargs(),
    )
    records = [r for r in map(from_item, data.get("Items", [])) if r]
    last = data.get("LastEvaluatedKey")
    return records, (last["sk"]["S"].removeprefix("ITEM#") if last else None)


def delete_children(job_id: str) -> int:
    """Delete everything stored under a job (messages, batch results): a consistent Query
    of its partition, then BatchWriteItem deletes. Returns how many."""
    removed = 0
    start = None
    while True:
        e = Expr()
        kwargs: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
        data = call("Query", TableName=table(), ConsistentRead=True, ProjectionExpression="pk, sk",
                    KeyConditionExpression=f"pk = {e.v(layout.children_pk(job_id))}", **e.kwargs(), **kwargs)
        keys = data.get("Items", [])
        for chunk in range(0, len(keys), 25):
            if batch_write([{"DeleteRequest": {"Key": k}} for k in keys[chunk:chunk + 25]]):
                # still throttled after backing off: fail the stream record, so that it is
                # retried (the deletes already done are harmless to repeat)
                raise Unavailable(f"could not delete everything under {job_id}: retried later")
        removed += len(keys)
        start = data.get("LastEvaluatedKey")
        if not start:
            return removed


# ---- the simulated provider's batches --------------------------------------------------


def simulated_batch(batch_id: str) -> dict[str, Any] | None:
    data = call("GetItem", TableName=table(), Key=to_item(layout.simulated_key(batch_id)), ConsistentRead=True)
    return from_item(data.get("Item"))


def put_simulated_batch(batch_id: str, record: dict[str, Any]) -> None:
    call("PutItem", TableName=table(), Item=to_item({**layout.simulated_key(batch_id), **record}))


def count_simulated_poll(batch_id: str) -> dict[str, Any]:
    e = Expr()
    data = call("UpdateItem", TableName=table(), Key=to_item(layout.simulated_key(batch_id)),
                UpdateExpression=update_expression([], adds=[f"{e.n('polls')} {e.v(1)}"]),
                ConditionExpression="attribute_exists(pk)", ReturnValues="ALL_NEW", **e.kwargs())
    return from_item(data["Attributes"]) or {}


def cancel_simulated_batch(batch_id: str) -> None:
    e = Expr()
    call("UpdateItem", TableName=table(), Key=to_item(layout.simulated_key(batch_id)),
         UpdateExpression=f"SET {e.n('cancel_requested')} = {e.v(True)}",
         ConditionExpression="attribute_exists(pk)", **e.kwargs())
