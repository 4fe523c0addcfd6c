"""Feed the non-HTTP triggers of template.yaml to their functions, as Lambda's pollers would.

- ``DynamoDB``: read the table's stream, apply the event source mapping's
  ``FilterCriteria``, invoke with the Lambda stream event (at most ``BatchSize``
  records and 6 MB); honour ``batchItemFailures`` (retry from the first failed
  record), ``BisectBatchOnFunctionError``, ``MaximumRetryAttempts``,
  ``MaximumRecordAgeInSeconds`` and the ``OnFailure`` destination (Lambda's
  invocation record).
- ``SQS``: receive (the emulator honours per-message delays, visibility
  timeouts and redrive), invoke with the Lambda SQS event, delete what
  succeeded; failed messages come back after their visibility timeout.
- ``Schedule``: the EventBridge "Scheduled Event", every JOBS_SCHEDULE_SECONDS,
  invoked asynchronously: a failed run is retried twice.

Any failure of an invocation (the handler raised, timed out, crashed, answered
too much) is a function error to them, as it is to Lambda's pollers.
"""
from __future__ import annotations

import base64
import json
import sys
import threading
import time
import traceback
import uuid
import zlib
from concurrent.futures import CancelledError, ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Iterator

from .emulator import Emulator
from .lambdas import SYNC_PAYLOAD_BYTES, LocalFunction, function_arn, payload_size, to_json
from .template import ACCOUNT, REGION


# ---- Lambda event filtering (the subset of the pattern syntax event source mappings use) ----


