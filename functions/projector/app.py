"""The projector function: keeps what is derived from the table, from the table's stream.

- A job deleted (through the API, or by the table's TTL after its retention): what was
  stored under it goes too (``jobsvc.cleanup``).
- Every job's creation, status change and removal, and every webhook delivery that
  ends: the stats counters (``jobsvc.stats``; a record seen twice counts once).

A batch that fails is retried whole by Lambda (and bisected); both steps are idempotent.
"""
from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from jobsvc import cleanup, stats, tracing
from jobsvc.storage.db import from_item

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
@tracing.capture
def lambda_handler(event: dict, context: Any) -> dict:
    records = event.get("Records") or []
    counted = stats.apply(records)
    removed = 0
    for record in records:
        data = record.get("dynamodb", {})
        if cleanup.is_job_removal(record.get("eventName"), data.get("Keys", {})):
            old = from_item(data.get("OldImage")) or {}
            if "id" in old:
                removed += cleanup.after_delete(old)
                logger.info("deleted what a job left", job_id=old["id"], organization_id=old.get("organization_id"))
    logger.debug("projected a batch", records=len(records), counted=counted, removed=removed)
    return {"batchItemFailures": []}
