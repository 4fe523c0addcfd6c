"""The local API Gateway (local/gateway.py) over HTTP: API Gateway's own answers where it gives
them, the decoded path, payload and time limits, the authorizer's identity source and cache."""
from __future__ import annotations

import http.client
import json
import socket
import threading
from typing import Iterator

import pytest

from local.emulator import POLL_INTERVAL
from local.faults import FaultInjector, FaultSpec
from local.gateway import Gateway
from local.lambdas import LocalFunction, SYNC_PAYLOAD_BYTES
from local.template import Authorizer, Route

from .local_support import fixture_function, read_log

API = "Fixture-http_echo"
AUTH = "Fixture-authorizer"


@pytest.fixture
def gateway(tmp_path, monkeypatch) -> Iterator:
    """gateway(routes=..., integration_timeout=..., api_timeout=...) -> (port, functions)."""
    monkeypatch.setenv("FIXTURE_LOG", str(tmp_path / "log.jsonl"))
    started: list[tuple[Gateway, dict[str, LocalFunction]]] = []

    def start(routes: list[Route], integration_timeout: float = 30.0, api_timeout: int = 10, faults=None):
        functions = {API: fixture_function("http_echo", timeout=api_timeout, max_instances=4, faults=faults),
                     AUTH: fixture_function("authorizer")}
        server = Gateway(0, routes, functions, integration_timeout=integration_timeout)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, daemon=True).start()
        started.append((server, functions))
        return server.server_address[1], functions

    yield start
    for server, functions in started:
        server.shutdown()
        server.server_close()
        for function in functions.values():
            function.stop()


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def routes(authorizer: Authorizer | None = None, default: bool = False) -> list[Route]:
    out = [Route("GET", "/things/{thing_id}", API, authorizer), Route("POST", "/things", API, authorizer)]
    if default:
        out.append(Route("ANY", "$default", API, None))
    return out


# ---- routing and the event ---------------------------------------------------------------------


def test_the_path_is_percent_decoded_as_api_gateway_passes_it(gateway):
    port, _ = gateway(routes())
    status, body = request(port, "GET", "/things/caf%C3%A9%20au%20lait?q=a%20b")
    event = json.loads(body)
    assert status == 200
    assert event["rawPath"] == "/things/café au lait"
    assert event["requestContext"]["http"]["path"] == "/things/café au lait"
    assert event["pathParameters"] == {"thing_id": "café au lait"}
    assert event["rawQueryString"] == "q=a%20b" and event["queryStringParameters"] == {"q": "a b"}


@pytest.mark.parametrize("method", ["PROPFIND", "TRACE", "PUT", "BREW"])
def test_a_method_no_route_takes_is_api_gateways_json_404(gateway, method):
    port, _ = gateway(routes())
    status, body = request(port, method, "/things/x")
    assert (status, json.loads(body)) == (404, {"message": "Not Found"})


def test_a_default_route_takes_any_method(gateway):
    port, _ = gateway(routes(default=True))
    status, body = request(port, "PROPFIND", "/elsewhere")
    assert status == 200 and json.loads(body)["routeKey"] == "$default"


def test_a_form_body_arrives_base64_encoded_and_a_json_body_as_text(gateway):
    port, _ = gateway(routes())
    _, body = request(port, "POST", "/things", b"a=1&b=2", {"Content-Type": "application/x-www-form-urlencoded"})
    event = json.loads(body)
    assert (event["body"], event["isBase64Encoded"]) == ("YT0xJmI9Mg==", True)
    _, body = request(port, "POST", "/things", b'{"a": 1}', {"Content-Type": "application/json"})
    event = json.loads(body)
    assert (event["body"], event["isBase64Encoded"]) == ('{"a": 1}', False)


# ---- limits --------------------------------------------------------------------------------------


def test_an_answer_over_6_mb_is_api_gateways_500(gateway):
    port, _ = gateway(routes())
    # the body is JSON-escaped into the function's answer, with statusCode and headers around it
    status, body = request(port, "GET", f"/things/x?bytes={SYNC_PAYLOAD_BYTES - 200}")
    assert status == 200 and len(body) == SYNC_PAYLOAD_BYTES - 200
    status, body = request(port, "GET", f"/things/x?bytes={SYNC_PAYLOAD_BYTES}")
    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})


