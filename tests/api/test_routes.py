"""Every route of contract sections 3 (jobs, messages) and 7 through the API function: answers,
defaults, formats."""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from tests.contract import JOB_FIELDS, MESSAGE_FIELDS, job_routes, shift_id

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
ID = re.compile(r"^(job|message)-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")


def ts(value: str) -> datetime:
    assert isinstance(value, str) and RFC3339_UTC.match(value), f"not an RFC 3339 UTC timestamp: {value!r}"
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def check_id(value: str, prefix: str) -> uuid.UUID:
    match = ID.match(value)
    assert match and match.group(1) == prefix, f"not a {prefix}-<uuid>: {value!r}"
    parsed = uuid.UUID(match.group(2))
    assert parsed.version == 7, f"{value} is UUID version {parsed.version}, not 7"
    assert parsed.variant == uuid.RFC_4122
    return parsed


def uuid7_time(value: uuid.UUID) -> datetime:
    return datetime.fromtimestamp((value.int >> 80) / 1000, timezone.utc)


# ---- create ----------------------------------------------------------------------------


def test_create_with_empty_body_gives_every_default(api):
    before = datetime.now(timezone.utc)
    response = api.post("/v1/jobs", json={})
    assert response.status_code == 201, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert "Idempotent-Replayed" not in response.headers
    job = response.json()
    assert set(job) == JOB_FIELDS
    check_id(job["id"], "job")
    assert job["status"] == "created"
    assert job["job_type"] == "job"
    assert job["completed_at"] is None
    assert job["user_id"] == api.user_id
    assert job["organization_id"] == api.organization_id
    assert job["metadata"] == {}
    assert job["background"] is False
    for name in ("stop_reason", "callback_url", "callback_sent_at", "callback_status_code", "callback_error",
                 "ttft_ns", "total_duration_ns", "heartbeat_timeout_seconds"):
        assert job[name] is None, name
    created = ts(job["created_at"])
    assert ts(job["last_updated_at"]) == created
    assert before - timedelta(seconds=5) <= created <= datetime.now(timezone.utc) + timedelta(seconds=5)
    assert ts(job["expires_at"]) - created == timedelta(seconds=86400)


def test_create_with_no_body_at_all_gives_every_default(api):
    response = api.post("/v1/jobs")
    assert response.status_code == 201, response.text
    job = response.json()
    assert (job["status"], job["job_type"], job["metadata"], job["background"]) == ("created", "job", {}, False)
    assert ts(job["expires_at"]) - ts(job["created_at"]) == timedelta(seconds=86400)
    assert api.job(job["id"]) == job


def test_create_with_every_optional_member(api, tag):
    body = {
        "job_type": "run",
        "status": "pending",
        "metadata": {"source_id": tag, "nested": {"list": [1, 2.5, "three", None, True]}, "empty": {}},
        "callback_url": "https://example.com/hooks/jobs?x=1",
        "background": True,
        "expires_in_seconds": 3600,
        "heartbeat_timeout_seconds": 30,
    }
    job = api.create(**body)
    assert job["job_type"] == "run"
    assert job["status"] == "pending"
    assert job["metadata"] == body["metadata"]
    assert job["callback_url"] == body["callback_url"]
    assert job["background"] is True
    assert job["heartbeat_timeout_seconds"] == 30
    assert ts(job["expires_at"]) - ts(job["created_at"]) == timedelta(seconds=3600)
    assert job["completed_at"] is None
    assert api.job(job["id"]) == job


@pytest.mark.parametrize(
    "body",
    [{"expires_in_seconds": 60}, {"expires_in_seconds": 604800}, {"heartbeat_timeout_seconds": 10},
     {"heartbeat_timeout_seconds": 86400}, {"callback_url": "http://127.0.0.1:9/hook"},
     {"callback_url": "http://10.1.2.3/hook"}, {"callback_url": "https://example.com/" + "p" * 2000}],
    ids=["expires 60", "expires 604800", "heartbeat 10", "heartbeat 86400", "local http callback",
         "local private callback", "callback of 2020 characters"],
)
def test_values_at_the_limits_are_accepted(api, body):
    job = api.create(**body)
    (name, value), = body.items()
    if name == "expires_in_seconds":
        assert ts(job["expires_at"]) - ts(job["created_at"]) == timedelta(seconds=value)
    else:
        assert job[name] == value
    assert api.job(job["id"]) == job