def matches(pattern: Any, value: Any, present: bool = True) -> bool:
    """Does ``value`` match an event filtering ``pattern``?

    As in AWS, a pattern is matched against the event's leaves: where the event has no such
    object, only ``{"exists": false}`` rules below it can match; and a rule applies to a leaf
    only (``exists`` on an object, such as a DynamoDB attribute ``{"S": ...}``, finds no leaf)."""
    if isinstance(pattern, dict):
        if not present or not isinstance(value, dict):
            return all(matches(sub, None, False) for sub in pattern.values())
        return all(matches(sub, value.get(key), key in value) for key, sub in pattern.items())
    if isinstance(pattern, list):
        leaf = present and not isinstance(value, dict)
        return any(_matches_one(rule, value if leaf else None, leaf) for rule in pattern)
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
        #: -1: records never expire (within the stream's 24 hours)
        self.max_age = int(self.props.get("MaximumRecordAgeInSeconds", -1))
        self.bisect = bool(self.props.get("BisectBatchOnFunctionError", False))
        #: how long records are gathered before a batch that is not full is invoked (Lambda reads
        #: "until it has gathered a full batch, the batching window expires, or the batch reaches
        #: the 6 MB payload limit"); 0: at once
        self.window = float(self.props.get("MaximumBatchingWindowInSeconds", 0))
        #: per shard: when the first record of what is being gathered came, and the records
        self.gathered: dict[str, tuple[float, list[dict]]] = {}
        destination = ((self.props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        self.on_failure_arn = destination
        #: batches of one shard invoked at once, each holding records of its own partition keys
        #: (a key's records stay in order, in one lane)
        self.parallelization = max(1, min(10, int(self.props.get("ParallelizationFactor", 1))))
        self.lane_pool = ThreadPoolExecutor(self.parallelization, thread_name_prefix=f"{self.name}-lane") \
            if self.parallelization > 1 else None
        description = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]
        self.hash_key = next(k["AttributeName"] for k in description["KeySchema"] if k["KeyType"] == "HASH")
        shards = description["Shards"]
        # the stack starts before any write, so reading from the start is what LATEST would give
        self.iterators = [
            (s["ShardId"], self.streams.get_shard_iterator(
                StreamArn=self.arn, ShardId=s["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"])
            for s in shards
        ]

    def poll(self) -> bool:
        worked = False
        for index, (shard_id, iterator) in enumerate(self.iterators):
            response = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            self.iterators[index] = (shard_id, response.get("NextShardIterator") or iterator)
            records = [self._lambda_record(r) for r in response.get("Records", [])]
            selected = self._gather(shard_id, [r for r in records if passes_filters(self.filters, r)])
            lanes = self._lanes(selected)
            if self.lane_pool is None or len(lanes) <= 1:
                for lane in lanes:
                    self._run_lane(lane, shard_id)
            elif not self.stopping.is_set():
                try:
                    for done in [self.lane_pool.submit(self._run_lane, lane, shard_id) for lane in lanes]:
                        done.result()
                except (RuntimeError, CancelledError):
                    if not self.stopping.is_set():  # the pool was shut down by stop(): nothing to say
                        raise
            worked = worked or bool(records)
        return worked

    def _gather(self, shard_id: str, selected: list[dict]) -> list[dict]:
        """What to invoke now: within MaximumBatchingWindowInSeconds of the first record held,
        nothing until a batch is full (the records are held, in order); then all of it."""
        if self.window <= 0:
            return selected
        first, held = self.gathered.pop(shard_id, (time.monotonic(), []))
        held += selected
        if held and len(held) < self.batch_size and time.monotonic() - first < self.window \
                and not self.stopping.is_set():
            self.gathered[shard_id] = (first, held)
            return []
        return held

    def stop(self) -> None:
        super().stop()
        pool = getattr(self, "lane_pool", None)  # None before setup() has run
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _lanes(self, records: list[dict]) -> list[list[dict]]:
        """The records split by partition key over ParallelizationFactor lanes, each in order."""
        if self.parallelization == 1:
            return [records] if records else []
        lanes: dict[int, list[dict]] = {}
        for record in records:
            key = json.dumps(record["dynamodb"]["Keys"].get(self.hash_key), sort_keys=True)
            lane = zlib.crc32(key.encode()) % self.parallelization
            lanes.setdefault(lane, []).append(record)
        return list(lanes.values())

    def _run_lane(self, records: list[dict], shard_id: str) -> None:
        for batch in self._batches(records):
            self._process(batch, shard_id)

    def _batches(self, records: list[dict]) -> Iterator[list[dict]]:
        """Up to BatchSize records, and never more than an invocation may carry (Lambda cuts a
        batch short rather than exceed the 6 MB payload)."""
        batch: list[dict] = []
        size = len('{"Records": []}')
        for record in records:
            record_size = payload_size(to_json(record)) + 2
            if batch and (len(batch) == self.batch_size or size + record_size > SYNC_PAYLOAD_BYTES):
                yield batch
                batch, size = [], len('{"Records": []}')
            batch.append(record)
            size += record_size
        if batch:
            yield batch

    def _lambda_record(self, record: dict) -> dict:
        data = dict(record["dynamodb"])
        created = data.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            data["ApproximateCreationDateTime"] = int(created.timestamp())
        return {
            "eventID": record["eventID"], "eventName": record["eventName"], "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": REGION, "dynamodb": data, "eventSourceARN": self.arn,
        }

    def _expired(self, batch: list[dict]) -> int:
        """How many records at the head of ``batch`` are older than MaximumRecordAgeInSeconds."""
        if self.max_age < 0:
            return 0
        now = time.time()
        count = 0
        for record in batch:
            if now - record["dynamodb"].get("ApproximateCreationDateTime", now) <= self.max_age:
                break
            count += 1
        return count

    def _process(self, batch: list[dict], shard_id: str, invoked: int = 0) -> None:
        """Invoke until the batch succeeds, then move on; on failure retry from the first failed
        record, bisect on function errors, and report to the OnFailure destination what is given up."""
        retries = 0
        last: dict = {}
        while batch and not self.stopping.is_set():
            expired = self._expired(batch)
            if expired:
                self._give_up(batch[:expired], shard_id, "RecordAgeExceeded", invoked, last)
                batch = batch[expired:]
                continue
            invoked += 1
            try:
                result = self.function.invoke({"Records": batch})
                last = {"statusCode": 200, "executedVersion": "$LATEST"}
                failed = _failed_ids(result) if self.reports_items else []
            except Exception:
                traceback.print_exc(file=sys.stderr)
                last = {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
                if self.bisect and len(batch) > 1:  # splitting does not count as a retry
                    middle = len(batch) // 2
                    self._process(batch[:middle], shard_id, invoked)
                    self._process(batch[middle:], shard_id, invoked)
                    return
                failed = [batch[0]["dynamodb"]["SequenceNumber"]]
            if not failed:
                return
            sequence = [r["dynamodb"]["SequenceNumber"] for r in batch]
            first = min(sequence.index(f) for f in failed if f in sequence) if any(f in sequence for f in failed) else 0
            batch = batch[first:]
            retries += 1
            if 0 <= self.max_retries < retries:
                self._give_up(batch, shard_id, "RetryAttemptsExhausted", invoked, last)
                return
            self.stopping.wait(min(retries, 5))

    def _give_up(self, batch: list[dict], shard_id: str, condition: str, invoked: int, response: dict) -> None:
        """Send the invocation record Lambda sends to an OnFailure destination (the batch is skipped).

        Shape: Lambda Developer Guide, "Using AWS Lambda with Amazon DynamoDB", example invocation
        record (https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html#services-dynamodb-errors).
        A batch that was never invoked (its records expired first) has ``approximateInvokeCount`` 0
        and no ``functionError`` (AWS does not document that case).
        """
        print(f"{self.function.name}: {condition}: skipping {len(batch)} stream record(s)", file=sys.stderr)
        if not self.on_failure_arn:
            return

        def arrival(record: dict) -> str:
            seconds = record["dynamodb"].get("ApproximateCreationDateTime", time.time())
            return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

        info = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": function_arn(self.function.name),
                "condition": condition,
                "approximateInvokeCount": invoked,
            },
            "responseContext": response or {"statusCode": 200, "executedVersion": "$LATEST"},
            "version": "1.0",
            "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": arrival(batch[0]),
                "approximateArrivalOfLastRecord": arrival(batch[-1]),
                "batchSize": len(batch),
                "streamArn": self.arn,
            },
        }
        sqs = self.emulator.client("sqs")
        queue_url = sqs.get_queue_url(QueueName=self.on_failure_arn.rsplit(":", 1)[1])["QueueUrl"]
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(info))


