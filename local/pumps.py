"""Feed the non-HTTP triggers of template.yaml to their functions, as Lambda's pollers would.

- ``DynamoDB``: read the table's stream, apply the event source mapping's
  ``FilterCriteria``, invoke with the Lambda stream event; honour
  ``batchItemFailures`` (retry from the first failed record),
  ``BisectBatchOnFunctionError``, ``MaximumRetryAttempts`` and the
  ``OnFailure`` destination.
- ``SQS``: receive (the emulator honours per-message delays, visibility
  timeouts and redrive), invoke with the Lambda SQS event, delete what
  succeeded; failed messages come back after their visibility timeout.
- ``Schedule``: the EventBridge "Scheduled Event", every JOBS_SCHEDULE_SECONDS.
"""
from __future__ import annotations

import json
import sys
import threading
import traceback
import uuid
from datetime import datetime, timezone
from typing import Any

from .emulator import Emulator
from .lambdas import LocalFunction
from .template import ACCOUNT, REGION


# ---- Lambda event filtering (the subset of the pattern syntax event source mappings use) ----


def matches(pattern: Any, value: Any, present: bool = True) -> bool:
    """Does ``value`` match an event filtering ``pattern``?"""
    if isinstance(pattern, dict):
        if not present or not isinstance(value, dict):
            return False
        return all(matches(sub, value.get(key), key in value) for key, sub in pattern.items())
    if isinstance(pattern, list):
        return any(_matches_one(rule, value, present) for rule in pattern)
    raise ValueError(f"a filter pattern leaf must be a list, not {pattern!r}")


def _matches_one(rule: Any, value: Any, present: bool) -> bool:
    if isinstance(rule, dict):
        (op, arg), = rule.items()
        if op == "exists":
            return present == bool(arg)
        if not present:
            return False
        if op == "prefix":
            return isinstance(value, str) and value.startswith(arg)
        if op == "anything-but":
            return value not in (arg if isinstance(arg, list) else [arg])
        if op == "numeric":
            return _numeric(arg, value)
        raise ValueError(f"unsupported filter operator {op}")
    return present and value == rule


def _numeric(arg: list, value: Any) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    ops = {"<": number.__lt__, "<=": number.__le__, "=": number.__eq__, ">": number.__gt__, ">=": number.__ge__}
    return all(ops[arg[i]](float(arg[i + 1])) for i in range(0, len(arg), 2))


def passes_filters(filters: list[dict], record: dict) -> bool:
    if not filters:
        return True
    return any(matches(json.loads(f["Pattern"]) if isinstance(f["Pattern"], str) else f["Pattern"], record) for f in filters)


# ---- pumps --------------------------------------------------------------------------------


class Pump(threading.Thread):
    #: how many of these run at once for one event source (Lambda scales SQS pollers out;
    #: a stream shard is read by one poller, in order)
    instances = 1

    def __init__(
        self, function: LocalFunction, props: dict, emulator: Emulator, poll_seconds: float, period: float = 5.0
    ) -> None:
        super().__init__(name=f"pump-{function.spec.logical_id}", daemon=True)
        self.function = function
        self.props = props
        self.emulator = emulator
        self.poll_seconds = poll_seconds
        self.period = period
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()

    #: the longest wait between two polls that found nothing (AWS reads a stream 4 times a second)
    idle_seconds = 0.25

    def run(self) -> None:
        self.setup()
        wait = self.poll_seconds
        while not self.stopping.is_set():
            try:
                worked = self.poll()
            except Exception:  # keep pumping; the error is the function's or the emulator's
                traceback.print_exc(file=sys.stderr)
                worked = False
            # poll again at once after work; back off towards idle_seconds while nothing comes
            wait = self.poll_seconds if worked else min(self.idle_seconds, wait * 2)
            if not worked:
                self.stopping.wait(wait)

    def setup(self) -> None:
        pass

    def poll(self) -> bool:
        raise NotImplementedError


def _failed_ids(result: Any) -> list[str]:
    if isinstance(result, dict):
        return [f["itemIdentifier"] for f in result.get("batchItemFailures") or []]
    return []


