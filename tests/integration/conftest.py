"""Integration fixtures: moto's in-process DynamoDB with the table built from template.yaml."""
from __future__ import annotations

from typing import Iterator

import boto3
import pytest
from moto import mock_aws

from local.template import Template
from tests.helpers import LambdaContext, load_function


@pytest.fixture
def table() -> Iterator[str]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        for definition in Template().table_definitions():
            client.create_table(**definition["create"])
        yield "JobsTable"


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
def webhook_env(table, monkeypatch):
    """The table plus the webhook queues from the template; private callback URLs allowed
    (the receiver listens on 127.0.0.1). Yields a small helper namespace."""
    from jobsvc.config import settings

    sqs = boto3.client("sqs", region_name="us-east-1")
    urls = {}
    for logical_id in Template().queue_definitions():
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
