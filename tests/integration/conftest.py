"""Integration fixtures: moto's in-process DynamoDB with the table built from template.yaml.

moto is started once for the package (starting it resets boto3's session, and the first
client of a fresh session costs about half a second of model loading, per test); every test
still starts from nothing: its ``table`` resets every moto backend and builds the table anew
(a few tens of milliseconds).
"""
from __future__ import annotations

from typing import Iterator

import boto3
import pytest
from moto import mock_aws
from moto.core.base_backend import BackendDict

from local.template import Template
from tests.helpers import LambdaContext, load_function


@pytest.fixture(scope="package")
def aws() -> Iterator[dict]:
    """moto for the whole package, with its clients (created once: see the module's doc)."""
    with mock_aws():
        yield {
            "dynamodb": boto3.client("dynamodb", region_name="us-east-1"),
            "sqs": boto3.client("sqs", region_name="us-east-1"),
            "template": Template(),
        }


@pytest.fixture
def table(aws) -> Iterator[str]:
    """A fresh table, and the service's settings read again from the environment before and
    after the test (a test that changed the environment and cleared them left them cached
    for whatever ran next in that worker: the simulated provider switched off, for one)."""
    from jobsvc.config import settings

    BackendDict.reset()  # what a fresh mock_aws() does: every service empty
    for definition in aws["template"].table_definitions():
        aws["dynamodb"].create_table(**definition["create"])
    settings.cache_clear()
    yield "JobsTable"
    settings.cache_clear()


@pytest.fixture(scope="session")
def api_fn():
    return load_function("api")


@pytest.fixture(scope="session")
def authorizer_fn():
    return load_function("authorizer")


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()


@pytest.fixture
def webhook_env(table, aws, monkeypatch):
    """The table plus the webhook queues from the template; private callback URLs allowed
    (the receiver listens on 127.0.0.1). Yields a small helper namespace."""
    from jobsvc.config import settings

    sqs = aws["sqs"]
    urls = {}
    for logical_id in aws["template"].queue_definitions():
        urls[logical_id] = sqs.create_queue(QueueName=logical_id)["QueueUrl"]
    monkeypatch.setenv("WEBHOOK_QUEUE_URL", urls["WebhookQueue"])
    monkeypatch.setenv("WEBHOOK_DLQ_URL", urls["WebhookDeadLetterQueue"])
    monkeypatch.setenv("ALLOW_PRIVATE_CALLBACKS", "true")
    settings.cache_clear()
    from tests.receiver import Receiver

    receiver = Receiver()

    class Env:
        pass

    env = Env()
    env.sqs, env.urls, env.receiver = sqs, urls, receiver
    yield env
    receiver.close()
    monkeypatch.undo()
    settings.cache_clear()
