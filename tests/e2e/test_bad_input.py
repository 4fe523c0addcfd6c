"""Bad input (contract section 1): the right 4xx, a JSON ``detail``, never a 5xx, and no change.

"No change" is checked after every refusal: no job was created (a list bounded by
``after=<a job created just before>`` is empty), the job is as it was, no message was added.
"""
from __future__ import annotations

import json
import uuid

import pytest

from e2e_support import shift_id

UUID = str(uuid.uuid4())


def check_error(response, status: int | tuple[int, ...]) -> dict:
    expected = status if isinstance(status, tuple) else (status,)
    assert response.status_code < 500, f"a 5xx for bad input: {response.status_code} {response.text[:300]}"
    assert response.status_code in expected, (response.status_code, response.text[:300])
    assert response.headers.get("Content-Type", "").startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and body.get("detail"), body
    assert isinstance(body["detail"], (str, list))
    return body


def assert_no_job_since(api, marker: dict) -> None:
    assert api.list_ids(after=marker["id"]) == [], "a refused create stored a job"


def post_raw(api, path: str, data: bytes | str):
    return api.post(path, data=data, headers={"Content-Type": "application/json"})


# ---- create ----------------------------------------------------------------------------

MALFORMED = ['{bad', '{"metadata": {}', '{"a": 1}}', "{'status': 'created'}", "nul", '{"metadata": {"a": 1,}}',
             "[1, 2", '{"status": "created"', "\x00"]


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_json_is_400(api, data):
    marker = api.create()
    check_error(post_raw(api, "/v1/jobs", data), 400)
    assert_no_job_since(api, marker)


BAD_CREATE = {
    # unknown members, including ones the service sets itself
    "unknown member": {"foo": 1},
    "id": {"id": "job-" + UUID},
    "organization_id": {"organization_id": "org-bravo"},
    "user_id": {"user_id": "someone"},
    "created_at": {"created_at": "2020-01-01T00:00:00Z"},
    "completed_at": {"completed_at": None},
    # wrong types (no coercion)
    "background yes": {"background": "yes"},
    "background 1": {"background": 1},
    "expires string": {"expires_in_seconds": "60"},
    "expires float": {"expires_in_seconds": 60.5},
    "expires bool": {"expires_in_seconds": True},
    "heartbeat string": {"heartbeat_timeout_seconds": "30"},
    "status number": {"status": 5},
    "job_type number": {"job_type": 1},
    "metadata list": {"metadata": []},
    "metadata string": {"metadata": "x"},
    "metadata number": {"metadata": 5},
    "callback number": {"callback_url": 5},
    # unknown or not allowed values
    "status bogus": {"status": "bogus"},
    "status upper case": {"status": "CREATED"},
    "status completed": {"status": "completed"},
    "status cancelled": {"status": "cancelled"},
    "job_type batch": {"job_type": "batch"},
    "job_type bogus": {"job_type": "bogus"},
    # ranges
    "expires 59": {"expires_in_seconds": 59},
    "expires 604801": {"expires_in_seconds": 604801},
    "expires 0": {"expires_in_seconds": 0},
    "expires negative": {"expires_in_seconds": -60},
    "heartbeat 9": {"heartbeat_timeout_seconds": 9},
    "heartbeat 86401": {"heartbeat_timeout_seconds": 86401},
    "heartbeat 0": {"heartbeat_timeout_seconds": 0},
    "heartbeat negative": {"heartbeat_timeout_seconds": -10},
    # callback URLs (the local stack allows http and private hosts: contract section 8)
    "callback not a url": {"callback_url": "not a url"},
    "callback user and password": {"callback_url": "https://user:pw@example.com/hook"},
    "callback user": {"callback_url": "https://user@example.com/hook"},
    "callback empty": {"callback_url": ""},
    "callback no scheme": {"callback_url": "example.com/hook"},
    "callback ftp": {"callback_url": "ftp://example.com/hook"},
    "callback no host": {"callback_url": "https:///hook"},
    # metadata
    "metadata over 64 KiB": {"metadata": {"x": "a" * (64 * 1024 + 100)}},
    "metadata far over 64 KiB": {"metadata": {f"k{i}": "v" * 100 for i in range(1000)}},
    "metadata nested 20 deep": {"metadata": json.loads('{"a":' * 20 + "1" + "}" * 20)},
    "metadata empty key": {"metadata": {"": 1}},
    "metadata 40-digit number": {"metadata": {"n": 10**40}},
}


@pytest.mark.parametrize("body", BAD_CREATE.values(), ids=BAD_CREATE.keys())
def test_invalid_create_is_422(api, body):
    marker = api.create()
    check_error(api.post("/v1/jobs", json=body), 422)
    assert_no_job_since(api, marker)


