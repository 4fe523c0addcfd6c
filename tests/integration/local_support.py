"""Helpers for the tests of the local stack's emulation: an embedded emulator, fixture functions."""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import boto3
from botocore.config import Config

from local.faults import FaultInjector
from local.lambdas import LocalFunction
from local.template import ROOT, Function

FIXTURES = Path(__file__).resolve().parent / "lambda_fixtures"


def fixture_function(handler: str, timeout: int = 10, faults: FaultInjector | None = None, max_instances: int = 2) -> LocalFunction:
    """A LocalFunction running ``lambda_fixtures/app.<handler>`` with that Timeout."""
    spec = Function(
        logical_id=f"Fixture-{handler}", code_dir=FIXTURES, handler=f"app.{handler}",
        environment={}, events={}, timeout=timeout, memory=128,
    )
    return LocalFunction(spec, [str(ROOT)], max_instances=max_instances, faults=faults)


def raw_client(service: str, endpoint: str, retries: int = 0) -> Any:
    """A boto3 client as the service's code would have (not the local stack's own), with
    ``retries`` retries (0: every answer is seen as it comes)."""
    return boto3.client(
        service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="local",
        aws_secret_access_key="local", config=Config(retries={"total_max_attempts": retries + 1, "mode": "standard"}),
    )


def create_table(client: Any, stream: bool = False, index: bool = False) -> str:
    """A fresh table (pk, sk) with a unique name: the emulator's state is shared by the process."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    request: dict[str, Any] = {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    }
    if index:
        request["AttributeDefinitions"].append({"AttributeName": "g", "AttributeType": "S"})
        request["GlobalSecondaryIndexes"] = [{
            "IndexName": "by-g", "Projection": {"ProjectionType": "ALL"},
            "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        }]
    if stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    client.create_table(**request)
    return name


def read_log(path: Path) -> list:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1) -> Any:
    """Poll ``predicate`` gently until it is true (its value) or ``timeout`` passes (its last value).
    The cap is generous: tests wait for progress, never for a time."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
