"""Webhooks end to end on the local stack: PATCH -> stream -> callbacks function -> receiver,
retries through SQS with the real backoff, the dead-letter queue, and the /callbacks routes.

Signatures are checked with the standardwebhooks package, not with the service's code.
"""
from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import defaultdict

import boto3
import pytest
from standardwebhooks.webhooks import Webhook

from tests.receiver import Receiver

TERMINAL_VIA = {
    "completed": ("running", lambda api, j: api.patch(f"/v1/jobs/{j}", json={"status": "completed"})),
    "failed": ("running", lambda api, j: api.patch(f"/v1/jobs/{j}", json={"status": "failed"})),
    "cancelled": ("pending", lambda api, j: api.patch(f"/v1/jobs/{j}/cancel")),
    "expired": ("created", lambda api, j: api.patch(f"/v1/jobs/{j}", json={"status": "expired"})),
}


@pytest.fixture(scope="module")
def receiver():
    rx = Receiver()
    yield rx
    rx.close()


@pytest.fixture(scope="module")
def dead_letters(stack):
    """Read the dead-letter queue of the local stack's emulator; returns messages by job id."""
    sqs = boto3.client(
        "sqs", endpoint_url=stack["emulator"], region_name="us-east-1",
        aws_access_key_id="local", aws_secret_access_key="local",
    )
    url = sqs.get_queue_url(QueueName="WebhookDeadLetterQueue")["QueueUrl"]
    seen: dict[str, list[dict]] = defaultdict(list)

    def read() -> dict[str, list[dict]]:
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return seen
            for m in messages:
                body = json.loads(m["Body"])
                seen[body["job_id"]].append(body)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    return read


def path() -> str:
    return f"/hook-{uuid.uuid4().hex[:12]}"


def finish(api, receiver, route: str, status: str = "completed", **extra) -> dict:
    initial, move = TERMINAL_VIA[status]
    job = api.create(status=initial, callback_url=receiver.url(route), **extra)
    response = move(api, job["id"])
    assert response.status_code == 200, response.text
    return response.json()


def test_every_terminal_status_is_delivered_and_verifies(api, receiver):
    secret = api.get("/v1/webhook-secret").json()["secret"]
    routes = {status: path() for status in TERMINAL_VIA}
    finished = {status: finish(api, receiver, routes[status], status) for status in TERMINAL_VIA}
    assert receiver.wait_for(lambda: all(receiver.to(r) for r in routes.values()), timeout=20)
    for status, route in routes.items():
        (got,) = receiver.to(route)
        event = Webhook(secret).verify(got.body, got.headers)
        job = finished[status]
        assert event == {
            "type": f"job.{status}", "timestamp": job["completed_at"], "job_id": job["id"], "status": status,
            "completed_at": job["completed_at"], "metadata": {}, "stop_reason": job["stop_reason"], "job_type": "job",
        }
        assert receiver.wait_for(lambda: api.job(job["id"])["callback_status_code"] == 200, timeout=10)
        after = api.job(job["id"])
        assert after["callback_error"] is None and after["callback_sent_at"] >= job["completed_at"]


def test_a_receiver_failing_twice_gets_one_success_on_the_third_attempt(api, receiver):
    route = path()
    receiver.behaviour = lambda p, n: 500 if p == route and n <= 2 else 200
    job = finish(api, receiver, route)
    assert receiver.wait_for(lambda: len(receiver.to(route)) >= 3, timeout=20)
    time.sleep(2.5)  # nothing more comes
    attempts = receiver.to(route)
    assert [a.answer for a in attempts] == [500, 500, 200]
    assert len({a.headers["webhook-id"] for a in attempts}) == 1
    gaps = [b.at - a.at for a, b in zip(attempts, attempts[1:])]
    # 1 s then 2 s, +-25 % jitter: never sooner (a loaded machine may make them later)
    assert gaps[0] >= 0.75 and gaps[1] >= 1.5, gaps
    rows = api.get(f"/v1/jobs/{job['id']}/callbacks").json()
    assert [(r["attempt"], r["succeeded"], r["status_code"]) for r in rows] == [(1, False, 500), (2, False, 500), (3, True, 200)]
    assert rows[0]["error"] == "HTTP 500" and rows[2]["error"] is None
    assert {r["webhook_id"] for r in rows} == {attempts[0].headers["webhook-id"]}
    after = api.job(job["id"])
    assert after["callback_status_code"] == 200 and after["callback_error"] is None


def test_410_stops_retrying_at_once(api, receiver, dead_letters):
    route = path()
    receiver.behaviour = lambda p, n: 410 if p == route else 200
    job = finish(api, receiver, route, "failed")
    assert receiver.wait_for(lambda: receiver.to(route), timeout=10)
    time.sleep(3)
    assert len(receiver.to(route)) == 1
    assert [r["status_code"] for r in api.get(f"/v1/jobs/{job['id']}/callbacks").json()] == [410]
    assert job["id"] not in dead_letters()


