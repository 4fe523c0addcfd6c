"""What the projector function keeps from the table's stream, apart from AWS's event shape:
the stats counters (``stats``; a record seen twice counts once) and the clean-up after a
deleted job (``cleanup``). Also run by the operator's replay of given-up stream batches
(``jobsvc.redrive --stream-failures``): both steps are idempotent."""
from __future__ import annotations

from typing import Any

from . import cleanup, stats
from .storage.db import from_item


def project(records: list[dict[str, Any]]) -> tuple[int, int, list[dict[str, Any]]]:
    """Apply stream records (in stream order): (additions counted, items removed, the jobs
    whose leftovers were removed: ``{"job_id", "organization_id"}``)."""
    counted = stats.apply(records)
    removed, jobs = 0, []
    for record in records:
        data = record.get("dynamodb", {})
        if cleanup.is_job_removal(record.get("eventName"), data.get("Keys", {})):
            old = from_item(data.get("OldImage")) or {}
            if "id" in old:
                removed += cleanup.after_delete(old)
                jobs.append({"job_id": old["id"], "organization_id": old.get("organization_id")})
    return counted, removed, jobs
