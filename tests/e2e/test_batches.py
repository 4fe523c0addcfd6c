"""Batches end to end on the local stack with the simulated provider: submit, the schedule polls it
to the end, the items are stored, the webhook arrives; a cancel through the schedule; and the
timeout sweep on its schedule. (What a submission refuses, limits and truncation: tests/api.)

Waits are on progress (tests.waiting): a batch's ``last_polled_at`` moves on every poll, so a
wait fails only when the schedule stopped polling, not after a fixed time.
"""
from __future__ import annotations

import uuid

import pytest
from standardwebhooks.webhooks import Webhook

from tests.receiver import Receiver
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def receiver():
    rx = Receiver()
    yield rx
    rx.close()


def until_ended(api, batch_id: str) -> dict:
    """The batch once it has ended (progress: each poll moves ``last_polled_at``)."""
    def state():
        batch = api.get(f"/v1/batches/{batch_id}").json()
        return {"status": batch["status"], "last_polled_at": batch["last_polled_at"], "batch": batch}

    return wait_until(state, done=lambda s: s["status"] != "running", what=f"batch {batch_id} to end")["batch"]


def test_a_simulated_batch_runs_to_the_end_with_items_and_a_webhook(api, other, receiver, tag):
    route = f"/batch-{uuid.uuid4().hex[:8]}"
    secret = api.get("/v1/webhook-secret").json()["secret"]
    created = api.post("/v1/batches", json={
        "provider": "simulated",
        "callback_url": receiver.url(route),
        "metadata": {"source_id": tag},
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
    assert api.listed([batch["id"]], "/v1/batches", source_id=tag) == [batch["id"]]
    assert api.listed([batch["id"]], job_type="batch", source_id=tag) == [batch["id"]]

    done = until_ended(api, batch["id"])
    assert done["status"] == "completed" and done["completed_at"] and done["last_polled_at"]
    assert done["request_counts"] == {"processing": 0, "succeeded": 1, "errored": 1, "canceled": 0, "expired": 1}
    items = wait_until(lambda: api.list(f"/v1/batches/{batch['id']}/items"), done=lambda got: len(got) == 3,
                       what="the batch's three items")
    assert [(i["custom_id"], i["status"]) for i in items] == [("q1", "completed"), ("q2", "failed"), ("q3", "expired")]
    assert items[0]["result"]["content"][0]["text"]
    page = api.get(f"/v1/batches/{batch['id']}/items?after=q1&limit=1").json()
    assert [i["custom_id"] for i in page] == ["q2"]
    # the terminal status follows the provider: status filters see it (lists may lag)
    assert api.listed([batch["id"]], "/v1/batches", status="completed", source_id=tag) == [batch["id"]]

    (got,) = wait_until(lambda: receiver.to(route), what=f"the batch's webhook at {route}")
    event = Webhook(secret).verify(got.body, got.headers)
    assert event["type"] == "job.completed" and event["job_id"] == batch["id"] and event["job_type"] == "batch"


def test_a_running_batch_refuses_the_job_routes_and_ends_cancelled_through_its_own(api):
    batch = api.post("/v1/batches", json={"provider": "simulated", "requests": [{"custom_id": "a", "params": {}}]}).json()
    # while it runs (the simulated provider ends a batch on its third poll; nothing has ended it
    # yet, and the answers say so): its status follows the provider, the job routes do not move it
    for method, path, body in [
        ("PATCH", f"/v1/jobs/{batch['id']}", {"metadata": {"a": 1}}),
        ("PATCH", f"/v1/jobs/{batch['id']}", {"status": "cancelled"}),
        ("PATCH", f"/v1/jobs/{batch['id']}/cancel", None),
    ]:
        refused = api.request(method, path, json=body)
        assert refused.status_code == 409, (method, path, refused.text)
        assert refused.json()["current_status"] == "running", "refused while running, not because it ended"
    answer = api.patch(f"/v1/batches/{batch['id']}/cancel")
    assert answer.status_code == 202 and answer.json()["cancel_requested"] is True
    assert answer.json()["status"] == "running" and answer.json()["metadata"] == {}
    done = until_ended(api, batch["id"])
    assert done["status"] == "cancelled" and done["stop_reason"] == "cancelled"
    assert api.patch(f"/v1/batches/{batch['id']}/cancel").status_code == 409


def test_the_sweep_fails_a_running_job_whose_heartbeat_stopped(api):
    stale = api.create(status="running", heartbeat_timeout_seconds=10)
    alive = api.create(status="running", heartbeat_timeout_seconds=10)
    waiting = api.create(expires_in_seconds=60)
    beats = []

    def state() -> str:
        # a heartbeat on every check (about one a second): "alive" never misses its deadline
        beats.append(api.patch(f"/v1/jobs/{alive['id']}", json={"metadata": {"beat": len(beats)}}).status_code)
        return api.job(stale["id"])["status"]

    # progress is the schedule's: the stale job's deadline is 10 s away, then a run fails it
    wait_until(state, done=lambda status: status != "running", what="the sweep to fail the stale job",
               stall=60, max_poll=1.0)
    failed = api.job(stale["id"])
    assert failed["status"] == "failed" and failed["stop_reason"] == "heartbeat_timeout"
    assert set(beats) == {200}
    assert api.job(alive["id"])["status"] == "running"
    assert api.job(waiting["id"])["status"] == "created"
