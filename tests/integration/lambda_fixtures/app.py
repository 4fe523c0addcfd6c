"""Handlers for testing the local stack's Lambda emulation (local/lambdas.py, gateway.py, pumps.py).

They run in the local stack's instance processes; what they saw is appended, one JSON line per
invocation, to the file named by ``FIXTURE_LOG`` (so a test can count invocations across
instances, including those that were killed).
"""
from __future__ import annotations

import json
import os
import time
from typing import Any


def _log(entry: Any) -> None:
    path = os.environ.get("FIXTURE_LOG")
    if path:
        with open(path, "a") as handle:
            handle.write(json.dumps(entry) + "\n")


def _invocations() -> list:
    path = os.environ.get("FIXTURE_LOG")
    if not path or not os.path.exists(path):
        return []
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def echo(event: Any, context: Any) -> Any:
    _log(event)
    return event


def sleep(event: dict, context: Any) -> str:
    time.sleep(event["seconds"])
    return "slept"


def fail(event: Any, context: Any) -> None:
    _log(event)
    raise RuntimeError("boom")


def answer_of_size(event: dict, context: Any) -> str:
    """A string whose JSON is ``event["bytes"]`` bytes long (its two quotes included)."""
    return "x" * (event["bytes"] - 2)


def unserialisable(event: Any, context: Any) -> Any:
    return {"when": object()}


def http_echo(event: dict, context: Any) -> dict:
    """An HTTP API integration that answers with the event it got (or sleeps, or answers big)."""
    query = event.get("queryStringParameters") or {}
    if "sleep" in query:
        time.sleep(float(query["sleep"]))
    if "bytes" in query:
        return {"statusCode": 200, "headers": {"Content-Type": "text/plain"}, "body": "x" * int(query["bytes"])}
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(event)}


def authorizer(event: dict, context: Any) -> dict:
    _log({"authorizer": event["identitySource"]})
    value = (event.get("headers") or {}).get("authorization", "")
    return {"isAuthorized": value != "deny", "context": {"who": value}}


def stream_single_records_only(event: dict, context: Any) -> dict:
    """Succeeds on one record, hangs (past its timeout) on more: bisection must isolate each one."""
    records = event["Records"]
    if len(records) > 1:
        time.sleep(60)
    _log([r["dynamodb"]["SequenceNumber"] for r in records])
    return {"batchItemFailures": []}


def sqs_slow_first_receive(event: dict, context: Any) -> dict:
    """Hangs past its timeout on a message's first receive; records it on a later one."""
    for record in event["Records"]:
        if record["attributes"]["ApproximateReceiveCount"] == "1":
            time.sleep(60)
    _log(event["Records"])
    return {"batchItemFailures": []}


def scheduled(event: dict, context: Any) -> None:
    """Records the scheduled event's id; fails unless FIXTURE_SUCCEED_ON (the attempt number that
    succeeds) says otherwise."""
    attempt = 1 + sum(1 for entry in _invocations() if entry.get("id") == event["id"])
    _log({"id": event["id"], "attempt": attempt, "request_id": context.aws_request_id})
    succeed_on = int(os.environ.get("FIXTURE_SUCCEED_ON", "0"))
    if attempt != succeed_on:
        raise RuntimeError(f"attempt {attempt} fails")


def stream_timed(event: dict, context: Any) -> None:
    """Logs each batch's records (partition key, sort key) and when it started and ended; a
    batch takes half a second, so batches invoked at once overlap."""
    started = time.time()
    time.sleep(0.5)
    _log({"records": [[r["dynamodb"]["Keys"]["pk"]["S"], r["dynamodb"]["Keys"]["sk"]["S"]] for r in event["Records"]],
          "started": started, "ended": time.time()})