@pytest.mark.parametrize("status", ["created", "pending", "running"])
def test_create_in_each_initial_status(api, status):
    job = api.create(status=status)
    assert job["status"] == status
    assert job["completed_at"] is None
    assert api.job(job["id"])["status"] == status


def test_ids_are_uuid7_and_sort_in_creation_order(api):
    jobs = [api.create() for _ in range(6)]
    ids = [job["id"] for job in jobs]
    assert len(set(ids)) == len(ids)
    assert sorted(ids) == ids, "ids of successive creates must sort as strings in creation order"
    for job in jobs:
        embedded = uuid7_time(check_id(job["id"], "job"))
        assert abs(embedded - ts(job["created_at"])) < timedelta(seconds=2), (job["id"], job["created_at"])


# ---- read, list ------------------------------------------------------------------------


def test_read_returns_the_job_as_created(api):
    job = api.create(metadata={"a": 1}, job_type="run")
    response = api.get(f"/v1/jobs/{job['id']}")
    assert response.status_code == 200
    assert response.json() == job


def test_list_returns_full_jobs_newest_first_by_default(api, tag):
    jobs = [api.create(metadata={"source_id": tag, "i": i}) for i in range(3)]
    assert api.list(source_id=tag) == list(reversed(jobs)), "default order is desc (newest first), full job objects"
    assert api.list(source_id=tag, order="asc") == jobs
    assert api.list(source_id=tag, order="desc") == list(reversed(jobs))
    assert api.list() == list(reversed(jobs)), "the unfiltered list too"
    assert api.list_ids(after=jobs[0]["id"]) == [jobs[2]["id"], jobs[1]["id"]]


def test_a_new_organization_lists_nothing(api):
    assert api.list() == []
    assert api.list("/v1/batches") == []


def test_list_shows_the_current_state(api, tag):
    job = api.create(metadata={"source_id": tag})
    updated = api.patch_ok(job["id"], status="pending", metadata={"step": 2})
    assert api.list(source_id=tag) == [updated]
    assert api.list() == [updated]


# ---- update ----------------------------------------------------------------------------


def test_update_every_member(api):
    job = api.create(metadata={"keep": 1, "drop": 2, "change": 3}, status="running")
    body = {
        "metadata": {"drop": None, "change": "three", "new": {"x": [1]}},
        "stop_reason": "end_turn",
        "ttft_ns": 120_000_000,
        "total_duration_ns": 3_500_000_000,
        "callback_url": "https://example.com/new-hook",
    }
    response = api.patch(f"/v1/jobs/{job['id']}", json=body)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["metadata"] == {"keep": 1, "change": "three", "new": {"x": [1]}}
    assert updated["stop_reason"] == "end_turn"
    assert updated["ttft_ns"] == 120_000_000
    assert updated["total_duration_ns"] == 3_500_000_000
    assert updated["callback_url"] == "https://example.com/new-hook"
    assert updated["status"] == "running"
    assert updated["created_at"] == job["created_at"]
    assert ts(updated["last_updated_at"]) > ts(job["last_updated_at"])
    for name in ("id", "job_type", "user_id", "organization_id", "background", "expires_at", "completed_at"):
        assert updated[name] == job[name], name
    assert api.job(job["id"]) == updated


def test_update_with_a_status_moves_the_job(api):
    job = api.create()
    assert api.patch_ok(job["id"], status="pending")["status"] == "pending"
    assert api.patch_ok(job["id"], status="running")["status"] == "running"
    done = api.patch_ok(job["id"], status="completed", ttft_ns=5)
    assert done["status"] == "completed" and done["ttft_ns"] == 5
    assert ts(done["completed_at"]) >= ts(job["created_at"])
    assert api.job(job["id"]) == done


