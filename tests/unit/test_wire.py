"""The service's DynamoDB client (jobsvc.storage.wire): what it keeps of botocore's behaviour."""
from __future__ import annotations

import json
import socket
import threading
import zlib
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from jobsvc import errors
from jobsvc.storage import db, wire

NOW = datetime(2026, 11, 30, 12, 34, 56, tzinfo=timezone.utc)


@pytest.mark.parametrize("token", [None, "session-token"])
def test_the_signature_is_botocores(monkeypatch, token):
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    body = json.dumps({"TableName": "JobsTable", "Key": {"pk": {"S": "ORG#a  b"}}}).encode()
    headers = {"content-type": wire.CONTENT_TYPE, "host": "dynamodb.eu-west-1.amazonaws.com",
               "x-amz-target": "DynamoDB_20120810.GetItem"}
    wire.Signer(credentials, "eu-west-1").sign(headers, body, now=NOW)

    request = AWSRequest(method="POST", url="https://dynamodb.eu-west-1.amazonaws.com/", data=body,
                         headers={"Content-Type": wire.CONTENT_TYPE, "X-Amz-Target": "DynamoDB_20120810.GetItem"})
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: NOW.replace(tzinfo=None))
    SigV4Auth(credentials, "dynamodb", "eu-west-1").add_auth(request)
    assert headers["authorization"] == request.headers["Authorization"]
    assert headers["x-amz-date"] == request.headers["X-Amz-Date"] == "20261130T123456Z"
    assert headers.get("x-amz-security-token") == request.headers.get("X-Amz-Security-Token")