class StreamPump(Pump):
    """A DynamoDB stream event source mapping."""

    def setup(self) -> None:
        self.streams = self.emulator.client("dynamodbstreams")
        self.arn = self.props["Stream"]
        self.batch_size = int(self.props.get("BatchSize", 100))
        self.filters = (self.props.get("FilterCriteria") or {}).get("Filters") or []
        self.reports_items = "ReportBatchItemFailures" in (self.props.get("FunctionResponseTypes") or [])
        self.max_retries = int(self.props.get("MaximumRetryAttempts", -1))
        self.bisect = bool(self.props.get("BisectBatchOnFunctionError", False))
        destination = ((self.props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        self.on_failure_arn = destination
        shards = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        # the stack starts before any write, so reading from the start is what LATEST would give
        self.iterators = [
            self.streams.get_shard_iterator(StreamArn=self.arn, ShardId=s["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            for s in shards
        ]

    def poll(self) -> bool:
        worked = False
        for index, iterator in enumerate(self.iterators):
            response = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            self.iterators[index] = response.get("NextShardIterator") or iterator
            records = [self._lambda_record(r) for r in response.get("Records", [])]
            selected = [r for r in records if passes_filters(self.filters, r)]
            for start in range(0, len(selected), self.batch_size):
                self._process(selected[start:start + self.batch_size])
            worked = worked or bool(records)
        return worked

    def _lambda_record(self, record: dict) -> dict:
        data = dict(record["dynamodb"])
        created = data.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            data["ApproximateCreationDateTime"] = int(created.timestamp())
        return {
            "eventID": record["eventID"], "eventName": record["eventName"], "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": REGION, "dynamodb": data, "eventSourceARN": self.arn,
        }

    def _process(self, batch: list[dict]) -> None:
        retries = 0
        while batch and not self.stopping.is_set():
            try:
                failed = _failed_ids(self.function.invoke({"Records": batch})) if self.reports_items else []
            except Exception:
                traceback.print_exc(file=sys.stderr)
                if self.bisect and len(batch) > 1:
                    middle = len(batch) // 2
                    self._process(batch[:middle])
                    self._process(batch[middle:])
                    return
                failed = [batch[0]["dynamodb"]["SequenceNumber"]]
            if not failed:
                return
            sequence = [r["dynamodb"]["SequenceNumber"] for r in batch]
            first = min(sequence.index(f) for f in failed if f in sequence) if any(f in sequence for f in failed) else 0
            batch = batch[first:]
            retries += 1
            if 0 <= self.max_retries < retries:
                self._give_up(batch)
                return
            self.stopping.wait(min(retries, 5))

    def _give_up(self, batch: list[dict]) -> None:
        if not self.on_failure_arn:
            return
        queue_url = self.emulator.client("sqs").get_queue_url(QueueName=self.on_failure_arn.rsplit(":", 1)[1])["QueueUrl"]
        info = {
            "requestContext": {"condition": "RetryAttemptsExhausted", "functionArn": self.function.spec.logical_id},
            "DDBStreamBatchInfo": {
                "streamArn": self.arn, "batchSize": len(batch),
                "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
            },
        }
        self.emulator.client("sqs").send_message(QueueUrl=queue_url, MessageBody=json.dumps(info))


class QueuePump(Pump):
    """An SQS event source mapping."""

    instances = 4
    idle_seconds = 0.5  # retries are at least 1 s apart anyway

    def setup(self) -> None:
        self.sqs = self.emulator.client("sqs")
        self.arn = self.props["Queue"]
        self.url = self.sqs.get_queue_url(QueueName=self.arn.rsplit(":", 1)[1])["QueueUrl"]
        self.batch_size = min(10, int(self.props.get("BatchSize", 10)))
        self.reports_items = "ReportBatchItemFailures" in (self.props.get("FunctionResponseTypes") or [])

    def poll(self) -> bool:
        messages = self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=self.batch_size, WaitTimeSeconds=0,
            AttributeNames=["All"], MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return False
        records = [
            {
                "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "attributes": m.get("Attributes", {}), "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs", "eventSourceARN": self.arn, "awsRegion": REGION,
            }
            for m in messages
        ]
        try:
            result = self.function.invoke({"Records": records})
            failed = set(_failed_ids(result)) if self.reports_items else set()
        except Exception:
            traceback.print_exc(file=sys.stderr)
            failed = {r["messageId"] for r in records}
        done = [r for r in records if r["messageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(done)],
            )
        return True


class SchedulePump(Pump):
    """An EventBridge schedule rule: fires every ``period`` seconds (JOBS_SCHEDULE_SECONDS locally),
    whether or not the previous run has finished, as EventBridge does."""

    def setup(self) -> None:
        self.rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{self.function.spec.logical_id}-schedule"

    def run(self) -> None:
        self.setup()
        while not self.stopping.wait(self.period):
            threading.Thread(target=self._fire, name=f"{self.name}-run", daemon=True).start()

    def _fire(self) -> None:
        event = {
            "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": ACCOUNT, "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION, "resources": [self.rule_arn], "detail": {},
        }
        try:
            self.function.invoke(event)
        except Exception:
            traceback.print_exc(file=sys.stderr)


PUMPS: dict[str, type[Pump]] = {"DynamoDB": StreamPump, "SQS": QueuePump, "Schedule": SchedulePump}
