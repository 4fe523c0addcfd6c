"""The cleanup function: when a job is deleted (a REMOVE on the table's stream), delete what
was stored under it: messages, webhook deliveries and attempts, batch results."""
from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from jobsvc import storage

logger = Logger()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def on_record(record: DynamoDBRecord) -> None:
    keys = record.raw_event.get("dynamodb", {}).get("Keys", {})
    sk = keys.get("sk", {}).get("S", "")
    if record.raw_event.get("eventName") == "REMOVE" and sk.startswith("JOB#"):
        job_id = sk.removeprefix("JOB#")
        logger.info("deleted a job's children", job_id=job_id, removed=storage.delete_job_children(job_id))


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context: Any) -> dict:
    return process_partial_response(event=event, record_handler=on_record, processor=processor, context=context)
