"""The service's body limits hold under AWS's encoding: any body they accept fits in a Lambda event
however API Gateway puts it there (JSON-escaped or base64), so a larger one gets the service's 413."""
from __future__ import annotations

import base64
import json

import pytest

from jobsvc import jsonbody
from jobsvc.config import API_EVENT_OVERHEAD_BYTES, LAMBDA_PAYLOAD_BYTES, MAX_EVENT_BODY_BYTES, Settings
from local.gateway import body_for_event
from local.lambdas import to_json
from local.template import Template
from tests.helpers import load_function


def worst_event_size(body: bytes, content_type: str) -> int:
    """The event's size with this body, and every other member at the largest API Gateway allows
    (the request line and headers: 10 KiB, of quotes, which escaping doubles, appearing three times)."""
    text, encoded = body_for_event(body, content_type)
    filler = '"' * (10 * 1024 // 3)
    event = {"version": "2.0", "routeKey": "POST /v1/batches", "rawPath": "/v1/batches" + filler,
             "headers": {"x": filler}, "queryStringParameters": {"q": filler},
             "requestContext": {"http": {"path": "/v1/batches", "userAgent": filler}}, "body": text, "isBase64Encoded": encoded}
    return len(to_json(event).encode())


def worst_json_body(size: int) -> bytes:
    """A valid JSON object of ``size`` bytes made of backslash pairs: escaping doubles all of it."""
    head = b'{"a": "'
    room = size - len(head) - 2
    if room % 2:
        head, room = b'{ "a": "', room - 1
    body = head + b"\\\\" * (room // 2) + b'"}'
    assert len(body) == size and json.loads(body)
    return body


def test_the_default_limits_fit_in_a_lambda_event_in_the_worst_case():
    settings = Settings.from_env({})
    assert settings.batch_max_body_bytes == 3_000_000 and settings.max_body_bytes == 1024 * 1024
    for limit in (settings.batch_max_body_bytes, settings.max_body_bytes, MAX_EVENT_BODY_BYTES):
        assert worst_event_size(worst_json_body(limit), "application/json") <= LAMBDA_PAYLOAD_BYTES
        assert worst_event_size(b"x" * limit, "application/x-www-form-urlencoded") <= LAMBDA_PAYLOAD_BYTES
    assert API_EVENT_OVERHEAD_BYTES >= 3 * 2 * 10 * 1024


def test_the_old_5_mib_batch_limit_did_not_fit():
    assert worst_event_size(b"x" * 5 * 1024 * 1024, None) > LAMBDA_PAYLOAD_BYTES  # base64
    assert worst_event_size(worst_json_body(5 * 1024 * 1024), "application/json") > LAMBDA_PAYLOAD_BYTES


def test_configured_limits_are_capped_at_what_fits():
    settings = Settings.from_env({"MAX_BODY_BYTES": "5000000", "BATCH_MAX_BODY_BYTES": "5242880"})
    assert settings.max_body_bytes == settings.batch_max_body_bytes == MAX_EVENT_BODY_BYTES
    parameter = Template().doc["Parameters"]["MaxBodyBytes"]
    assert parameter["MaxValue"] <= MAX_EVENT_BODY_BYTES


@pytest.fixture(scope="module")
def gate():
    return load_function("api")._gate


def event(body: str, encoded: bool, route: str = "POST /v1/batches") -> dict:
    return {"routeKey": route, "body": body, "isBase64Encoded": encoded, "headers": {},
            "requestContext": {"authorizer": {"lambda": {"organization_id": "o", "user_id": "u"}}}}


def status_of(answer: dict | None) -> int | None:
    return None if answer is None else answer["statusCode"]


def test_the_gate_measures_the_decoded_body(gate):
    over = b'{"a": "' + b"x" * (3_000_000 - 8) + b'"}'  # 3,000,001 bytes
    assert len(over) == 3_000_001
    for body, encoded in ((over.decode(), False), (base64.b64encode(over).decode(), True)):
        answer = gate(event(body, encoded))
        assert status_of(answer) == 413 and "detail" in json.loads(answer["body"])
    at_limit = over[:8] + over[9:]
    assert gate(event(base64.b64encode(at_limit).decode(), True)) is None  # passes on to the routes


def test_a_body_that_is_not_base64_is_a_400_not_a_500(gate):
    answer = gate(event("not base64 at all!", True, route="POST /v1/jobs"))
    assert status_of(answer) == 400


def test_nesting_is_bounded_for_every_runtime():
    deep = ("[" * (jsonbody.MAX_DEPTH + 1) + "]" * (jsonbody.MAX_DEPTH + 1)).encode()
    with pytest.raises(Exception) as raised:
        jsonbody.check(b'{"a": ' + deep + b"}", 1 << 20)
    assert raised.value.status_code == 400
    fine = ("[" * (jsonbody.MAX_DEPTH - 1) + "]" * (jsonbody.MAX_DEPTH - 1)).encode()
    assert jsonbody.check(b'{"a": ' + fine + b"}", 1 << 20)