def test_update_fields_set_to_null_are_cleared(api):
    job = api.create(status="running", callback_url="https://example.com/h")
    set_ = api.patch_ok(job["id"], stop_reason="x", ttft_ns=1, total_duration_ns=2)
    assert (set_["stop_reason"], set_["ttft_ns"], set_["total_duration_ns"]) == ("x", 1, 2)
    cleared = api.patch_ok(job["id"], stop_reason=None, ttft_ns=None, total_duration_ns=None, callback_url=None)
    assert (cleared["stop_reason"], cleared["ttft_ns"], cleared["total_duration_ns"], cleared["callback_url"]) == (None,) * 4
    assert api.job(job["id"]) == cleared


def test_an_empty_update_is_a_heartbeat_only(api):
    job = api.create(status="running", metadata={"a": 1})
    same = api.patch_ok(job["id"])
    assert {k: v for k, v in same.items() if k != "last_updated_at"} == {k: v for k, v in job.items() if k != "last_updated_at"}
    assert ts(same["last_updated_at"]) > ts(job["last_updated_at"])


# ---- delete ----------------------------------------------------------------------------


def test_delete_answers_the_deleted_job_then_404_everywhere(api, tag):
    job = api.create(metadata={"source_id": tag})
    assert api.post(f"/v1/jobs/{job['id']}/messages", json={"role": "user", "content": "hi"}).status_code == 201
    current = api.patch_ok(job["id"], status="pending")

    response = api.delete(f"/v1/jobs/{job['id']}")
    assert response.status_code == 200, response.text
    assert response.json() == current

    for method, path, body in job_routes(job["id"]):
        answer = api.request(method, path, json=body)
        assert answer.status_code == 404, (method, path, answer.status_code, answer.text)
        assert answer.json().get("detail"), (method, path, answer.text)
    assert api.list(source_id=tag) == []
    assert api.list() == []
    for filters in ({"status": "pending"}, {"active": "true"}, {"job_type": "job"}):
        assert api.list(**filters) == [], filters


# ---- messages --------------------------------------------------------------------------


def test_append_messages_string_and_object_content(api):
    job = api.create()
    before = datetime.now(timezone.utc)
    added = []
    for role, content in [
        ("user", "summarise this"),
        ("assistant", {"type": "text", "text": "a summary", "usage": {"tokens": 12}, "list": [1, None, True]}),
        ("system", ""),
        ("tool", {}),
        ("user", "ünïcödé ✓ 😀"),
    ]:
        response = api.post(f"/v1/jobs/{job['id']}/messages", json={"role": role, "content": content})
        assert response.status_code == 201, response.text
        message = response.json()
        assert set(message) == MESSAGE_FIELDS
        check_id(message["id"], "message")
        assert message["job_id"] == job["id"]
        assert message["role"] == role
        assert message["content"] == content
        assert ts(message["created_at"]) >= before - timedelta(seconds=5)
        added.append(message)
    assert api.list(f"/v1/jobs/{job['id']}/messages") == added


