"""README "Bodies" and "Update fields set to null": a body is JSON whatever its Content-Type
(``curl -d`` sends a form type, which API Gateway passes base64-encoded), and ``status: null`` /
``metadata: null`` in an update mean "no change"."""
from __future__ import annotations

import json

import pytest

CONTENT_TYPES = {
    "none": None,
    "curl -d (form)": "application/x-www-form-urlencoded",
    "text/plain": "text/plain",
    "octet-stream": "application/octet-stream",
    "json with charset": "application/json; charset=utf-8",
    "upper-case json": "APPLICATION/JSON",
    "multipart name only": "multipart/form-data",
}


def send(api, method: str, path: str, body: dict, content_type: str | None):
    headers = {"Content-Type": content_type} if content_type else {}
    return api.request(method, path, data=json.dumps(body).encode(), headers=headers)


@pytest.mark.parametrize("content_type", CONTENT_TYPES.values(), ids=CONTENT_TYPES.keys())
def test_every_body_is_json_whatever_its_content_type(api, content_type):
    created = send(api, "POST", "/v1/jobs", {"job_type": "run", "metadata": {"n": "ü"}}, content_type)
    assert created.status_code == 201, created.text
    job = created.json()
    assert (job["job_type"], job["metadata"]) == ("run", {"n": "ü"})

    updated = send(api, "PATCH", f"/v1/jobs/{job['id']}", {"status": "pending", "metadata": {"m": 2}}, content_type)
    assert updated.status_code == 200, updated.text
    assert (updated.json()["status"], updated.json()["metadata"]) == ("pending", {"n": "ü", "m": 2})

    added = send(api, "POST", f"/v1/jobs/{job['id']}/messages", {"role": "user", "content": "hé"}, content_type)
    assert added.status_code == 201, added.text
    assert api.list(f"/v1/jobs/{job['id']}/messages")[0]["content"] == "hé"

    batch = send(api, "POST", "/v1/batches", {"provider": "simulated", "requests": [{"custom_id": "a", "params": {}}]},
                 content_type)
    assert batch.status_code == 201, batch.text
    assert batch.json()["job_type"] == "batch"


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", None, "text/plain"])
def test_a_body_that_is_not_json_is_400_whatever_its_content_type(api, content_type):
    marker = api.create()
    for data in (b"status=running&job_type=run", b"\xff\xfe{"):
        response = api.post("/v1/jobs", data=data, headers={"Content-Type": content_type} if content_type else {})
        assert response.status_code == 400, (data, response.status_code, response.text)
        assert response.json()["detail"]
    assert api.list_ids() == [marker["id"]]


@pytest.mark.parametrize("status", ["created", "pending", "running"])
def test_status_null_means_no_change(api, status):
    job = api.create(status=status, metadata={"a": 1})
    updated = api.patch_ok(job["id"], status=None, metadata={"b": 2}, stop_reason="kept")
    assert updated["status"] == status
    assert updated["metadata"] == {"a": 1, "b": 2}
    assert updated["stop_reason"] == "kept"
    assert updated["completed_at"] is None
    assert api.job(job["id"]) == updated


def test_metadata_null_means_no_change(api):
    job = api.create(status="running", metadata={"a": 1, "b": {"c": 2}})
    updated = api.patch_ok(job["id"], metadata=None, ttft_ns=5)
    assert updated["metadata"] == {"a": 1, "b": {"c": 2}}, "metadata: null is not 'remove every key'"
    assert updated["ttft_ns"] == 5
    done = api.patch_ok(job["id"], status="completed", metadata=None)
    assert done["status"] == "completed" and done["metadata"] == {"a": 1, "b": {"c": 2}}
    assert api.job(job["id"]) == done


def test_status_and_metadata_null_together_change_nothing_but_the_heartbeat(api):
    job = api.create(status="pending", metadata={"a": 1})
    same = api.patch_ok(job["id"], status=None, metadata=None)
    assert {k: v for k, v in same.items() if k != "last_updated_at"} == {k: v for k, v in job.items() if k != "last_updated_at"}
    assert same["last_updated_at"] > job["last_updated_at"]


@pytest.mark.parametrize("body", [{"status": None}, {"metadata": None}, {"status": None, "metadata": None}])
def test_null_status_or_metadata_on_a_terminal_job_is_still_a_change_request_409(api, body):
    """No change asked, but a PATCH of a terminal job that is not a retried status is 409."""
    job = api.drive("completed", metadata={"a": 1})
    response = api.patch(f"/v1/jobs/{job['id']}", json=body)
    assert response.status_code == 409, response.text
    assert response.json()["current_status"] == "completed"
    assert api.job(job["id"]) == job