@pytest.mark.parametrize("data", ["[]", '"x"', "5", "true", "[1]", '[[{"status": "running"}]]'])
def test_create_body_that_is_not_an_object_is_422(api, data):
    marker = api.create()
    check_error(post_raw(api, "/v1/jobs", data), 422)
    assert_no_job_since(api, marker)


@pytest.mark.parametrize("route", ["create", "update", "message"])
def test_body_that_is_an_array_of_objects_is_422(api, route):
    marker = api.create()
    if route == "create":
        response = post_raw(api, "/v1/jobs", '[{"status": "running"}, {"status": "pending"}]')
    elif route == "update":
        response = api.patch(f"/v1/jobs/{marker['id']}", data='[{"status": "pending"}]',
                             headers={"Content-Type": "application/json"})
    else:
        response = post_raw(api, f"/v1/jobs/{marker['id']}/messages", '[{"role": "user", "content": "x"}]')
    check_error(response, 422)
    assert_no_job_since(api, marker)
    assert api.job(marker["id"]) == marker
    assert api.list(f"/v1/jobs/{marker['id']}/messages") == []


@pytest.mark.parametrize(
    "body",
    [{"expires_in_seconds": 60}, {"expires_in_seconds": 604800}, {"heartbeat_timeout_seconds": 10},
     {"heartbeat_timeout_seconds": 86400}, {"metadata": {"x": "a" * (63 * 1024)}},
     {"callback_url": "http://127.0.0.1:9/hook"}, {"callback_url": "http://10.1.2.3/hook"}],
    ids=["expires 60", "expires 604800", "heartbeat 10", "heartbeat 86400", "metadata 63 KiB",
         "local http callback", "local private callback"],
)
def test_values_at_the_limits_are_accepted(api, body):
    job = api.create(**body)
    for name, value in body.items():
        if name == "metadata":
            assert job["metadata"] == value
        elif name == "callback_url":
            assert job["callback_url"] == value
        elif name == "heartbeat_timeout_seconds":
            assert job[name] == value


def test_body_over_1_mib_is_413(api):
    marker = api.create()
    body = json.dumps({"metadata": {"x": "a" * (1024 * 1024)}})
    check_error(post_raw(api, "/v1/jobs", body), 413)
    assert_no_job_since(api, marker)


def test_body_over_1_mib_of_multibyte_characters_is_413(api):
    marker = api.create()
    body = json.dumps({"metadata": {"x": "é" * 700_000}}, ensure_ascii=False).encode()
    assert len(body) > 1024 * 1024
    check_error(post_raw(api, "/v1/jobs", body), 413)
    assert_no_job_since(api, marker)


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/jobs/{job}", "/v1/jobs/{job}/messages"])
def test_body_that_is_not_utf8_is_400(api, path):
    marker = api.create()
    url = path.format(job=marker["id"])
    method = "PATCH" if path == "/v1/jobs/{job}" else "POST"
    check_error(api.request(method, url, data=b"\xff\xfe{", headers={"Content-Type": "application/json"}), 400)
    assert_no_job_since(api, marker)
    assert api.job(marker["id"]) == marker


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/jobs/{job}", "/v1/jobs/{job}/messages"])
def test_deeply_nested_json_is_4xx(api, path):
    marker = api.create()
    url = path.format(job=marker["id"])
    nested = "[" * 1000 + "]" * 1000
    data = ('{"role": "user", "content": {"x": %s}}' if path.endswith("messages") else '{"metadata": {"x": %s}}') % nested
    method = "PATCH" if path == "/v1/jobs/{job}" else "POST"
    check_error(api.request(method, url, data=data, headers={"Content-Type": "application/json"}), (400, 422))
    assert_no_job_since(api, marker)
    assert api.job(marker["id"]) == marker
    assert api.list(f"/v1/jobs/{marker['id']}/messages") == []


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/jobs/{job}/messages"])
def test_lone_surrogate_in_a_string_is_4xx(api, path):
    marker = api.create()
    url = path.format(job=marker["id"])
    data = '{"role": "user", "content": "\\ud800"}' if path.endswith("messages") else '{"metadata": {"x": "\\ud800"}}'
    check_error(post_raw(api, url, data), (400, 422))
    assert_no_job_since(api, marker)
    assert api.list(f"/v1/jobs/{marker['id']}/messages") == []


# ---- update ----------------------------------------------------------------------------

