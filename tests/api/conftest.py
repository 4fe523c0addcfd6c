"""API-level fixtures: the real API function, fed API Gateway payload 2.0 events, against moto.

moto is started once for the whole ``tests/api`` package (starting it resets boto3's session:
about half a second of model loading for the first client), with the table and the queues
built from ``template.yaml``; each module starts from an empty table (moto reads a global
index by going over the whole table: a table that grew all session long would slow every
list). Tests stay apart by organization: every test gets fresh organization ids, so lists,
idempotency keys and webhook secrets of other tests are never in its way.

moto is made a little more like DynamoDB here (``faithful_moto``): transactions cost what they
touch (the local stack's own patch: a table shared by a whole package grows), and an update
that would take an item past 400 KB is refused whole, as DynamoDB refuses it (moto checks only
top-level attributes, against a lower bound, and keeps what it had applied of the update).

The local stack's settings are mirrored (contract section 8: private and ``http`` callback
URLs allowed); a test that wants the production setting says so with ``strict_callbacks``.
"""
from __future__ import annotations


import os
from contextlib import contextmanager
from typing import Any, Iterator

import boto3
import pytest
from moto import mock_aws

from local.template import Template
from tests.api.inprocess import InProcessApi
from tests.contract import unique
from tests.helpers import load_function

#: what the API tests change in the functions' environment, for the package only
ENVIRONMENT = {"ALLOW_PRIVATE_CALLBACKS": "true", "SIMULATED_POLLS_TO_FINISH": "2"}


@contextmanager
def faithful_moto() -> Iterator[None]:
    """moto as the local stack's emulator patches it (local/moto_patches.py): among others, an
    update that would take an item past 400 KB is refused whole, as DynamoDB refuses it."""
    from local import moto_patches

    moto_patches.apply()
    yield


@pytest.fixture(scope="package", autouse=True)
def aws() -> Iterator[dict[str, Any]]:
    from jobsvc.config import settings

    saved = {name: os.environ.get(name) for name in [*ENVIRONMENT, "WEBHOOK_QUEUE_URL", "WEBHOOK_DLQ_URL"]}
    with faithful_moto(), mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        urls = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in Template().queue_definitions()}
        os.environ.update(ENVIRONMENT, WEBHOOK_QUEUE_URL=urls["WebhookQueue"], WEBHOOK_DLQ_URL=urls["WebhookDeadLetterQueue"])
        settings.cache_clear()
        try:
            yield {"dynamodb": dynamodb, "sqs": sqs, "queues": urls, "tables": Template().table_definitions()}
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            settings.cache_clear()


@pytest.fixture(scope="module", autouse=True)
def fresh_table(aws) -> None:
    """An empty table for each module (other services are kept: the queues)."""
    from moto.backends import get_backend

    get_backend("dynamodb").reset()
    for definition in aws["tables"]:
        aws["dynamodb"].create_table(**definition["create"])


@pytest.fixture
def setting(monkeypatch):
    """Change one of the functions' settings for this test: ``setting("MAX_BODY_BYTES", "10")``."""
    from jobsvc.config import settings

    def change(name: str, value: str | None) -> None:
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
        settings.cache_clear()

    yield change
    monkeypatch.undo()
    settings.cache_clear()


@pytest.fixture
def strict_callbacks(setting) -> None:
    """The production setting: only public https callback URLs."""
    setting("ALLOW_PRIVATE_CALLBACKS", "false")


@pytest.fixture(scope="session")
def handler():
    return load_function("api").lambda_handler


@pytest.fixture
def org() -> str:
    return unique("org")


@pytest.fixture
def api(handler, org) -> InProcessApi:
    """A user of a fresh organization."""
    return InProcessApi(handler, {"organization_id": org, "user_id": "user-a"})


@pytest.fixture
def other(handler) -> InProcessApi:
    """A user of another fresh organization (tenant isolation)."""
    return InProcessApi(handler, {"organization_id": unique("org-other"), "user_id": "user-b"})


@pytest.fixture
def colleague(handler, org) -> InProcessApi:
    """Another user of the ``api`` fixture's organization."""
    return InProcessApi(handler, {"organization_id": org, "user_id": "user-c"})


@pytest.fixture
def anonymous(handler) -> InProcessApi:
    """A request the authorizer found no key in (its context carries the reason)."""
    return InProcessApi(handler, {"error": "missing Authorization: Bearer <api key> header"})


@pytest.fixture
def tag(request) -> str:
    """A value unique to this test (for metadata.source_id)."""
    return unique(request.node.name[:40])


@pytest.fixture(scope="session")
def run_scheduler():
    """One run of the scheduler function, as the EventBridge schedule invokes it."""
    from tests.helpers import LambdaContext, event

    class FreshContext(LambdaContext):
        def get_remaining_time_in_millis(self) -> int:
            return 300_000  # a run that just started (the function's timeout)

    scheduler = load_function("scheduler").lambda_handler

    def run() -> dict:
        return scheduler(event("scheduler"), FreshContext())

    return run
