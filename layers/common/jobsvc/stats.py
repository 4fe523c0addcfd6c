"""Stats (contract section 9): counts per status now, and what happened in the last hours.

Kept from the table's stream by the projector function: each job's creation, status
changes and removal, and each webhook delivery that ends, become additions to counters
(storage/stats.py), per organization, per hour. A read is one count item and one
partition's hours (720 at most): a bounded number of requests whatever the data, never a
scan.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from . import states
from .auth import Actor
from .storage import layout
from .storage import stats as store
from .storage.db import from_item
from .timeutil import iso, now, parse_iso

HOUR_TTL_SECONDS = 32 * 24 * 3600  # the window reaches 720 hours back
TERMINAL = ("completed", "failed", "cancelled", "expired")


def _hour(timestamp: str) -> str:
    return timestamp[:13]  # 2026-11-28T15


def _ms(start: str, end: str) -> int:
    return int((parse_iso(end) - parse_iso(start)).total_seconds() * 1000)


def record_deltas(event_name: str, keys: dict[str, Any], old_image: dict | None, new_image: dict | None) -> list[tuple[str, str, dict[str, int], int | None]]:
    """What one stream record adds to which counter: [(pk, sk, {attribute: amount}, ttl)]."""
    sk = keys.get("sk", {}).get("S", "")
    pk = keys.get("pk", {}).get("S", "")
    if not sk.startswith("JOB#") or not pk.startswith("ORG#"):
        return []
    spk = store.stats_pk(layout.org_of_pk(pk))
    old, new = from_item(old_image) or {}, from_item(new_image) or {}
    out: list[tuple[str, str, dict[str, int], int | None]] = []

    def hour(timestamp: str, amounts: dict[str, int]) -> None:
        moment = parse_iso(timestamp)
        out.append((spk, store.hour_sk(_hour(timestamp)), amounts, int(moment.timestamp()) + HOUR_TTL_SECONDS))

    if sk.endswith(layout.WEBHOOK_SUFFIX):
        job_type = new.get("job_type") or old.get("job_type") or "job"
        for name, delivery in new.items():
            if not name.startswith("d_") or not isinstance(delivery, dict):
                continue
            before = (old.get(name) or {}).get("st")
            after = delivery.get("st")
            if after == before or after not in ("succeeded", "failed"):
                continue
            sent = new.get("callback_sent_at") or new.get("completed_at")
            if not sent:
                continue
            if after == "succeeded":
                amounts = {f"{job_type}#cb_ok": 1}
                if new.get("completed_at"):
                    amounts[f"{job_type}#cb_ms"] = max(0, _ms(new["completed_at"], sent))
                hour(sent, amounts)
            else:
                hour(sent, {f"{job_type}#cb_fail": 1})
        return out

    job_type = new.get("job_type") or old.get("job_type")
    before, after = old.get("status"), new.get("status")
    if event_name == "INSERT" and after:
        out.append((spk, "COUNTS", {f"{job_type}#{after}": 1}, None))
        hour(new["created_at"], {f"{job_type}#created": 1})
    elif event_name == "MODIFY" and before and after and before != after:
        out.append((spk, "COUNTS", {f"{job_type}#{before}": -1, f"{job_type}#{after}": 1}, None))
        if after in states.TERMINAL and new.get("completed_at"):
            hour(new["completed_at"], {
                f"{job_type}#{after}": 1, f"{job_type}#proc_ms": max(0, _ms(new["created_at"], new["completed_at"])),
                f"{job_type}#proc_n": 1,
            })
    elif event_name == "REMOVE" and before:
        out.append((spk, "COUNTS", {f"{job_type}#{before}": -1}, None))
    return out


def apply(records: list[dict[str, Any]]) -> int:
    """Count a batch of stream records (Lambda's shape, in stream order); returns how many
    additions were made. Safe to run again on records already counted."""
    per_item: dict[tuple[str, str], list[tuple[int, str, dict[str, int]]]] = {}
    ttls: dict[tuple[str, str], int | None] = {}
    for record in records:
        data = record.get("dynamodb", {})
        sequence = store.padded(data.get("SequenceNumber", "0"))
        keys = data.get("Keys", {})
        deltas = record_deltas(record.get("eventName", ""), keys, data.get("OldImage"), data.get("NewImage"))
        # a job's (or its webhook item's) record: its job partition's records come in order
        shard = layout.shard_of_pk(keys["pk"]["S"]) if deltas else 0
        for pk, sk, amounts, ttl in deltas:
            per_item.setdefault((pk, sk), []).append((shard, sequence, amounts))
            ttls[(pk, sk)] = ttl
    return sum(store.add(pk, sk, deltas, ttls[(pk, sk)]) for (pk, sk), deltas in per_item.items())


def _sum(items: list[dict[str, Any]], job_type: str | None, suffix: str) -> int:
    total = 0
    for item in items:
        for name, value in item.items():
            kind, _, what = name.partition("#")
            if what == suffix and (job_type is None or kind == job_type) and isinstance(value, int):
                total += value
    return total


def read(actor: Actor, hours: int = 24, job_type: str | None = None) -> dict[str, Any]:
    """The organization's stats (2 requests: one GetItem, one Query; the Query reads on past
    1 MB of hours, which a handful of job types never reach)."""
    org = actor.organization_id
    moment = now()
    since = moment - timedelta(hours=hours)
    counts_item = store.read_counts(org)
    counts_items = [counts_item] if counts_item else []
    hour_items = store.read_hours(org, _hour(iso(since)), _hour(iso(moment)))
    counts = {status: max(0, _sum(counts_items, job_type, status)) for status in states.STATUSES}
    ended = {status: _sum(hour_items, job_type, status) for status in TERMINAL}
    all_ended = sum(ended.values())
    processed = _sum(hour_items, job_type, "proc_n")
    delivered = _sum(hour_items, job_type, "cb_ok")
    return {
        "counts": counts,
        "window": {
            "since": iso(since.replace(minute=0, second=0, microsecond=0)), "until": iso(moment),
            "created": _sum(hour_items, job_type, "created"), **ended,
            "completion_rate": round(ended["completed"] / all_ended, 4) if all_ended else None,
            "avg_processing_ms": round(_sum(hour_items, job_type, "proc_ms") / processed) if processed else None,
            "callbacks": {
                "delivered": delivered, "failed": _sum(hour_items, job_type, "cb_fail"),
                "avg_latency_ms": round(_sum(hour_items, job_type, "cb_ms") / delivered) if delivered else None,
            },
        },
    }