def lambda_message_attributes(message: dict) -> dict:
    """SQS message attributes as Lambda's SQS event carries them (camelCase, every member present,
    binary values base64), not as boto3 returns them (Lambda Developer Guide, "Using Lambda with
    Amazon SQS", example event)."""
    out = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        binary = value.get("BinaryValue")
        out[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(binary).decode() if binary is not None else None,
            "stringListValues": list(value.get("StringListValues") or []),
            "binaryListValues": [base64.b64encode(b).decode() for b in value.get("BinaryListValues") or []],
            "dataType": value["DataType"],
        }
        if out[name]["stringValue"] is None:
            del out[name]["stringValue"]
        if out[name]["binaryValue"] is None:
            del out[name]["binaryValue"]
    return out


class QueuePump(Pump):
    """An SQS event source mapping: ``instances`` pollers. The first always polls; the others
    poll while one of them is invoking the function or the queue has given messages in the
    last ``BUSY_SECONDS``, so a quiet queue costs one poller's requests and a busy one is read
    by all four. (Lambda scales its pollers with the backlog too; locally four is the most.)"""

    instances = 4
    idle_seconds = 0.5  # retries are at least 1 s apart anyway
    BUSY_SECONDS = 2.0
    _lock = threading.Lock()

    def setup(self) -> None:
        self.sqs = self.emulator.client("sqs")
        self.arn = self.props["Queue"]
        self.url = self.sqs.get_queue_url(QueueName=self.arn.rsplit(":", 1)[1])["QueueUrl"]
        self.batch_size = min(10, int(self.props.get("BatchSize", 10)))
        self.reports_items = "ReportBatchItemFailures" in (self.props.get("FunctionResponseTypes") or [])
        # what the pollers of this function's mapping share; it lives as long as the function
        with QueuePump._lock:
            mappings = self.function.__dict__.setdefault("_queue_mappings", {})
            self.mapping = mappings.setdefault(self.arn, {"pollers": 0, "in_flight": 0, "busy_at": 0.0})
            self.rank = self.mapping["pollers"]
            self.mapping["pollers"] += 1

    def _busy(self) -> bool:
        with QueuePump._lock:
            return self.mapping["in_flight"] > 0 or time.monotonic() - self.mapping["busy_at"] <= self.BUSY_SECONDS

    def _invoking(self, delta: int) -> None:
        with QueuePump._lock:
            self.mapping["in_flight"] += delta
            self.mapping["busy_at"] = time.monotonic()

    def poll(self) -> bool:
        if self.rank > 0 and not self._busy():
            return False  # the queue is quiet: the first poller alone watches it
        messages = self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=self.batch_size, WaitTimeSeconds=0,
            AttributeNames=["All"], MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return False
        self._invoking(+1)
        try:
            return self._deliver_batch(messages)
        finally:
            self._invoking(-1)

    def _deliver_batch(self, messages: list[dict]) -> bool:
        records = [
            {
                "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "attributes": m.get("Attributes", {}), "messageAttributes": lambda_message_attributes(m),
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
        """One scheduled (asynchronous) invocation: on a function error (timeouts included) Lambda
        tries twice more, one minute then two minutes later ("Lambda attempts to run it two more
        times, with a one-minute wait between the first two attempts, and two minutes between the
        second and third": https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html).
        Locally a minute is one schedule period (the template's rate is one minute). The retries
        keep the first attempt's request id, as Lambda's do."""
        request_id = str(uuid.uuid4())
        event = {
            "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": ACCOUNT, "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION, "resources": [self.rule_arn], "detail": {},
        }
        for wait in self.retry_waits():
            if wait and self.stopping.wait(wait):
                return
            try:
                self.function.invoke(event, request_id=request_id)
                return
            except Exception:
                if self.stopping.is_set():
                    return  # the stack is stopping: its instances are being stopped under it
                traceback.print_exc(file=sys.stderr)

    def retry_waits(self) -> tuple[float, ...]:
        """Before the first attempt and before each of the two retries."""
        return (0.0, self.period, 2 * self.period)


PUMPS: dict[str, type[Pump]] = {"DynamoDB": StreamPump, "SQS": QueuePump, "Schedule": SchedulePump}
