"""The local stack answers as AWS would, over HTTP (`python -m local`, as `make run` starts it):
API Gateway's authorizer cache and identity source, bodies encoded as HTTP APIs encode them, the
service's body limits below what a Lambda event can carry, any method answered in JSON, paths
decoded. Its keys (one is revoked here) belong to an organization no other test uses."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from .conftest import KEYS

ROOT = Path(__file__).resolve().parents[2]
KEY = KEYS["fidelity"][0]
OTHER = KEYS["fidelity-other"][0]


@pytest.fixture(scope="module")
def local(stack) -> dict:
    """The session's stack (conftest.py: it knows KEY and OTHER, of an organization of their
    own, and keeps the template's AuthorizerCacheSeconds, 60)."""
    return stack


def call(local: dict, method: str, path: str, key: str | None = OTHER, **kwargs) -> requests.Response:
    headers = kwargs.pop("headers", {})
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return requests.request(method, local["base"] + path, headers=headers, timeout=120, **kwargs)


def gateway_answer(response: requests.Response) -> tuple[int, dict]:
    return response.status_code, response.json()


# ---- the authorizer ------------------------------------------------------------------------------


def test_a_cached_key_costs_no_authorizer_invocation(local):
    """AuthorizerCacheSeconds defaults to 60: after one request with a key, the next ones within a
    minute are answered from API Gateway's cache. Revoking the key in the table shows it: the
    authorizer would now refuse it, but it is not asked."""
    assert call(local, "GET", "/v1/jobs", key=KEY).status_code == 200
    revoke = subprocess.run(
        [sys.executable, "-m", "jobsvc.keys", "--table", "JobsTable", "revoke", "--key", KEY],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "AWS_ENDPOINT_URL": local["emulator"], "PYTHONPATH": str(ROOT / "layers/common"),
             "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_REGION": "us-east-1"},
    )
    assert revoke.returncode == 0, revoke.stderr
    for path in ("/v1/jobs", "/v1/batches"):  # the cache serves every route of the authorizer
        assert call(local, "GET", path, key=KEY).status_code == 200, "the authorizer ran again"
    # a key never seen is asked about, and refused by the service (a detail, WWW-Authenticate)
    refused = call(local, "GET", "/v1/jobs", key="jsk_fidelity_never_seen_01234567")
    assert refused.status_code == 401 and refused.json()["detail"]
    assert refused.headers["WWW-Authenticate"] == "Bearer"


def test_a_request_without_authorization_is_refused_by_api_gateway_itself(local):
    response = call(local, "GET", "/v1/jobs", key=None)
    assert gateway_answer(response) == (401, {"message": "Unauthorized"})
    assert call(local, "GET", "/v1/health", key=None).status_code == 200  # public routes need none


# ---- bodies ---------------------------------------------------------------------------------------


def test_a_curl_form_body_arrives_base64_encoded_and_is_read_as_json(local):
    # curl -d sends application/x-www-form-urlencoded, which API Gateway base64-encodes
    response = call(local, "POST", "/v1/jobs", data=b'{"job_type": "run"}',
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 201, response.text
    assert response.json()["job_type"] == "run"


BATCH_LIMIT = 3_000_000


def padded(size: int, escaped: bool = False) -> bytes:
    """A JSON object of exactly ``size`` bytes; ``escaped``: its padding is all backslashes (each
    pair one character), the worst case for JSON escaping, which doubles every one of them."""
    head, tail = b'{"provider": "simulated", "pad": "', b'"}'
    room = size - len(head) - len(tail)
    if escaped and room % 2:
        head, room = head.replace(b"{", b"{ "), room - 1
    body = head + (b"\\\\" * (room // 2) if escaped else b"a" * room) + tail
    assert len(body) == size
    json.loads(body)
    return body


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_a_batch_body_over_the_limit_is_the_services_413(local, content_type):
    response = call(local, "POST", "/v1/batches", data=padded(BATCH_LIMIT + 1), headers={"Content-Type": content_type})
    assert response.status_code == 413, response.text[:200]
    assert "detail" in response.json()


@pytest.mark.parametrize("content_type", ["application/json", "application/octet-stream"])
def test_a_batch_body_at_the_limit_reaches_the_service_however_it_is_encoded(local, content_type):
    # the worst case for JSON escaping: every byte of the string a backslash pair (doubles in the event)
    response = call(local, "POST", "/v1/batches", data=padded(BATCH_LIMIT, escaped=True), headers={"Content-Type": content_type})
    assert response.status_code < 500, f"the platform refused it: {response.status_code} {response.text[:200]}"
    assert "detail" in response.json()


def test_a_body_no_lambda_event_can_carry_is_api_gateways_500(local):
    response = call(local, "POST", "/v1/jobs", data=padded(7_000_000), headers={"Content-Type": "application/json"})
    assert gateway_answer(response) == (500, {"message": "Internal Server Error"})


# ---- methods and paths ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PROPFIND", "TRACE", "PUT"])
def test_any_method_gets_json(local, method):
    response = call(local, method, "/v1/jobs")
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": "no such route"}  # the $default route takes it


def test_a_percent_encoded_path_reaches_the_service_decoded(local):
    job = call(local, "POST", "/v1/jobs", json={}).json()
    encoded = "".join(f"%{ord(c):02X}" if c in "job" else c for c in job["id"])  # %6A%6F%62-...
    response = call(local, "GET", f"/v1/jobs/{encoded}")
    assert response.status_code == 200, response.text
    assert response.json()["id"] == job["id"]