def test_messages_list_order_role_and_windows(api):
    job = api.create()
    other_job = api.create()
    roles = ["user", "assistant", "tool", "assistant", "user", "assistant"]
    messages = []
    for i, role in enumerate(roles):
        response = api.post(f"/v1/jobs/{job['id']}/messages", json={"role": role, "content": f"m{i}"})
        assert response.status_code == 201
        messages.append(response.json())
    api.post(f"/v1/jobs/{other_job['id']}/messages", json={"role": "user", "content": "elsewhere"})
    ids = [m["id"] for m in messages]
    assert sorted(ids) == ids, "message ids sort in creation order"
    path = f"/v1/jobs/{job['id']}/messages"

    assert api.list(path) == messages, "default order is asc (oldest first), only this job's messages"
    assert api.list(path, order="asc") == messages
    assert api.list(path, order="desc") == list(reversed(messages))
    assert api.list_ids(path, role="assistant") == [ids[1], ids[3], ids[5]]
    assert api.list_ids(path, role="assistant", order="desc") == [ids[5], ids[3], ids[1]]
    assert api.list_ids(path, role="system") == []
    assert api.list_ids(path, limit=2) == ids[:2]
    assert api.list_ids(path, limit=2, order="desc") == [ids[5], ids[4]]
    assert api.list_ids(path, after=ids[1]) == ids[2:]
    assert api.list_ids(path, before=ids[3]) == ids[:3]
    assert api.list_ids(path, before=ids[3], order="desc") == [ids[2], ids[1], ids[0]]
    assert api.list_ids(path, after=ids[0], before=ids[4]) == ids[1:4]
    assert api.list_ids(path, after=ids[0], before=ids[4], order="desc") == [ids[3], ids[2], ids[1]]
    assert api.list_ids(path, after=ids[0], before=ids[1]) == []
    assert api.list_ids(path, after=ids[1], limit=2, role="assistant") == [ids[3], ids[5]]
    assert api.list_ids(path, after=ids[5]) == []
    assert api.list_ids(path, after=shift_id(ids[2], -1)) == ids[2:], "a cursor need not be a message's id"
    assert api.list(f"/v1/jobs/{other_job['id']}/messages")[0]["content"] == "elsewhere"


def test_messages_of_a_new_job_are_an_empty_list(api):
    job = api.create()
    assert api.list(f"/v1/jobs/{job['id']}/messages") == []


@pytest.mark.parametrize("status", ["created", "running", "completed", "cancelled", "expired", "failed"])
def test_messages_can_be_added_to_a_job_in_any_status(api, status):
    job = api.drive(status)
    response = api.post(f"/v1/jobs/{job['id']}/messages", json={"role": "assistant", "content": "late"})
    assert response.status_code == 201, response.text
    assert api.job(job["id"]) == job, "a message does not change the job"
    assert [m["content"] for m in api.list(f"/v1/jobs/{job['id']}/messages")] == ["late"]


# ---- section 7 -------------------------------------------------------------------------


def test_health(anonymous):
    response = anonymous.get("/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_openapi_document_lists_every_route_of_the_template(anonymous):
    from tests.apigw import routes

    response = anonymous.get("/v1/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    document = response.json()
    assert str(document["openapi"]).startswith("3.")
    paths = document["paths"]
    documented = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    hidden = {"/v1/openapi.json", "/v1/docs", "/v1/docs/init.js", "/v1/docs/swagger-ui-bundle.js", "/v1/docs/swagger-ui.css"}
    for method, _, key, _ in routes():
        if key == "$default":
            continue
        path = key.split(" ", 1)[1]
        if path in hidden or not path.startswith("/v1/"):  # the docs and other pages are not operations
            continue
        assert (method, path) in documented, f"{key} missing from the OpenAPI document"
    for path, ops in paths.items():
        for method, op in ops.items():
            if method == "parameters":
                continue
            assert op.get("responses"), (method, path)


def test_docs_page_is_html_that_loads_the_openapi_document(anonymous):
    response = anonymous.get("/v1/docs")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<html" in response.text.lower()
    assert "openapi.json" in response.text, "the docs page loads the OpenAPI document"


def test_the_documented_401_covers_api_gateways_own_answer(anonymous):
    """Without an Authorization header API Gateway answers {"message": ...} itself (its cached
    authorizer's identity source is missing): the document's 401 must say so, or a client
    generated from it fails to read the answer."""
    answer = anonymous.get("/v1/jobs")
    assert answer.status_code == 401
    document = anonymous.get("/v1/openapi.json").json()
    schema = document["paths"]["/v1/jobs"]["get"]["responses"]["401"]["content"]["application/json"]["schema"]
    refs = {alt["$ref"].rsplit("/", 1)[1] for alt in schema.get("anyOf", [schema]) if "$ref" in alt}
    required = {name: set(document["components"]["schemas"][name].get("required", [])) for name in refs}
    assert any(need and need <= set(answer.json()) for need in required.values()), (answer.json(), required)
    assert any(need == {"detail"} for need in required.values()), required
