"""Counters kept from the table's stream (stats.py computes what to add).

One partition per organization: ``STATS#<org>`` / ``COUNTS`` (jobs now in each status,
by type) and ``STATS#<org>`` / ``H#<hour>`` (what happened in that hour, by type). A job
partition's (``ORG#<org>#<s>``) stream records all come from one stream shard, in order,
so each counter item remembers, per job partition, the sequence number of the last record
of it that it counted (``seq_<s>``), and an update only adds the records after those: a
record delivered twice (a retried or bisected batch) is counted once. Each item takes at
most one write per stream batch that holds its organization's records (a batch comes from
one stream shard, and an organization's 8 job partitions are on 8 shards at most),
whatever the organization's traffic: no new hot key.
"""
from __future__ import annotations

from typing import Any

from .db import Expr, Refused, call, from_item, query_all, table, to_item

SEQ_WIDTH = 48  # stream sequence numbers are 21 to 40 digits; padded, they compare as strings


def stats_pk(org: str) -> str:
    return f"STATS#{org}"


def hour_sk(hour: str) -> str:
    return f"H#{hour}"


def padded(sequence_number: str) -> str:
    return sequence_number.rjust(SEQ_WIDTH, "0")


def _mark(shard: int) -> str:
    return f"seq_{shard}"


def add(pk: str, sk: str, deltas: list[tuple[int, str, dict[str, int]]], ttl: int | None = None) -> int:
    """Add each record's counts to one counter item, skipping the records it has counted
    already. ``deltas`` is [(job partition, padded sequence number, {attribute: amount})],
    each partition's in stream order. Returns how many records were counted now."""
    pending = deltas
    for _ in range(3):
        if not pending:
            return 0
        totals: dict[str, int] = {}
        first: dict[int, str] = {}
        last: dict[int, str] = {}
        for shard, sequence, amounts in pending:
            first.setdefault(shard, sequence)
            last[shard] = sequence
            for name, amount in amounts.items():
                totals[name] = totals.get(name, 0) + amount
        e = Expr()
        adds = [f"{e.n(name)} {e.v(amount)}" for name, amount in totals.items() if amount]
        sets = [f"{e.n(_mark(shard))} = {e.v(sequence)}" for shard, sequence in last.items()]
        if ttl is not None:
            sets.append(f"{e.n('ttl')} = {e.v(ttl)}")
        expression = "SET " + ", ".join(sets) + (" ADD " + ", ".join(adds) if adds else "")
        # every partition's records are after what the item counted of that partition
        condition = " AND ".join(
            f"(attribute_not_exists({e.n(_mark(shard))}) OR {e.n(_mark(shard))} < {e.v(sequence)})"
            for shard, sequence in first.items()
        )
        try:
            call(
                "UpdateItem", TableName=table(), Key=to_item({"pk": pk, "sk": sk}), UpdateExpression=expression,
                ConditionExpression=condition, ReturnValuesOnConditionCheckFailure="ALL_OLD", **e.kwargs(),
            )
            return len(pending)
        except Refused as refused:
            counted = refused.item or {}
            pending = [d for d in pending if d[1] > counted.get(_mark(d[0]), "")]
    raise RuntimeError(f"counter {pk} {sk} kept moving while being counted")


def read_counts(org: str) -> dict[str, Any] | None:
    """The organization's COUNTS item (one GetItem)."""
    return from_item(call("GetItem", TableName=table(), Key=to_item({"pk": stats_pk(org), "sk": "COUNTS"})).get("Item"))


def read_hours(org: str, first: str, last: str) -> list[dict[str, Any]]:
    """The hour items from ``first`` to ``last`` (inclusive): one Query (at most 720 small
    items: pages of 1 MB are read on, which 720 hours of a handful of job types never fill)."""
    e = Expr()
    return query_all(
        TableName=table(), KeyConditionExpression=f"pk = {e.v(stats_pk(org))} AND sk BETWEEN {e.v(hour_sk(first))} AND {e.v(hour_sk(last))}",
        **e.kwargs(),
    )
