"""Bad input (contract section 1, README "Bodies", "Ids"): the right 4xx with a JSON ``detail``,
never a 5xx, and no change.

"No change" is checked after every refusal: no job was created (each test has an organization
of its own: its list holds only the job the test made first), the job is as it was, no message
was added.
"""
from __future__ import annotations

import json

import pytest

from tests.contract import job_routes, shift_id

UUID = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"  # fixed: test ids must be the same in every pytest-xdist worker


def check_error(response, status: int) -> dict:
    assert response.status_code < 500, f"a 5xx for bad input: {response.status_code} {response.text[:300]}"
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers.get("Content-Type", "").startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and body.get("detail"), body
    assert isinstance(body["detail"], (str, list))
    return body


def assert_nothing_created(api, marker: dict) -> None:
    assert api.list_ids(limit=1000) == [marker["id"]], "a refused request stored a job"


def post_raw(api, path: str, data: bytes | str):
    return api.post(path, data=data, headers={"Content-Type": "application/json"})


# ---- create ----------------------------------------------------------------------------

MALFORMED = ['{bad', '{"metadata": {}', '{"a": 1}}', "{'status': 'created'}", "nul", '{"metadata": {"a": 1,}}',
             "[1, 2", '{"status": "created"', "\x00"]


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_json_is_400(api, data):
    marker = api.create()
    check_error(post_raw(api, "/v1/jobs", data), 400)
    assert_nothing_created(api, marker)


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
    # callback URLs (private and http hosts are allowed here, as on the local stack)
    "callback not a url": {"callback_url": "not a url"},
    "callback user and password": {"callback_url": "https://user:pw@example.com/hook"},
    "callback user": {"callback_url": "https://user@example.com/hook"},
    "callback empty": {"callback_url": ""},
    "callback no scheme": {"callback_url": "example.com/hook"},
    "callback ftp": {"callback_url": "ftp://example.com/hook"},
    "callback no host": {"callback_url": "https:///hook"},
    # metadata
    "metadata far over 64 KiB": {"metadata": {f"k{i}": "v" * 100 for i in range(1000)}},
    "metadata nested 20 deep": {"metadata": json.loads('{"a":' * 20 + "1" + "}" * 20)},
    "metadata empty key": {"metadata": {"": 1}},
    "metadata 40-digit number": {"metadata": {"n": 10**40}},
}


@pytest.mark.parametrize("body", BAD_CREATE.values(), ids=BAD_CREATE.keys())
def test_invalid_create_is_422(api, body):
    marker = api.create()
    check_error(api.post("/v1/jobs", json=body), 422)
    assert_nothing_created(api, marker)


@pytest.mark.parametrize(
    "url", ["http://example.com/hook", "https://localhost/hook", "https://127.0.0.1/hook", "https://10.1.2.3/hook",
            "https://169.254.169.254/latest/meta-data", "https://[::1]/hook", "https://intranet/hook"],
)
def test_internal_or_plain_http_callbacks_are_422_in_production(api, strict_callbacks, url):
    marker = api.create()
    check_error(api.post("/v1/jobs", json={"callback_url": url}), 422)
    check_error(api.patch(f"/v1/jobs/{marker['id']}", json={"callback_url": url}), 422)
    assert_nothing_created(api, marker)
    assert api.job(marker["id"]) == marker


def test_a_public_https_callback_is_accepted_in_production(api, strict_callbacks):
    assert api.create(callback_url="https://hooks.example.com/jobs?x=1")["callback_url"] == "https://hooks.example.com/jobs?x=1"


@pytest.mark.parametrize("data", ["[]", '"x"', "5", "true", "null", "[1]", '[[{"status": "running"}]]'])
def test_create_body_that_is_not_an_object_is_422(api, data):
    marker = api.create()
    check_error(post_raw(api, "/v1/jobs", data), 422)
    assert_nothing_created(api, marker)


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
    assert_nothing_created(api, marker)
    assert api.job(marker["id"]) == marker
    assert api.list(f"/v1/jobs/{marker['id']}/messages") == []


def test_body_over_1_mib_is_413(api):
    marker = api.create()
    body = json.dumps({"metadata": {"x": "a" * (1024 * 1024)}})
    check_error(post_raw(api, "/v1/jobs", body), 413)
    assert_nothing_created(api, marker)


def test_body_over_1_mib_of_multibyte_characters_is_413(api):
    marker = api.create()
    body = json.dumps({"metadata": {"x": "é" * 700_000}}, ensure_ascii=False).encode()
    assert len(body) > 1024 * 1024
    check_error(post_raw(api, "/v1/jobs", body), 413)
    assert_nothing_created(api, marker)


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/jobs/{job}", "/v1/jobs/{job}/messages"])
def test_body_that_is_not_utf8_is_400(api, path):
    marker = api.create()
    url = path.format(job=marker["id"])
    method = "PATCH" if path == "/v1/jobs/{job}" else "POST"
    check_error(api.request(method, url, data=b"\xff\xfe{", headers={"Content-Type": "application/json"}), 400)
    assert_nothing_created(api, marker)
    assert api.job(marker["id"]) == marker