def test_redelivery(api, other, receiver):
    route = path()
    job = finish(api, receiver, route)
    assert receiver.wait_for(lambda: receiver.to(route), timeout=10)
    assert other.post(f"/v1/jobs/{job['id']}/callbacks/redeliver").status_code == 404
    assert other.get(f"/v1/jobs/{job['id']}/callbacks").status_code == 404
    answer = api.post(f"/v1/jobs/{job['id']}/callbacks/redeliver")
    assert answer.status_code == 202
    assert receiver.wait_for(lambda: len(receiver.to(route)) == 2, timeout=10)
    first, second = receiver.to(route)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == answer.json()["webhook_id"]
    assert first.body == second.body
    running = api.create(status="running", callback_url=receiver.url(route))
    refused = api.post(f"/v1/jobs/{running['id']}/callbacks/redeliver")
    assert refused.status_code == 409 and refused.json()["current_status"] == "running"
    no_url = api.create(status="running")
    api.patch(f"/v1/jobs/{no_url['id']}", json={"status": "completed"})
    assert api.post(f"/v1/jobs/{no_url['id']}/callbacks/redeliver").status_code == 409


def test_a_rotation_signs_with_both_secrets(api, receiver):
    old = api.get("/v1/webhook-secret").json()["secret"]
    rotated = api.post("/v1/webhook-secret/rotate")
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new != old and new.startswith("whsec_") and api.get("/v1/webhook-secret").json() == {"secret": new}
    route = path()
    finish(api, receiver, route)
    assert receiver.wait_for(lambda: receiver.to(route), timeout=10)
    (got,) = receiver.to(route)
    Webhook(new).verify(got.body, got.headers)
    Webhook(old).verify(got.body, got.headers)


def test_secrets_belong_to_one_organization(api, other):
    assert api.get("/v1/webhook-secret").json() != other.get("/v1/webhook-secret").json()


def test_an_always_failing_receiver_ends_in_the_dead_letter_queue_after_six_attempts(api, receiver, dead_letters):
    route = path()
    receiver.behaviour = lambda p, n: 503 if p == route else 200
    job = finish(api, receiver, route)
    # 1 + 2 + 4 + 8 + 16 s of backoff (+-25 %) before the sixth attempt fails
    assert receiver.wait_for(lambda: job["id"] in dead_letters(), timeout=70)
    (dead,) = dead_letters()[job["id"]]
    assert dead["attempts"] == 6 and dead["last_error"] == "HTTP 503" and dead["webhook_id"].startswith("msg_")
    assert len(receiver.to(route)) == 6
    rows = api.get(f"/v1/jobs/{job['id']}/callbacks").json()
    assert [r["attempt"] for r in rows] == [1, 2, 3, 4, 5, 6] and not any(r["succeeded"] for r in rows)
    assert api.job(job["id"])["callback_error"] == "HTTP 503"


def test_soak_200_jobs_against_a_receiver_failing_half_the_time(api, receiver, dead_letters):
    """Every webhook ends delivered exactly once or dead-lettered; none is lost."""
    rng = random.Random(20261128)
    lock = threading.Lock()
    prefix = f"/soak-{uuid.uuid4().hex[:8]}-"

    def flaky(p: str, n: int):
        if not p.startswith(prefix):
            return 200
        with lock:
            return 500 if rng.random() < 0.5 else 200

    receiver.behaviour = flaky
    jobs: dict[str, str] = {}

    def complete(i: int) -> None:
        route = f"{prefix}{i}"
        job = api.create(status="running", callback_url=receiver.url(route))
        assert api.patch(f"/v1/jobs/{job['id']}", json={"status": "completed"}).status_code == 200
        jobs[job["id"]] = route

    threads = [threading.Thread(target=lambda k=k: [complete(i) for i in range(k, 200, 4)]) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(jobs) == 200

    def settled() -> bool:
        dead = dead_letters()
        return all(job_id in dead or any(r.answer == 200 for r in receiver.to(route)) for job_id, route in jobs.items())

    if not receiver.wait_for(settled, timeout=90):
        dead = dead_letters()
        stuck = {j: r for j, r in jobs.items() if j not in dead and not any(x.answer == 200 for x in receiver.to(r))}
        detail = {j: ([x.answer for x in receiver.to(r)], api.get(f"/v1/jobs/{j}/callbacks").json()) for j, r in list(stuck.items())[:3]}
        pytest.fail(f"{len(stuck)} webhooks neither delivered nor dead-lettered, e.g. {detail}")
    time.sleep(3)  # let any straggler show itself
    dead = dead_letters()
    delivered = 0
    for job_id, route in jobs.items():
        got = receiver.to(route)
        successes = [r for r in got if r.answer == 200]
        assert len({r.headers["webhook-id"] for r in got}) == 1
        if job_id in dead:
            assert not successes and len(got) == 6 and len(dead[job_id]) == 1
        else:
            assert len(successes) == 1 and got[-1].answer == 200, (job_id, [r.answer for r in got])
            delivered += 1
    assert delivered + sum(1 for j in jobs if j in dead) == 200
    print(f"soak: {delivered} delivered, {200 - delivered} dead-lettered")
