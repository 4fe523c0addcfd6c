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
