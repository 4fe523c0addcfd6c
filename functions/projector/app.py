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

from jobsvc import tracing
from jobsvc.projection import project

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
@tracing.capture
def lambda_handler(event: dict, context: Any) -> dict:
    records = event.get("Records") or []
    counted, removed, jobs = project(records)
    for job in jobs:
        logger.info("deleted what a job left", **job)
    logger.debug("projected a batch", records=len(records), counted=counted, removed=removed)
    return {"batchItemFailures": []}