def test_a_request_whose_event_is_over_6_mb_is_api_gateways_500_and_never_reaches_the_function(gateway, tmp_path):
    port, functions = gateway(routes())
    # a body just under 6 MB: with the rest of the event (headers, requestContext...) it is over
    body = json.dumps({"s": "x" * (SYNC_PAYLOAD_BYTES - 100)}).encode()  # and under API Gateway's 10 MB
    status, answer = request(port, "POST", "/things", body, {"Content-Type": "application/json"})
    assert (status, json.loads(answer)) == (500, {"message": "Internal Server Error"})
    # base64 makes a 5 MB body a 6.7 MB event
    status, answer = request(port, "POST", "/things", b"x" * 5_000_000, {"Content-Type": "application/octet-stream"})
    assert (status, json.loads(answer)) == (500, {"message": "Internal Server Error"})
    assert functions[API].invocations == 0
    # as text, the same 5 MB fit
    status, answer = request(port, "POST", "/things?bytes=2", b"x" * 5_000_000, {"Content-Type": "text/plain"})
    assert status == 200 and functions[API].invocations == 1


def test_a_request_over_10_mb_is_api_gateways_413(gateway):
    port, _ = gateway(routes())
    # the answer comes before the body is read (so only the headers are sent here)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"POST /things HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (10 * 1024 * 1024 + 1))
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert (response.status, json.loads(response.read())) == (413, {"message": "Request Entity Too Large"})


# ---- time --------------------------------------------------------------------------------------


def test_a_function_past_its_timeout_is_api_gateways_500(gateway):
    port, _ = gateway(routes(), api_timeout=1)
    status, body = request(port, "GET", "/things/x?sleep=30")
    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})


def test_no_answer_within_the_integration_timeout_is_api_gateways_503(gateway):
    port, _ = gateway(routes(), integration_timeout=0.5, api_timeout=30)
    status, body = request(port, "GET", "/things/x?sleep=3")
    assert (status, json.loads(body)) == (503, {"message": "Service Unavailable"})


def test_an_instance_killed_mid_request_is_api_gateways_500(gateway):
    injector = FaultInjector(FaultSpec(kill=1.0))
    injector.armed = True
    port, functions = gateway(routes(), faults=injector)
    status, body = request(port, "GET", "/things/x")
    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})
    injector.armed = False
    assert request(port, "GET", "/things/x")[0] == 200  # a new instance takes the next request


# ---- the authorizer ----------------------------------------------------------------------------


def authorizer_calls(tmp_path) -> list:
    return [entry["authorizer"] for entry in read_log(tmp_path / "log.jsonl") if "authorizer" in entry]


def test_without_the_identity_source_api_gateway_answers_401_without_running_the_authorizer(gateway, tmp_path):
    port, functions = gateway(routes(Authorizer(AUTH, ("authorization",), 0)))
    status, body = request(port, "GET", "/things/x")
    assert (status, json.loads(body)) == (401, {"message": "Unauthorized"})
    status, body = request(port, "GET", "/things/x", headers={"Authorization": ""})
    assert status == 401
    assert authorizer_calls(tmp_path) == [] and functions[AUTH].invocations == 0
    status, body = request(port, "GET", "/things/x", headers={"Authorization": "alice"})
    assert status == 200
    assert json.loads(body)["requestContext"]["authorizer"] == {"lambda": {"who": "alice"}}
    assert authorizer_calls(tmp_path) == [["alice"]], "the identity source values reach the authorizer"


def test_a_cached_answer_costs_no_authorizer_invocation(gateway, tmp_path):
    port, _ = gateway(routes(Authorizer(AUTH, ("authorization",), 60)))
    for _ in range(3):
        assert request(port, "GET", "/things/x", headers={"Authorization": "alice"})[0] == 200
        assert request(port, "POST", "/things", b"{}", headers={"Authorization": "alice"})[0] == 200
    assert request(port, "GET", "/things/x", headers={"Authorization": "bob"})[0] == 200
    assert authorizer_calls(tmp_path) == [["alice"], ["bob"]]  # one per identity, for every route


def test_with_caching_off_every_request_runs_the_authorizer(gateway, tmp_path):
    port, _ = gateway(routes(Authorizer(AUTH, ("authorization",), 0)))
    for _ in range(3):
        assert request(port, "GET", "/things/x", headers={"Authorization": "alice"})[0] == 200
    assert authorizer_calls(tmp_path) == [["alice"]] * 3


def test_an_authorizer_that_says_no_is_api_gateways_403_and_is_cached_too(gateway, tmp_path):
    port, _ = gateway(routes(Authorizer(AUTH, ("authorization",), 60)))
    for _ in range(2):
        status, body = request(port, "GET", "/things/x", headers={"Authorization": "deny"})
        assert (status, json.loads(body)) == (403, {"message": "Forbidden"})
    assert authorizer_calls(tmp_path) == [["deny"]]