BAD_UPDATE = {
    "unknown member": {"foo": 1},
    "id": {"id": "job-" + UUID},
    "job_type": {"job_type": "run"},
    "background": {"background": True},
    "organization_id": {"organization_id": "org-bravo"},
    "expires_in_seconds": {"expires_in_seconds": 60},
    "status bogus": {"status": "bogus"},
    "status upper case": {"status": "PENDING"},
    "status number": {"status": 5},
    "metadata list": {"metadata": [1]},
    "metadata string": {"metadata": "x"},
    "metadata over 64 KiB": {"metadata": {"x": "a" * (64 * 1024 + 100)}},
    "metadata empty key": {"metadata": {"": 1}},
    "ttft negative": {"ttft_ns": -1},
    "ttft string": {"ttft_ns": "5"},
    "ttft float": {"ttft_ns": 1.5},
    "total negative": {"total_duration_ns": -1},
    "stop_reason number": {"stop_reason": 5},
    "stop_reason 65 chars": {"stop_reason": "x" * 65},
    "callback not a url": {"callback_url": "not a url"},
    "callback user info": {"callback_url": "https://user:pw@example.com/hook"},
    "callback number": {"callback_url": 5},
}


@pytest.mark.parametrize("body", BAD_UPDATE.values(), ids=BAD_UPDATE.keys())
def test_invalid_update_is_422_and_changes_nothing(api, body):
    job = api.create(metadata={"keep": 1})
    # a valid metadata change rides along (unless metadata is the bad member): it must not apply
    with_change = body if "metadata" in body else {**body, "metadata": {"keep": 2}}
    check_error(api.patch(f"/v1/jobs/{job['id']}", json=with_change), 422)
    assert api.job(job["id"]) == job


@pytest.mark.parametrize("data", MALFORMED[:5] + ["[]", '"x"'])
def test_malformed_or_non_object_update_is_400_or_422(api, data):
    job = api.create()
    response = api.patch(f"/v1/jobs/{job['id']}", data=data, headers={"Content-Type": "application/json"})
    check_error(response, 422 if data in ("[]", '"x"') else 400)
    assert api.job(job["id"]) == job


def test_update_body_over_1_mib_is_413(api):
    job = api.create()
    body = json.dumps({"metadata": {"x": "a" * (1024 * 1024)}})
    check_error(api.patch(f"/v1/jobs/{job['id']}", data=body, headers={"Content-Type": "application/json"}), 413)
    assert api.job(job["id"]) == job


# ---- messages --------------------------------------------------------------------------

BAD_MESSAGE = {
    "role bogus": {"role": "bogus", "content": "x"},
    "role upper case": {"role": "USER", "content": "x"},
    "missing content": {"role": "user"},
    "missing role": {"content": "x"},
    "content number": {"role": "user", "content": 5},
    "content list": {"role": "user", "content": ["a"]},
    "content null": {"role": "user", "content": None},
    "unknown member": {"role": "user", "content": "x", "extra": 1},
    "id": {"role": "user", "content": "x", "id": "message-" + UUID},
}


@pytest.mark.parametrize("body", BAD_MESSAGE.values(), ids=BAD_MESSAGE.keys())
def test_invalid_message_is_422_and_adds_nothing(api, body):
    job = api.create()
    check_error(api.post(f"/v1/jobs/{job['id']}/messages", json=body), 422)
    assert api.list(f"/v1/jobs/{job['id']}/messages") == []


def test_malformed_and_oversized_messages(api):
    job = api.create()
    path = f"/v1/jobs/{job['id']}/messages"
    check_error(post_raw(api, path, '{"role": "user", "content": '), 400)
    check_error(post_raw(api, path, json.dumps({"role": "user", "content": "a" * (1024 * 1024)})), 413)
    assert api.list(path) == []
    assert api.job(job["id"]) == job


@pytest.mark.parametrize("number", ["NaN", "Infinity", "1e400"])
def test_message_content_with_a_non_finite_number_is_refused(api, number):
    job = api.create()
    path = f"/v1/jobs/{job['id']}/messages"
    check_error(post_raw(api, path, '{"role": "user", "content": {"x": %s}}' % number), (400, 422))
    assert api.list(path) == []


# ---- ids and queries -------------------------------------------------------------------

