"""The cleanup function: when a job is deleted (a REMOVE on the table's stream, by the API or
by the table's TTL after its retention), delete what was stored under it: its webhook state,
messages and batch results (jobsvc.cleanup)."""
from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from jobsvc import cleanup
from jobsvc.storage.db import from_item

logger = Logger()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def on_record(record: DynamoDBRecord) -> None:
    data = record.raw_event.get("dynamodb", {})
    if cleanup.is_job_removal(record.raw_event.get("eventName"), data.get("Keys", {})):
        old = from_item(data.get("OldImage")) or {}
        if "id" in old:
            removed = cleanup.after_delete(old)
            logger.info("deleted a job's children", job_id=old["id"], organization_id=old.get("organization_id"), removed=removed)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context: Any) -> dict:
    return process_partial_response(event=event, record_handler=on_record, processor=processor, context=context)
