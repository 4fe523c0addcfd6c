"""The API-level tests' event builder (tests/apigw.py) against the sample events of events/ (what
API Gateway sends, as ``sam local invoke`` and the integration tests use them)."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests import apigw

EVENTS = Path(__file__).resolve().parents[2] / "events"
SAMPLES = sorted(p.stem for p in EVENTS.glob("api_*.json"))
#: what differs from request to request (ids, times) or from deployment to deployment
VARYING = {"requestId", "time", "timeEpoch", "domainName", "domainPrefix", "apiId", "accountId"}


def comparable(event: dict) -> dict:
    out = json.loads(json.dumps(event))
    out["requestContext"] = {k: v for k, v in out["requestContext"].items() if k not in VARYING}
    out["requestContext"]["http"] = {k: v for k, v in out["requestContext"]["http"].items() if k not in ("sourceIp", "userAgent")}
    out["headers"] = {k: v for k, v in out["headers"].items() if k not in ("host", "user-agent")}
    return out


@pytest.mark.parametrize("name", SAMPLES)
def test_the_builder_makes_the_sample_events(name):
    sample = json.loads((EVENTS / f"{name}.json").read_text())
    method = sample["requestContext"]["http"]["method"]
    target = sample["rawPath"] + (f"?{sample['rawQueryString']}" if sample["rawQueryString"] else "")
    authorizer = sample["requestContext"].get("authorizer", {}).get("lambda")
    built = apigw.event(method, target, headers=sample["headers"], body=sample.get("body"), authorizer=authorizer)
    assert comparable(built) == comparable(sample)


def test_headers_are_lower_cased_and_repeats_joined():
    event = apigw.event("GET", "/v1/jobs?status=running&status=failed",
                        headers=[("X-Thing", "a"), ("x-thing", "b"), ("Cookie", "a=1; b=2")], authorizer={})
    assert event["headers"]["x-thing"] == "a,b"
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["queryStringParameters"] == {"status": "running,failed"}


@pytest.mark.parametrize("content_type, encoded", [
    ("application/json", False), ("application/json; charset=utf-8", False), ("text/plain", False),
    ("application/vnd.api+json", False), ("application/x-www-form-urlencoded", True), ("application/octet-stream", True),
    (None, True),
])
def test_bodies_of_other_content_types_are_base64(content_type, encoded):
    body = b'{"status": "pending"}'
    event = apigw.event("POST", "/v1/jobs", headers={"Content-Type": content_type} if content_type else {}, body=body,
                        authorizer={})
    assert event["isBase64Encoded"] is encoded
    assert (base64.b64decode(event["body"]) if encoded else event["body"].encode()) == body


def test_bytes_that_are_not_utf8_are_base64_whatever_the_type():
    event = apigw.event("POST", "/v1/jobs", headers={"Content-Type": "application/json"}, body=b"\xff\xfe{", authorizer={})
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\xff\xfe{"


def test_routes_and_the_authorizer_context_follow_the_template():
    job = "job-01a222d6-3e20-7709-8ca5-2a2f43631f8a"
    event = apigw.event("PATCH", f"/v1/jobs/{job}/cancel", authorizer={"organization_id": "o", "user_id": "u"})
    assert (event["routeKey"], event["pathParameters"]) == ("PATCH /v1/jobs/{job_id}/cancel", {"job_id": job})
    assert event["requestContext"]["authorizer"] == {"lambda": {"organization_id": "o", "user_id": "u"}}
    public = apigw.event("GET", "/v1/health", authorizer={"organization_id": "o"})
    assert "authorizer" not in public["requestContext"], "public routes have no authorizer"
    unknown = apigw.event("PUT", f"/v1/jobs/{job}")
    assert unknown["routeKey"] == "$default" and "pathParameters" not in unknown
