"""The callbacks function: terminal transitions (DynamoDB stream) and retries (SQS) -> webhooks.

Thin by design: every record of a batch is attempted at once (a pool of threads; each
attempt ends within its 5 s deadline), so one slow receiver never holds up the others,
and a record whose handling fails is reported back to Lambda (``batchItemFailures``);
the delivery logic is ``jobsvc.webhooks``.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger

from jobsvc import tracing, webhooks
from jobsvc.config import settings

logger = Logger()
_pool: ThreadPoolExecutor | None = None


def _task(record: dict[str, Any]) -> webhooks.Task | None:
    if record.get("eventSource") == "aws:sqs":
        return webhooks.Task.from_message(record["body"])
    images = record.get("dynamodb", {})
    return webhooks.task_from_stream(images.get("OldImage"), images.get("NewImage"))


def _identifier(record: dict[str, Any]) -> str:
    if record.get("eventSource") == "aws:sqs":
        return record["messageId"]
    return record["dynamodb"]["SequenceNumber"]


def _attempt(record: dict[str, Any]) -> str | None:
    """Handle one record; the identifier to report as failed, or None."""
    try:
        task = _task(record)
        if task is None:
            return None
        result = webhooks.deliver(task)
        logger.info("webhook attempt", job_id=task.job_id, organization_id=task.organization_id,
                    webhook_id=task.webhook_id, seen=task.seen, result=result)
        return None
    except Exception:  # the record is retried (stream) or comes back (SQS): nothing is lost
        logger.exception("webhook record failed", record_id=_identifier(record))
        return _identifier(record)


@logger.inject_lambda_context(clear_state=True)
@tracing.capture
def lambda_handler(event: dict, context: Any) -> dict:
    global _pool
    records = event.get("Records") or []
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=settings().webhook_concurrency, thread_name_prefix="webhook")
    failed = [identifier for identifier in _pool.map(_attempt, records) if identifier is not None]
    return {"batchItemFailures": [{"itemIdentifier": identifier} for identifier in failed]}