BAD_IDS = ["nope", "job-123", f"job-{UUID}x", f"message-{UUID}", f"job_{UUID}", UUID, f"job-{UUID[:-1]}g",
           "job-" + "a" * 500, "job-%20", f"job-{UUID}%00"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_job_ids_in_paths_are_404(api, bad):
    marker = api.create()
    for method, suffix, body in [
        ("GET", "", None), ("PATCH", "", {"status": "pending"}), ("PATCH", "/cancel", None), ("DELETE", "", None),
        ("POST", "/messages", {"role": "user", "content": "x"}), ("GET", "/messages", None),
    ]:
        check_error(api.request(method, f"/v1/jobs/{bad}{suffix}", json=body), 404)
    assert_no_job_since(api, marker)
    assert api.job(marker["id"]) == marker


def test_a_well_formed_id_of_no_job_is_404(api):
    job = api.create()
    ghost = shift_id(job["id"], 1)
    for method, suffix, body in [
        ("GET", "", None), ("PATCH", "", {"metadata": {"a": 1}}), ("PATCH", "/cancel", None), ("DELETE", "", None),
        ("POST", "/messages", {"role": "user", "content": "x"}), ("GET", "/messages", None),
    ]:
        check_error(api.request(method, f"/v1/jobs/{ghost}{suffix}", json=body), 404)
    assert api.list_ids(after=job["id"]) == []


BAD_LIST_QUERIES = {
    "after garbage": {"after": "garbage"},
    "before garbage": {"before": "garbage"},
    "after message id": {"after": "message-" + UUID},
    "before short id": {"before": "job-123"},
    "limit 0": {"limit": 0},
    "limit 1001": {"limit": 1001},
    "limit abc": {"limit": "abc"},
    "limit negative": {"limit": -1},
    "limit float": {"limit": 1.5},
    "status bogus": {"status": "bogus"},
    "status upper case": {"status": "RUNNING"},
    "order sideways": {"order": "sideways"},
    "active maybe": {"active": "maybe"},
    "job_type bogus": {"job_type": "bogus"},
}


@pytest.mark.parametrize("params", BAD_LIST_QUERIES.values(), ids=BAD_LIST_QUERIES.keys())
def test_bad_list_query_is_422(api, params):
    check_error(api.get("/v1/jobs", params=params), 422)


BAD_MESSAGE_QUERIES = {
    "after garbage": {"after": "garbage"},
    "before job id": {"before": "job-" + UUID},
    "limit 0": {"limit": 0},
    "limit 1001": {"limit": 1001},
    "limit abc": {"limit": "abc"},
    "order sideways": {"order": "sideways"},
    "role bogus": {"role": "bogus"},
}


@pytest.mark.parametrize("params", BAD_MESSAGE_QUERIES.values(), ids=BAD_MESSAGE_QUERIES.keys())
def test_bad_message_list_query_is_422(api, params):
    job = api.create()
    check_error(api.get(f"/v1/jobs/{job['id']}/messages", params=params), 422)


def test_unknown_routes_and_methods_answer_json(api):
    job = api.create()
    check_error(api.get("/v1/nope"), 404)
    check_error(api.get("/v2/jobs"), 404)
    check_error(api.request("PUT", f"/v1/jobs/{job['id']}", json={"status": "pending"}), (404, 405))
    check_error(api.post(f"/v1/jobs/{job['id']}", json={"status": "pending"}), (404, 405))
    assert api.job(job["id"]) == job


# ---- authentication --------------------------------------------------------------------

BAD_AUTH = {
    "missing": None,
    "wrong key": "Bearer wrong-key-0123456789",
    "basic": "Basic xyz",
    "empty bearer": "Bearer ",
    "no scheme": "jsk_test_alpha_0123456789abcdef",
    "key with a suffix": "Bearer jsk_test_alpha_0123456789abcdefX",
    "two keys": "Bearer jsk_test_alpha_0123456789abcdef jsk_test_alpha_0123456789abcdef",
}


@pytest.mark.parametrize("header", BAD_AUTH.values(), ids=BAD_AUTH.keys())
def test_bad_credentials_are_401_on_every_route_and_change_nothing(api, anonymous, header):
    job = api.create(metadata={"a": 1})
    headers = {"Authorization": header} if header is not None else {}
    path = f"/v1/jobs/{job['id']}"
    for method, url, body in [
        ("GET", "/v1/jobs", None),
        ("POST", "/v1/jobs", {"metadata": {"by": "intruder"}}),
        ("GET", path, None),
        ("PATCH", path, {"status": "pending", "metadata": {"a": 2}}),
        ("PATCH", path + "/cancel", None),
        ("DELETE", path, None),
        ("POST", path + "/messages", {"role": "user", "content": "intruder"}),
        ("GET", path + "/messages", None),
    ]:
        response = anonymous.request(method, url, json=body, headers=headers)
        check_error(response, 401)
    # bad input does not get past authentication either
    check_error(anonymous.request("POST", "/v1/jobs", data="{bad", headers=headers), 401)
    assert api.job(job["id"]) == job
    assert api.list_ids(after=job["id"]) == []
    assert api.list(path + "/messages") == []