NESTED = "[" * 100_000 + "]" * 100_000  # far deeper than any JSON parser in Python takes


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/jobs/{job}", "/v1/jobs/{job}/messages"])
def test_nesting_deeper_than_the_parser_takes_is_400(api, path):
    marker = api.create()
    url = path.format(job=marker["id"])
    data = ('{"role": "user", "content": {"x": %s}}' if path.endswith("messages") else '{"metadata": {"x": %s}}') % NESTED
    method = "PATCH" if path == "/v1/jobs/{job}" else "POST"
    check_error(api.request(method, url, data=data, headers={"Content-Type": "application/json"}), 400)
    assert_nothing_created(api, marker)
    assert api.job(marker["id"]) == marker
    assert api.list(f"/v1/jobs/{marker['id']}/messages") == []


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/jobs/{job}", "/v1/jobs/{job}/messages"])
def test_lone_surrogate_in_a_string_is_400(api, path):
    marker = api.create()
    url = path.format(job=marker["id"])
    data = '{"role": "user", "content": "\\ud800"}' if path.endswith("messages") else '{"metadata": {"x": "\\ud800"}}'
    method = "PATCH" if path == "/v1/jobs/{job}" else "POST"
    check_error(api.request(method, url, data=data, headers={"Content-Type": "application/json"}), 400)
    assert_nothing_created(api, marker)
    assert api.job(marker["id"]) == marker
    assert api.list(f"/v1/jobs/{marker['id']}/messages") == []


def test_a_surrogate_pair_escape_is_a_character_not_a_lone_surrogate(api):
    job = api.create()
    response = post_raw(api, f"/v1/jobs/{job['id']}/messages", '{"role": "user", "content": "\\ud83d\\ude00"}')
    assert response.status_code == 201, response.text
    assert response.json()["content"] == "😀"


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
    "metadata nested 20 deep": {"metadata": json.loads('{"a":' * 20 + "1" + "}" * 20)},
    "metadata 40-digit number": {"metadata": {"n": -(10**40)}},
    "ttft negative": {"ttft_ns": -1},
    "ttft string": {"ttft_ns": "5"},
    "ttft float": {"ttft_ns": 1.5},
    "ttft bool": {"ttft_ns": True},
    "total negative": {"total_duration_ns": -1},
    "total string": {"total_duration_ns": "1"},
    "stop_reason number": {"stop_reason": 5},
    "stop_reason 65 chars": {"stop_reason": "x" * 65},
    "callback not a url": {"callback_url": "not a url"},
    "callback user info": {"callback_url": "https://user:pw@example.com/hook"},
    "callback number": {"callback_url": 5},
}


@pytest.mark.parametrize("body", BAD_UPDATE.values(), ids=BAD_UPDATE.keys())
@pytest.mark.parametrize("with_status", [False, True], ids=["alone", "with a transition"])
def test_invalid_update_is_422_and_changes_nothing(api, body, with_status):
    job = api.create(status="running", metadata={"keep": 1})
    # a valid metadata change rides along (unless metadata is the bad member): it must not apply;
    # and so does a valid transition, in the second variant
    change = body if "metadata" in body else {**body, "metadata": {"keep": 2}}
    if with_status and "status" not in change:
        change = {**change, "status": "completed"}
    check_error(api.patch(f"/v1/jobs/{job['id']}", json=change), 422)
    assert api.job(job["id"]) == job


@pytest.mark.parametrize("data", MALFORMED[:5] + ["[]", '"x"', "null"])
def test_malformed_or_non_object_update(api, data):
    job = api.create()
    response = api.patch(f"/v1/jobs/{job['id']}", data=data, headers={"Content-Type": "application/json"})
    check_error(response, 422 if data in ("[]", '"x"', "null") else 400)
    assert api.job(job["id"]) == job


def test_update_body_over_1_mib_is_413(api):
    job = api.create()
    body = json.dumps({"metadata": {"x": "a" * (1024 * 1024)}})
    check_error(api.patch(f"/v1/jobs/{job['id']}", data=body, headers={"Content-Type": "application/json"}), 413)
    assert api.job(job["id"]) == job


def test_an_update_with_no_body_is_422_and_changes_nothing(api):
    job = api.create()
    check_error(api.patch(f"/v1/jobs/{job['id']}"), 422)
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
    "content bool": {"role": "user", "content": True},
    "unknown member": {"role": "user", "content": "x", "extra": 1},
    "id": {"role": "user", "content": "x", "id": "message-" + UUID},
}


@pytest.mark.parametrize("body", BAD_MESSAGE.values(), ids=BAD_MESSAGE.keys())
def test_invalid_message_is_422_and_adds_nothing(api, body):
    job = api.create()
    check_error(api.post(f"/v1/jobs/{job['id']}/messages", json=body), 422)
    assert api.list(f"/v1/jobs/{job['id']}/messages") == []


