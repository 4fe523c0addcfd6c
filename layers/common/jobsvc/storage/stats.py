"""Counters kept from the table's stream (stats.py computes what to add).

One family of items per job partition (``ORG#<org>#<s>``): ``STATS#<org>#<s>`` /
``COUNTS`` (jobs now in each status, by type) and ``STATS#<org>#<s>`` / ``H#<hour>``
(what happened in that hour, by type). A job partition's stream records all come from
one stream shard, in order, so each counter item remembers the sequence number of the
last record it counted (``seq``) and an update only adds the records after it: a record
delivered twice (a retried or bisected batch) is counted once. Each item takes at most one
write per stream batch, whatever the organization's traffic: no new hot key.
"""
from __future__ import annotations

from typing import Any

from . import layout
from .db import Expr, Refused, batch_get, call, from_item, table, to_item

SEQ_WIDTH = 48  # stream sequence numbers are 21 to 40 digits; padded, they compare as strings


def stats_pk(org: str, shard: int) -> str:
    return f"STATS#{org}#{shard}"


def hour_sk(hour: str) -> str:
    return f"H#{hour}"


def padded(sequence_number: str) -> str:
    return sequence_number.rjust(SEQ_WIDTH, "0")


def add(pk: str, sk: str, deltas: list[tuple[str, dict[str, int]]], ttl: int | None = None) -> int:
    """Add each record's counts to one counter item, skipping the records it has counted
    already. ``deltas`` is [(padded sequence number, {attribute: amount})] in stream order.
    Returns how many records were counted now."""
    pending = deltas
    for _ in range(3):
        if not pending:
            return 0
        totals: dict[str, int] = {}
        for _, amounts in pending:
            for name, amount in amounts.items():
                totals[name] = totals.get(name, 0) + amount
        e = Expr()
        adds = [f"{e.n(name)} {e.v(amount)}" for name, amount in totals.items() if amount]
        sets = [f"{e.n('seq')} = {e.v(pending[-1][0])}"]
        if ttl is not None:
            sets.append(f"{e.n('ttl')} = {e.v(ttl)}")
        expression = "SET " + ", ".join(sets) + (" ADD " + ", ".join(adds) if adds else "")
        try:
            call(
                "UpdateItem", TableName=table(), Key=to_item({"pk": pk, "sk": sk}), UpdateExpression=expression,
                ConditionExpression=f"attribute_not_exists({e.n('seq')}) OR {e.n('seq')} < {e.v(pending[0][0])}",
                ReturnValuesOnConditionCheckFailure="ALL_OLD", **e.kwargs(),
            )
            return len(pending)
        except Refused as refused:
            counted = (refused.item or {}).get("seq", "")
            pending = [d for d in pending if d[0] > counted]
    raise RuntimeError(f"counter {pk} {sk} kept moving while being counted")


def read_counts(org: str) -> list[dict[str, Any]]:
    """The COUNTS items of an organization's partitions (one BatchGetItem)."""
    return batch_get([{"pk": stats_pk(org, s), "sk": "COUNTS"} for s in range(layout.JOB_SHARDS)], consistent=False)


def read_hours(org: str, first: str, last: str) -> list[dict[str, Any]]:
    """The hour items from ``first`` to ``last`` (inclusive) of an organization's partitions:
    one Query per partition (at most 720 small items each: one page)."""
    from .jobs import _parallel

    def query(shard: int):  # type: ignore[no-untyped-def]
        def run() -> list[dict[str, Any]]:
            e = Expr()
            data = call(
                "Query", TableName=table(),
                KeyConditionExpression=f"pk = {e.v(stats_pk(org, shard))} AND sk BETWEEN {e.v(hour_sk(first))} AND {e.v(hour_sk(last))}",
                **e.kwargs(),
            )
            return [r for r in map(from_item, data.get("Items", [])) if r]
        return run

    return [item for items in _parallel([query(s) for s in range(layout.JOB_SHARDS)]) for item in items]
