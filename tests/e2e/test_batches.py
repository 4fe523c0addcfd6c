"""Batches end to end on the local stack with the simulated provider: submit, the schedule polls it
to the end, the items are stored, the webhook arrives; and the timeout sweep on its schedule."""
from __future__ import annotations

import time
import uuid

import pytest
from standardwebhooks.webhooks import Webhook

from tests.receiver import Receiver


@pytest.fixture(scope="module")
def receiver():
    rx = Receiver()
    yield rx
    rx.close()


def wait(predicate, timeout: float, step: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def test_a_simulated_batch_runs_to_the_end_with_items_and_a_webhook(api, other, receiver):
    route = f"/batch-{uuid.uuid4().hex[:8]}"
    secret = api.get("/v1/webhook-secret").json()["secret"]
    created = api.post("/v1/batches", json={
        "provider": "simulated",
        "callback_url": receiver.url(route),
        "metadata": {"source_id": "nightly"},
        "requests": [
            {"custom_id": "q1", "params": {"prompt": "hello"}},
            {"custom_id": "q2", "params": {"simulate": "errored"}},
            {"custom_id": "q3", "params": {"simulate": "expired"}},
        ],
    })
    assert created.status_code == 201, created.text
    batch = created.json()
    assert batch["status"] == "running" and batch["job_type"] == "batch" and batch["provider"] == "simulated"
    assert batch["request_counts"] == {"processing": 3, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    assert other.get(f"/v1/batches/{batch['id']}").status_code == 404
    assert any(b["id"] == batch["id"] for b in api.get("/v1/batches?source_id=nightly").json())
    assert any(j["id"] == batch["id"] for j in api.get("/v1/jobs?job_type=batch").json())

    done = wait(lambda: (b := api.get(f"/v1/batches/{batch['id']}").json())["status"] != "running" and b, timeout=40)
    assert done["status"] == "completed" and done["completed_at"] and done["last_polled_at"]
    assert done["request_counts"] == {"processing": 0, "succeeded": 1, "errored": 1, "canceled": 0, "expired": 1}
    items = api.get(f"/v1/batches/{batch['id']}/items").json()
    assert [(i["custom_id"], i["status"]) for i in items] == [("q1", "completed"), ("q2", "failed"), ("q3", "expired")]
    assert items[0]["result"]["content"][0]["text"]
    page = api.get(f"/v1/batches/{batch['id']}/items?after=q1&limit=1").json()
    assert [i["custom_id"] for i in page] == ["q2"]

    assert receiver.wait_for(lambda: receiver.to(route), timeout=20)
    (got,) = receiver.to(route)
    event = Webhook(secret).verify(got.body, got.headers)
    assert event["type"] == "job.completed" and event["job_id"] == batch["id"] and event["job_type"] == "batch"


def test_a_cancelled_batch_ends_cancelled(api):
    batch = api.post("/v1/batches", json={"provider": "simulated", "requests": [{"custom_id": "a", "params": {}}]}).json()
    answer = api.patch(f"/v1/batches/{batch['id']}/cancel")
    assert answer.status_code == 202 and answer.json()["cancel_requested"] is True
    done = wait(lambda: (b := api.get(f"/v1/batches/{batch['id']}").json())["status"] != "running" and b, timeout=30)
    assert done["status"] == "cancelled"
    assert api.patch(f"/v1/batches/{batch['id']}/cancel").status_code == 409
    # a batch follows its provider: the job routes do not move it
    refused = api.patch(f"/v1/jobs/{batch['id']}", json={"metadata": {"a": 1}})
    assert refused.status_code == 409


@pytest.mark.parametrize("body,status", [
    ({"provider": "nobody", "requests": [{"custom_id": "a", "params": {}}]}, 422),
    ({"provider": "simulated"}, 422),
    ({"provider": "simulated", "requests": []}, 422),
    ({"provider": "simulated", "requests": [{"custom_id": "a", "params": {}}, {"custom_id": "a", "params": {}}]}, 422),
    ({"provider": "simulated", "requests": [{"custom_id": "bad id!", "params": {}}]}, 422),
    ({"provider": "simulated", "requests": [{"custom_id": "a", "params": {"simulate": "exploded"}}]}, 422),
])
def test_bad_batches_are_refused_and_store_nothing(api, body, status):
    before = len(api.get("/v1/batches?limit=1000").json())
    answer = api.post("/v1/batches", json=body)
    assert answer.status_code == status and answer.json()["detail"]
    assert len(api.get("/v1/batches?limit=1000").json()) == before


def test_a_batch_route_on_a_plain_job_is_404(api):
    job = api.create()
    assert api.get(f"/v1/batches/{job['id']}").status_code == 404
    assert api.get(f"/v1/batches/{job['id']}/items").status_code == 404
    assert api.patch(f"/v1/batches/{job['id']}/cancel").status_code == 404


def test_the_sweep_fails_a_running_job_whose_heartbeat_stopped(api):
    stale = api.create(status="running", heartbeat_timeout_seconds=10)
    alive = api.create(status="running", heartbeat_timeout_seconds=10)
    waiting = api.create(expires_in_seconds=60)
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline and api.job(stale["id"])["status"] == "running":
        api.patch(f"/v1/jobs/{alive['id']}", json={"metadata": {"beat": time.time()}})  # heartbeats
        time.sleep(1)
    failed = api.job(stale["id"])
    assert failed["status"] == "failed" and failed["stop_reason"] == "heartbeat_timeout"
    assert api.job(alive["id"])["status"] == "running"
    assert api.job(waiting["id"])["status"] == "created"
