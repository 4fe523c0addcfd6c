"""The callbacks function: terminal transitions (DynamoDB stream) and retries (SQS) -> webhooks.

Thin by design: Powertools' BatchProcessor reports failed records back to
Lambda (``batchItemFailures``); the delivery logic is ``jobsvc.webhooks``.
"""
from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from jobsvc import webhooks

logger = Logger()
stream_processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
queue_processor = BatchProcessor(event_type=EventType.SQS)


def on_stream_record(record: DynamoDBRecord) -> None:
    images = record.raw_event.get("dynamodb", {})
    task = webhooks.task_from_stream(images.get("OldImage"), images.get("NewImage"))
    if task is not None:
        result = webhooks.deliver(task)
        logger.info("webhook attempt", webhook_id=task.webhook_id, job_id=task.job_id, result=result)


def on_queue_record(record: SQSRecord) -> None:
    task = webhooks.Task.from_message(record.body)
    result = webhooks.deliver(task)
    logger.info("webhook attempt", webhook_id=task.webhook_id, job_id=task.job_id, seen=task.seen, result=result)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context: Any) -> dict:
    records = event.get("Records") or []
    if records and records[0].get("eventSource") == "aws:sqs":
        return process_partial_response(event=event, record_handler=on_queue_record, processor=queue_processor, context=context)
    return process_partial_response(event=event, record_handler=on_stream_record, processor=stream_processor, context=context)
