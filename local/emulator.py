"""The AWS side of the local stack: an embedded moto server (or any endpoint given)."""
from __future__ import annotations

import json
import threading
from typing import Any

import boto3
from botocore.config import Config

from .template import REGION, Template


class _OneAtATime:
    """WSGI wrapper that lets the emulator handle one request at a time.

    DynamoDB applies each conditional write atomically; moto's in-memory
    backend does not lock, so concurrent requests are serialised here to keep
    that guarantee (two racing conditional writes can never both succeed).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Any) -> list[bytes]:
        with self.lock:
            return list(self.app(environ, start_response))


class Emulator:
    def __init__(self, endpoint_url: str | None = None) -> None:
        self.endpoint_url = endpoint_url
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def embedded(self) -> bool:
        return self._server is not None

    def start(self) -> str:
        if self.endpoint_url:
            return self.endpoint_url
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        from . import moto_patches

        moto_patches.apply()
        class QuietHandler(MotoRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass

        app = _OneAtATime(DomainDispatcherApplication(create_backend_app))
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="emulator", daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.endpoint_url = f"http://{host}:{port}"
        return self.endpoint_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def client(self, service: str) -> Any:
        credentials = {"aws_access_key_id": "local", "aws_secret_access_key": "local"} if self.embedded else {}
        return boto3.client(
            service, endpoint_url=self.endpoint_url, region_name=REGION,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}), **credentials,
        )

    def create_resources(self, template: Template) -> None:
        """Create what template.yaml declares and the endpoint lacks (idempotent)."""
        dynamodb = self.client("dynamodb")
        existing = set(dynamodb.list_tables()["TableNames"])
        for table in template.table_definitions():
            request = table["create"]
            if request["TableName"] in existing:
                continue
            dynamodb.create_table(**request)
            dynamodb.get_waiter("table_exists").wait(TableName=request["TableName"])
            ttl = table["ttl"]
            if ttl and ttl.get("Enabled"):
                dynamodb.update_time_to_live(
                    TableName=request["TableName"],
                    TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
                )
        for logical_id in template.of_type("AWS::DynamoDB::Table"):
            description = dynamodb.describe_table(TableName=template.physical_name(logical_id))["Table"]
            values = {"Ref": description["TableName"], "Arn": description["TableArn"]}
            if description.get("LatestStreamArn"):
                values["StreamArn"] = description["LatestStreamArn"]
            template.bind(logical_id, **values)

        sqs = self.client("sqs")
        for logical_id, attributes in template.queue_definitions().items():
            url = sqs.create_queue(QueueName=template.physical_name(logical_id), Attributes=attributes)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            template.bind(logical_id, Ref=url, Arn=arn, QueueName=template.physical_name(logical_id), QueueUrl=url)
        for logical_id, policy in template.redrive_policies().items():
            sqs.set_queue_attributes(
                QueueUrl=template.physical[logical_id]["Ref"],
                Attributes={"RedrivePolicy": json.dumps(policy)},
            )
