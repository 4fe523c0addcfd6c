"""The AWS side of the local stack: an embedded moto server (or any endpoint given).

The embedded server answers as AWS would where moto does not (see moto_patches.py): one request at
a time (DynamoDB applies each conditional write atomically; moto's in-memory backend does not
lock), transactions that hold their items for a while (conflicts.py), eventually consistent reads
(consistency.py) and injected faults (faults.py).
"""
from __future__ import annotations

import json
import threading
from typing import Any, Callable, Iterable

import boto3
from botocore.config import Config

from . import emulation
from .emulation import Emulation
from .faults import INTERNAL_HEADER, FaultInjector, FaultSpec, faulting
from .template import REGION, Template

#: how often a server's loop looks for a stop request: stopping a server waits for it (the
#: standard library's default, 0.5 s, was half a second per emulator a test stopped)
POLL_INTERVAL = 0.05


class _Serving:
    """WSGI wrapper: one request at a time through moto, then the hold of a transaction.

    A transaction's answer is held back (outside the lock, so that other requests run meanwhile
    and can conflict with it) until its items are released; see conflicts.py.
    """

    def __init__(self, app: Any, behaviour: Emulation) -> None:
        self.app = app
        self.behaviour = behaviour
        self.lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        with emulation.serving(self.behaviour) as request:
            with self.lock:
                body = list(self.app(environ, start_response))
        if request.hold_generation is not None:  # a transaction ran: its answer waits out its hold
            self.behaviour.in_use.wait(request.hold_until, request.hold_generation)
        return body


def _mark_internal(request: Any, **_: Any) -> None:
    request.headers[INTERNAL_HEADER] = "1"


class Emulator:
    def __init__(
        self, endpoint_url: str | None = None, behaviour: Emulation | None = None, faults: FaultInjector | None = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.behaviour = behaviour or Emulation()
        self.faults = faults or FaultInjector(FaultSpec())
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

        self._serving = _Serving(DomainDispatcherApplication(create_backend_app), self.behaviour)
        app = faulting(self._serving, self.faults)
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL},
                                        name="emulator", daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.endpoint_url = f"http://{host}:{port}"
        return self.endpoint_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def expired_keys(self, table_name: str, attribute: str, now: int) -> list[dict] | None:
        """The keys of the items whose ``attribute`` is a number below ``now``, read from moto's
        memory between two requests (a Scan of the whole table held every other request up for
        a third of a second); None when the emulator is not embedded (the caller scans)."""
        if self._server is None:
            return None
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        with self._serving.lock:
            table = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].get_table(table_name)
            keys = []
            for item in table.all_items():
                value = item.attrs.get(attribute)
                if value is not None and value.type == "N" and float(value.value) < now:
                    keys.append({name: item.attrs[name].to_json() for name in table.table_key_attrs})
            return keys

    def client(self, service: str, internal: bool = True) -> Any:
        """A boto3 client of the emulator; ``internal`` ones (the local stack's own: set-up, the
        stream and queue pollers) are never faulted."""
        credentials = {"aws_access_key_id": "local", "aws_secret_access_key": "local"} if self.embedded else {}
        client = boto3.client(
            service, endpoint_url=self.endpoint_url, region_name=REGION,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}), **credentials,
        )
        if internal:
            client.meta.events.register("before-send", _mark_internal)
        return client

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