class Scripted:
    """A transport answering from a script: each entry (status, body dict, extra headers)."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.sent: list[tuple[str, dict, bytes]] = []

    def __call__(self, url, headers, body):
        self.sent.append((url, dict(headers), body))
        status, payload, extra = self.answers.pop(0)
        data = json.dumps(payload).encode()
        return status, {"x-amz-crc32": str(zlib.crc32(data)), **extra}, data


@pytest.fixture
def scripted(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(wire.time, "sleep", sleeps.append)

    def install(*answers):
        transport = Scripted(*answers)
        monkeypatch.setattr(wire, "transport", transport)
        transport.sleeps = sleeps
        return transport

    return install


def client() -> wire.Client:
    return wire.Client("us-east-1", credentials=Credentials("a", "b"))


THROTTLED = (400, {"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException", "message": "Rate exceeded"}, {})
SERVER = (500, {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "Internal server error"}, {})


def test_throttling_and_server_errors_are_retried_with_botocores_backoff(scripted):
    transport = scripted(THROTTLED, SERVER, (200, {"Item": {"pk": {"S": "x"}}}, {}))
    assert client().request("GetItem", {"TableName": "t"}) == {"Item": {"pk": {"S": "x"}}}
    assert len(transport.sent) == 3
    assert len(transport.sleeps) == 2 and 0 <= transport.sleeps[0] <= 1 and 0 <= transport.sleeps[1] <= 2
    assert {s[1]["x-amz-target"] for s in transport.sent} == {"DynamoDB_20120810.GetItem"}


def test_retries_run_out_after_four_attempts_and_the_service_answers_unavailable(scripted, monkeypatch):
    transport = scripted(*[THROTTLED] * 4)
    with pytest.raises(wire.ServiceError) as raised:
        client().request("PutItem", {"TableName": "t"})
    assert raised.value.response["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}
    assert len(transport.sent) == 4

    scripted(*[SERVER] * 4)
    monkeypatch.setattr(db, "_client", client())
    with pytest.raises(errors.Unavailable):
        db.call("PutItem", TableName="t", Item={})


def test_a_failed_condition_is_final_and_carries_the_item(scripted, monkeypatch):
    transport = scripted((400, {"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
                                "message": "The conditional request failed", "Item": {"status": {"S": "running"}}}, {}))
    monkeypatch.setattr(db, "_client", client())
    with pytest.raises(db.Refused) as refused:
        db.call("UpdateItem", TableName="t", Key={})
    assert refused.value.item == {"status": "running"}
    assert len(transport.sent) == 1 and not transport.sleeps


def test_a_cancelled_transaction_reports_each_part(scripted, monkeypatch):
    scripted((400, {"__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException", "Message": "cancelled",
                    "CancellationReasons": [{"Code": "None"}, {"Code": "ConditionalCheckFailed",
                                                                 "Item": {"n": {"N": "2"}}}]}, {}))
    monkeypatch.setattr(db, "_client", client())
    with pytest.raises(db.Cancelled) as cancelled:
        db.call("TransactWriteItems", TransactItems=[])
    assert not cancelled.value.refused(0) and cancelled.value.refused(1) and cancelled.value.item(1) == {"n": 2}


def test_an_answer_that_fails_its_crc32_is_asked_again(scripted):
    transport = scripted((200, {"Count": 1}, {"x-amz-crc32": "12345"}), (200, {"Count": 2}, {}))
    assert client().request("Query", {}) == {"Count": 2}
    assert len(transport.sent) == 2


def test_a_bad_request_is_not_retried(scripted):
    transport = scripted((400, {"__type": "com.amazonaws.dynamodb.v20120810#ValidationException",
                                "message": "Item size has exceeded the maximum allowed size"}, {}))
    with pytest.raises(wire.ServiceError) as raised:
        client().request("PutItem", {})
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert len(transport.sent) == 1


# ---- over HTTP --------------------------------------------------------------------------


class Server:
    """A DynamoDB stand-in on 127.0.0.1 that closes each connection after ``keep`` answers."""

    def __init__(self, keep: int) -> None:
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.requests.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": json.loads(body)})
                data = b'{"Count":0}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
                self.served = getattr(self, "served", 0) + 1
                if self.served >= keep:  # close without saying so: the client's pooled socket goes stale
                    self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_pooled_connection_the_server_closed_is_replaced_without_an_attempt(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(wire.time, "sleep", sleeps.append)
    monkeypatch.setenv("AWS_SDK_UA_APP_ID", "ApiFunction")
    server = Server(keep=1)
    try:
        c = wire.Client("us-east-1", server.url, credentials=Credentials("a", "b"))
        for n in range(3):
            assert c.request("Query", {"TableName": "t", "n": n}) == {"Count": 0}
        assert [r["body"]["n"] for r in server.requests] == [0, 1, 2]
        assert not sleeps  # a stale socket is not a failed attempt
        agent = server.requests[0]["headers"]["user-agent"]
        assert agent.split()[-1] == "app/ApiFunction"
        assert server.requests[0]["headers"]["x-amz-target"] == "DynamoDB_20120810.Query"
    finally:
        server.stop()


def test_when_every_pooled_connection_went_stale_a_new_one_is_made(monkeypatch):
    """After an idle spell every pooled connection may be closed by the server: the first one
    found closed drops the others, and the request goes on a new connection."""
    sleeps: list[float] = []
    monkeypatch.setattr(wire.time, "sleep", sleeps.append)
    server = Server(keep=1)
    try:
        c = wire.Client("us-east-1", server.url, credentials=Credentials("a", "b"))
        both = threading.Barrier(2)
        take = c._take

        def take_together(fresh: bool = False):
            taken = take(fresh)
            both.wait(timeout=10)  # two requests at once: two connections, both pooled after
            return taken

        c._take = take_together
        threads = [threading.Thread(target=c.request, args=("Query", {"n": i})) for i in range(2)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        c._take = take
        assert len(c._idle) == 2
        assert c.request("Query", {"n": 9}) == {"Count": 0}
        assert [r["body"]["n"] for r in server.requests][-1] == 9 and not sleeps
    finally:
        server.stop()


def test_a_transaction_is_retried_with_one_idempotency_token(scripted):
    """As botocore does: a TransactWriteItems carries a ClientRequestToken, the same on every
    retry, so a retry of a transaction that committed is answered as that commit."""
    transport = scripted(SERVER, (200, {}, {}))
    client().request("TransactWriteItems", {"TransactItems": []})
    tokens = {json.loads(body)["ClientRequestToken"] for _, _, body in transport.sent}
    assert len(transport.sent) == 2 and len(tokens) == 1 and len(tokens.pop()) == 36


def test_an_error_that_is_not_json_keeps_its_text(monkeypatch):
    monkeypatch.setattr(wire, "transport", lambda url, headers, body: (400, {}, b"<html>Bad Request</html>"))
    with pytest.raises(wire.ServiceError) as raised:
        client().request("GetItem", {})
    assert raised.value.response["Error"] == {"Code": "400", "Message": "<html>Bad Request</html>"}


def test_an_endpoint_that_refuses_connections_is_unavailable_after_the_attempts(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(wire.time, "sleep", sleeps.append)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    c = wire.Client("us-east-1", f"http://127.0.0.1:{port}", credentials=Credentials("a", "b"))
    monkeypatch.setattr(db, "_client", c)
    with pytest.raises(errors.Unavailable):
        db.call("GetItem", TableName="t", Key={})
    assert len(sleeps) == wire.ATTEMPTS - 1


def test_the_endpoint_follows_the_region():
    assert wire.endpoint_for("eu-west-1") == "https://dynamodb.eu-west-1.amazonaws.com"
    assert wire.endpoint_for("cn-north-1") == "https://dynamodb.cn-north-1.amazonaws.com.cn"