def test_malformed_and_oversized_message_bodies(api):
    job = api.create()
    path = f"/v1/jobs/{job['id']}/messages"
    check_error(post_raw(api, path, '{"role": "user", "content": '), 400)
    check_error(post_raw(api, path, json.dumps({"role": "user", "content": "a" * (1024 * 1024)})), 413)
    check_error(api.post(path), 422)  # no body at all: role and content are required
    assert api.list(path) == []
    assert api.job(job["id"]) == job


@pytest.mark.parametrize("number, status", [("NaN", 400), ("Infinity", 400), ("-Infinity", 400), ("1e400", 422), ("-1e400", 422)])
@pytest.mark.parametrize("route", ["create", "update", "message"])
def test_non_finite_numbers_are_400_and_out_of_range_ones_422(api, route, number, status):
    """README: ``NaN``/``Infinity`` (not JSON at all) are 400; a number out of range is 422."""
    job = api.create()
    if route == "message":
        response = post_raw(api, f"/v1/jobs/{job['id']}/messages", '{"role": "user", "content": {"x": %s}}' % number)
    elif route == "update":
        response = api.patch(f"/v1/jobs/{job['id']}", data='{"metadata": {"x": %s}}' % number,
                             headers={"Content-Type": "application/json"})
    else:
        response = post_raw(api, "/v1/jobs", '{"metadata": {"x": %s}}' % number)
    check_error(response, status)
    assert_nothing_created(api, job)
    assert api.job(job["id"]) == job
    assert api.list(f"/v1/jobs/{job['id']}/messages") == []


# ---- ids and queries -------------------------------------------------------------------

BAD_IDS = ["nope", "job-123", f"job-{UUID}x", f"message-{UUID}", f"job_{UUID}", UUID, f"job-{UUID[:-1]}g",
           "job-" + "a" * 500, "job-%20", f"job-{UUID}%00"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_job_ids_in_paths_are_404(api, bad):
    marker = api.create()
    for method, path, body in job_routes(bad):
        check_error(api.request(method, path, json=body), 404)
    for suffix in ("", "/items", "/cancel"):
        method = "PATCH" if suffix == "/cancel" else "GET"
        check_error(api.request(method, f"/v1/batches/{bad}{suffix}"), 404)
    assert_nothing_created(api, marker)
    assert api.job(marker["id"]) == marker


def test_ids_are_compared_in_lower_case(api):
    job = api.create()
    upper = "job-" + job["id"].removeprefix("job-").upper()
    assert api.job(upper) == job
    assert api.patch_ok(upper, metadata={"a": 1})["id"] == job["id"]
    assert api.list_ids(after=shift_id(job["id"], -1).upper().replace("JOB-", "job-")) == [job["id"]]


def test_a_well_formed_id_of_no_job_is_404(api):
    job = api.create()
    ghost = shift_id(job["id"], 1)
    for method, path, body in job_routes(ghost):
        check_error(api.request(method, path, json=body), 404)
    assert_nothing_created(api, job)
    assert api.job(job["id"]) == job


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
    "limit empty": {"limit": ""},
    "status bogus": {"status": "bogus"},
    "status upper case": {"status": "RUNNING"},
    "order sideways": {"order": "sideways"},
    "order upper case": {"order": "ASC"},
    "active maybe": {"active": "maybe"},
    "job_type bogus": {"job_type": "bogus"},
    "source_id over 1024 bytes": {"source_id": "s" * 1025},
}


LIST_CASES = [("/v1/jobs", name, params) for name, params in BAD_LIST_QUERIES.items()] + [
    ("/v1/batches", name, params) for name, params in BAD_LIST_QUERIES.items() if "job_type" not in params
]


@pytest.mark.parametrize("path, params", [(p, q) for p, _, q in LIST_CASES], ids=[f"{p} {n}" for p, n, _ in LIST_CASES])
def test_bad_list_query_is_422(api, path, params):
    check_error(api.get(path, params=params), 422)


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


def test_unknown_routes_and_methods_answer_json_404(api):
    job = api.create()
    for method, path in [("GET", "/v1/nope"), ("GET", "/v2/jobs"), ("PUT", f"/v1/jobs/{job['id']}"),
                         ("POST", f"/v1/jobs/{job['id']}"), ("GET", "/"), ("DELETE", "/v1/jobs")]:
        response = api.request(method, path, json={"status": "pending"})
        assert check_error(response, 404) == {"detail": "no such route"}, (method, path)
    assert api.job(job["id"]) == job


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
@pytest.mark.parametrize("method,path,field", [
    ("GET", "/v1/jobs", "updated_before"), ("GET", "/v1/batches", "updated_before"),
    ("POST", "/v1/jobs/cancel", "created_before"), ("POST", "/v1/callbacks/recover", "since"),
])
def test_a_time_outside_what_utc_can_hold_is_422(api, when, method, path, field):
    """Valid RFC 3339, but before year 1 or after year 9999 once in UTC."""
    if method == "GET":
        response = api.get(path, params={field: when})
    else:
        response = api.post(path, json={field: when})
    check_error(response, 422)
