"""The local stack's event source mappings (local/pumps.py) against the embedded emulator: the
stream's OnFailure invocation record, MaximumRecordAgeInSeconds, timeouts retried and bisected
like any function error, SQS message attributes in Lambda's shape, SQS redelivery after a
timeout, and retries of scheduled (asynchronous) invocations."""
from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Iterator

import pytest

from local.emulator import Emulator
from local.faults import FaultInjector, FaultSpec
from local.pumps import QueuePump, SchedulePump, StreamPump

from .local_support import create_table, fixture_function, read_log, wait_until


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emulator = Emulator()
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def log(tmp_path, monkeypatch):
    path = tmp_path / "log.jsonl"
    monkeypatch.setenv("FIXTURE_LOG", str(path))  # inherited by the instances
    return path


@pytest.fixture
def run() -> Iterator:
    """run(pump) starts it; everything started is stopped at the end."""
    started = []

    def start(pump):
        pump.start()
        started.append(pump)
        return pump

    yield start
    for pump in started:
        pump.stop()
    for pump in started:
        pump.join(timeout=30)
        pump.function.stop()


def stream_source(emulator: Emulator, count: int, **props) -> tuple[dict, list[str], str]:
    """A table with ``count`` new items, an OnFailure queue: (props, the records' sequence numbers, queue url)."""
    dynamodb = emulator.client("dynamodb")
    table = create_table(dynamodb, stream=True)
    for i in range(count):
        dynamodb.put_item(TableName=table, Item={"pk": {"S": "p"}, "sk": {"S": str(i)}})
    arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    sqs = emulator.client("sqs")
    queue = f"failures-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    streams = emulator.client("dynamodbstreams")
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    sequence = [r["dynamodb"]["SequenceNumber"] for r in streams.get_records(ShardIterator=iterator)["Records"]]
    props = {"Stream": arn, "BatchSize": 10, "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": queue_arn}},
             "shard": shard, **props}
    return props, sequence, url


def received(emulator: Emulator, url: str, expected: int) -> list[dict]:
    sqs = emulator.client("sqs")
    got: list[dict] = []

    def enough() -> bool:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
            got.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return len(got) >= expected

    assert wait_until(enough, timeout=90), f"{len(got)} of {expected} failure records arrived"
    return got


def test_a_stream_batch_given_up_is_reported_in_lambdas_invocation_record_shape(emulator, log, run):
    props, sequence, url = stream_source(emulator, 3, MaximumRetryAttempts=0, BisectBatchOnFunctionError=True)
    function = fixture_function("fail")
    run(StreamPump(function, props, emulator, poll_seconds=0.05))
    records = received(emulator, url, 3)
    covered = []
    for record in records:
        assert set(record) == {"requestContext", "responseContext", "version", "timestamp", "DDBStreamBatchInfo"}
        context = record["requestContext"]
        assert set(context) == {"requestId", "functionArn", "condition", "approximateInvokeCount"}
        assert context["condition"] == "RetryAttemptsExhausted"
        assert context["functionArn"] == "arn:aws:lambda:us-east-1:123456789012:function:Fixture-fail"
        assert context["approximateInvokeCount"] >= 2  # the whole batch once, then its half (bisected)
        assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
        assert record["version"] == "1.0" and record["timestamp"].endswith("Z")
        info = record["DDBStreamBatchInfo"]
        assert set(info) == {"shardId", "startSequenceNumber", "endSequenceNumber", "approximateArrivalOfFirstRecord",
                             "approximateArrivalOfLastRecord", "batchSize", "streamArn"}
        assert info["shardId"] == props["shard"] and info["streamArn"] == props["Stream"]
        assert info["batchSize"] == 1 and info["startSequenceNumber"] == info["endSequenceNumber"]
        time.strptime(info["approximateArrivalOfFirstRecord"], "%Y-%m-%dT%H:%M:%SZ")
        covered.append(info["startSequenceNumber"])
    assert sorted(covered) == sorted(sequence), "bisection isolates every record, each given up once"


def test_a_parallelization_factor_runs_batches_of_one_shard_at_once_each_key_in_order(emulator, log, run):
    """ParallelizationFactor: a shard's records are split by partition key over that many lanes,
    invoked at once; one partition key's records are all in one lane, in stream order."""
    dynamodb = emulator.client("dynamodb")
    table = create_table(dynamodb, stream=True)
    keys = [f"p{k}" for k in range(8)]
    for i in range(6):
        for pk in keys:
            dynamodb.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": f"{i:02d}"}})
    arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    function = fixture_function("stream_timed", max_instances=4)
    run(StreamPump(function, {"Stream": arn, "BatchSize": 4, "ParallelizationFactor": 4}, emulator, poll_seconds=0.05))
    assert wait_until(lambda: sum(len(b["records"]) for b in read_log(log)) >= 48, timeout=90)
    batches = read_log(log)
    for pk in keys:  # each key's records in order, and all in one lane: never in two batches at once
        mine = [b for b in batches if any(r[0] == pk for r in b["records"])]
        assert [r[1] for b in sorted(mine, key=lambda b: b["started"]) for r in b["records"] if r[0] == pk] \
            == [f"{i:02d}" for i in range(6)]
        for a, b in zip(mine, mine[1:]):
            assert a["ended"] <= b["started"] or b["ended"] <= a["started"]
    overlapping = [(a, b) for a in batches for b in batches if a is not b and a["started"] < b["ended"] and b["started"] < a["ended"]]
    assert overlapping, "batches of the one shard ran at once"


def test_a_batching_window_gathers_records_until_it_ends_or_the_batch_is_full(emulator, log, run):
    """MaximumBatchingWindowInSeconds: records that come within the window go in one batch; a
    full batch goes at once, however long the window."""
    dynamodb = emulator.client("dynamodb")
    gathering, filling = create_table(dynamodb, stream=True), create_table(dynamodb, stream=True)
    function = fixture_function("stream_timed", max_instances=2)
    for table, props in ((gathering, {"BatchSize": 100, "MaximumBatchingWindowInSeconds": 2}),
                         (filling, {"BatchSize": 3, "MaximumBatchingWindowInSeconds": 300})):
        arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        run(StreamPump(function, {"Stream": arn, **props}, emulator, poll_seconds=0.05))
    for i in range(3):  # read by polls 50 ms apart: without the window, in three batches
        dynamodb.put_item(TableName=gathering, Item={"pk": {"S": "gathered"}, "sk": {"S": f"{i}"}})
        dynamodb.put_item(TableName=filling, Item={"pk": {"S": "filled"}, "sk": {"S": f"{i}"}})
        time.sleep(0.3)
    assert wait_until(lambda: sum(len(b["records"]) for b in read_log(log)) >= 6, timeout=90), read_log(log)
    batches = sorted([r[1] for r in b["records"]] for b in read_log(log))
    assert batches == [["0", "1", "2"], ["0", "1", "2"]], batches


def test_a_stream_batch_that_times_out_is_retried_and_bisected(emulator, log, run):
    props, sequence, url = stream_source(emulator, 3, MaximumRetryAttempts=2, BisectBatchOnFunctionError=True)
    # hangs on more than one record: only bisection down to single records gets through
    function = fixture_function("stream_single_records_only", timeout=1)
    run(StreamPump(function, props, emulator, poll_seconds=0.05))
    assert wait_until(lambda: len(read_log(log)) >= 3, timeout=90)
    assert sorted(seq for batch in read_log(log) for seq in batch) == sorted(sequence)
    assert all(len(batch) == 1 for batch in read_log(log))
    assert emulator.client("sqs").receive_message(QueueUrl=url).get("Messages") is None


def test_records_older_than_the_maximum_age_are_skipped_and_reported(emulator, log, run):
    props, sequence, url = stream_source(emulator, 2, MaximumRecordAgeInSeconds=5, MaximumRetryAttempts=0)
    time.sleep(7)  # the records age past 5 s before the mapping reads them
    fresh_table = props["Stream"].split("/")[1]
    emulator.client("dynamodb").put_item(TableName=fresh_table, Item={"pk": {"S": "p"}, "sk": {"S": "fresh"}})
    function = fixture_function("echo")
    run(StreamPump(function, props, emulator, poll_seconds=0.05))
    [record] = received(emulator, url, 1)
    assert record["requestContext"]["condition"] == "RecordAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    info = record["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (sequence[0], sequence[1], 2)
    # the young record after them is invoked as usual, and only it
    assert wait_until(lambda: read_log(log), timeout=60)
    [event] = read_log(log)
    assert [r["dynamodb"]["Keys"]["sk"]["S"] for r in event["Records"]] == ["fresh"]


def queue(emulator: Emulator, **attributes: str) -> tuple[str, str]:
    sqs = emulator.client("sqs")
    url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}", Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def test_sqs_message_attributes_reach_the_function_in_lambdas_shape(emulator, log, run):
    url, arn = queue(emulator)
    emulator.client("sqs").send_message(QueueUrl=url, MessageBody="hello", MessageAttributes={
        "kind": {"DataType": "String", "StringValue": "retry"},
        "attempt": {"DataType": "Number", "StringValue": "2"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
    })
    run(QueuePump(fixture_function("echo"), {"Queue": arn, "BatchSize": 10}, emulator, poll_seconds=0.05))
    assert wait_until(lambda: read_log(log), timeout=60)
    [record] = read_log(log)[0]["Records"]
    assert record["messageAttributes"] == {
        "kind": {"stringValue": "retry", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
        "attempt": {"stringValue": "2", "stringListValues": [], "binaryListValues": [], "dataType": "Number"},
        "blob": {"binaryValue": base64.b64encode(b"\x00\xff").decode(), "stringListValues": [], "binaryListValues": [],
                 "dataType": "Binary"},
    }


def test_an_idle_queue_is_read_by_one_poller_and_a_busy_one_by_all(emulator):
    """Of a mapping's pollers, the first reads the queue always; the others only while it has
    given messages lately: an idle queue costs one poller's requests, a busy one is drained by all."""
    sqs = emulator.client("sqs")
    url = sqs.create_queue(QueueName=f"pollers-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    function = fixture_function("echo")
    pollers = [QueuePump(function, {"Queue": arn, "BatchSize": 1}, emulator, poll_seconds=0.05) for _ in range(4)]
    receives: list[int] = []
    for poller in pollers:
        poller.setup()
        receive = poller.sqs.receive_message

        def counted(*args, _rank=poller.rank, _receive=receive, **kwargs):
            receives.append(_rank)
            return _receive(*args, **kwargs)

        poller.sqs.receive_message = counted
    assert sorted(p.rank for p in pollers) == [0, 1, 2, 3]
    try:
        for _ in range(3):
            assert not any(p.poll() for p in pollers)  # idle: only the first one asked
        assert receives == [0, 0, 0]
        for i in range(3):
            sqs.send_message(QueueUrl=url, MessageBody=str(i))
        assert pollers[0].poll()  # the first finds a message (and invokes): the queue is busy
        receives.clear()
        assert sum(p.poll() for p in pollers[1:]) == 2 and receives == [1, 2, 3]
        # quiet again once BUSY_SECONDS pass with nothing received and nothing being invoked...
        for poller in pollers:
            poller.BUSY_SECONDS = 0.1
        time.sleep(0.3)
        receives.clear()
        assert not any(p.poll() for p in pollers) and receives == [0]
        # ...but not while an invocation lasts longer than that: a message sent meanwhile is read
        pollers[0]._invoking(+1)
        try:
            time.sleep(0.3)
            receives.clear()
            assert not any(p.poll() for p in pollers) and receives == [0, 1, 2, 3]
        finally:
            pollers[0]._invoking(-1)
    finally:
        function.stop()


def test_an_sqs_batch_that_times_out_comes_back_after_its_visibility_timeout(emulator, log, run):
    url, arn = queue(emulator, VisibilityTimeout="2")
    emulator.client("sqs").send_message(QueueUrl=url, MessageBody="slow")
    function = fixture_function("sqs_slow_first_receive", timeout=1)
    run(QueuePump(function, {"Queue": arn, "BatchSize": 10, "FunctionResponseTypes": ["ReportBatchItemFailures"]},
                  emulator, poll_seconds=0.05))
    assert wait_until(lambda: read_log(log), timeout=90)
    [records] = read_log(log)
    assert [(r["body"], r["attributes"]["ApproximateReceiveCount"]) for r in records] == [("slow", "2")]


def scheduled_attempts(log) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for entry in read_log(log):
        out.setdefault(entry["id"], []).append(entry["attempt"])
    return out


@pytest.mark.parametrize("succeed_on, attempts", [(0, [1, 2, 3]), (2, [1, 2]), (1, [1])])
def test_a_failed_scheduled_run_is_retried_twice(emulator, log, run, monkeypatch, succeed_on, attempts):
    monkeypatch.setenv("FIXTURE_SUCCEED_ON", str(succeed_on))
    pump = run(SchedulePump(fixture_function("scheduled"), {}, emulator, poll_seconds=0.05, period=0.3))
    # retries come one, then two periods later (locally a period stands for Lambda's minute)
    assert pump.retry_waits() == (0.0, 0.3, 0.6)

    def two_events_settled() -> bool:
        return sum(1 for tries in scheduled_attempts(log).values() if tries == attempts) >= 2

    assert wait_until(two_events_settled, timeout=90)
    pump.stop()
    pump.join(timeout=30)
    time.sleep(1.5)  # a retry still pending would have shown by now (the longest wait is 0.6 s)
    for tries in scheduled_attempts(log).values():
        assert tries == attempts[:len(tries)], tries
    # the retries of one event keep its request id (as Lambda's do); each event has its own
    request_ids: dict[str, set] = {}
    for entry in read_log(log):
        request_ids.setdefault(entry["id"], set()).add(entry["request_id"])
    assert all(len(ids) == 1 for ids in request_ids.values()), request_ids
    assert len({next(iter(ids)) for ids in request_ids.values()}) == len(request_ids)


def test_an_sqs_batch_whose_instance_is_killed_comes_back_after_its_visibility_timeout(emulator, log, run):
    injector = FaultInjector(FaultSpec(kill=1.0))
    injector.armed = True
    url, arn = queue(emulator, VisibilityTimeout="1")
    emulator.client("sqs").send_message(QueueUrl=url, MessageBody="killed once")
    function = fixture_function("echo", faults=injector)
    run(QueuePump(function, {"Queue": arn, "BatchSize": 10}, emulator, poll_seconds=0.05))
    assert wait_until(lambda: function.invocations >= 1, timeout=60)
    injector.armed = False  # the first invocation was killed; the next ones live

    def received_again() -> bool:
        return any(r["attributes"]["ApproximateReceiveCount"] != "1" for event in read_log(log) for r in event["Records"])

    assert wait_until(received_again, timeout=60)
    sqs = emulator.client("sqs")
    assert wait_until(lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
                      ["ApproximateNumberOfMessagesNotVisible"] == "0", timeout=30)
    assert "Messages" not in sqs.receive_message(QueueUrl=url), "the message was not deleted once it succeeded"
