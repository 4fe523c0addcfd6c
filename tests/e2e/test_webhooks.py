"""Webhooks end to end on the local stack: PATCH -> stream -> callbacks function -> receiver,
retries through SQS with the backoff (its delays capped at 4 s in this stack), the dead-letter
queue, and the /callbacks routes.

Signatures are checked with the standardwebhooks package, not with the service's code.

Every wait is on progress (tests.waiting): a delivery being retried keeps producing attempts,
so a wait fails only when nothing has happened for a generous while, never because a fixed
total ran out on a loaded machine; and no assertion is about durations (the backoff schedule
itself is unit-tested). The session's stack caps a retry's delay at 4 s (tests/e2e/conftest.py),
so six attempts take 15 s of backoff; the jobs whose retries take longest are started by a module
fixture before the other tests, so that their backoff overlaps them.
"""
from __future__ import annotations

import json
import random
import threading
import uuid
from collections import defaultdict

import boto3
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.receiver import Receiver
from tests.waiting import settle, wait_until

TERMINAL_VIA = {
    "completed": ("running", lambda api, j: api.patch(f"/v1/jobs/{j}", json={"status": "completed"})),
    "failed": ("running", lambda api, j: api.patch(f"/v1/jobs/{j}", json={"status": "failed"})),
    "cancelled": ("pending", lambda api, j: api.patch(f"/v1/jobs/{j}/cancel")),
    "expired": ("created", lambda api, j: api.patch(f"/v1/jobs/{j}", json={"status": "expired"})),
}
#: a retry's longest legitimate silence: 4 s of backoff (the stack's cap) + 25 % jitter, plus the
#: local pumps on a loaded machine
RETRY_STALL = 45.0


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
    lock = threading.Lock()

    def read() -> dict[str, list[dict]]:
        with lock:
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


def attempts(api, job_id: str, count: int | None = None) -> list[dict]:
    """The job's attempt rows; with ``count``, once there are that many (a list may trail the
    write that made a row by a moment, as DynamoDB's default queries do)."""
    def read() -> list[dict]:
        response = api.get(f"/v1/jobs/{job_id}/callbacks")
        assert response.status_code == 200, response.text
        return response.json()

    if count is None:
        return read()
    return wait_until(read, done=lambda rows: len(rows) >= count, what=f"{count} attempt rows of {job_id}")


@pytest.fixture(scope="module")
def doomed(api, receiver) -> dict:
    """Jobs whose receiver never accepts: one answers 503, one closes the connection."""
    routes = {"503": path(), "close": path()}
    answers = {routes["503"]: 503, routes["close"]: "close"}
    previous = receiver.behaviour
    receiver.behaviour = lambda p, n: answers.get(p) or previous(p, n)
    return {kind: {"route": route, "job": finish(api, receiver, route)} for kind, route in routes.items()}


@pytest.fixture(autouse=True)
def _start_the_long_ones_first(doomed):
    """(Every test of the module uses ``doomed``, so it is made before the first one runs.)"""


def test_every_terminal_status_is_delivered_and_verifies(api, receiver):
    secret = api.get("/v1/webhook-secret").json()["secret"]
    routes = {status: path() for status in TERMINAL_VIA}
    finished = {status: finish(api, receiver, routes[status], status) for status in TERMINAL_VIA}
    wait_until(lambda: sorted(r for r in routes.values() if receiver.to(r)), done=lambda got: len(got) == 4,
               what="a webhook for each terminal status")
    for status, route in routes.items():
        (got,) = receiver.to(route)
        event = Webhook(secret).verify(got.body, got.headers)
        job = finished[status]
        assert event == {
            "type": f"job.{status}", "timestamp": job["completed_at"], "job_id": job["id"], "status": status,
            "completed_at": job["completed_at"], "metadata": {}, "stop_reason": job["stop_reason"], "job_type": "job",
        }
        after = wait_until(lambda: api.job(job["id"]), done=lambda j: j["callback_status_code"] == 200,
                           what=f"job {job['id']} to show its delivery")
        assert after["callback_error"] is None and after["callback_sent_at"] >= job["completed_at"]
        assert [(r["attempt"], r["succeeded"], r["status_code"]) for r in attempts(api, job["id"], 1)] == [(1, True, 200)]


def test_any_2xx_answer_is_a_delivery(api, receiver):
    """201, 202, 204 and 299, each the answer of its own receiver route, all at once (one wait
    for "no retry follows" covers the four)."""
    answers = {path(): answer for answer in (201, 202, 204, 299)}
    receiver.behaviour = lambda p, n, previous=receiver.behaviour: answers.get(p) or previous(p, n)
    jobs = {route: finish(api, receiver, route) for route in answers}
    for route, answer in answers.items():
        job = jobs[route]
        after = wait_until(lambda: api.job(job["id"]), done=lambda j: j["callback_sent_at"] is not None,
                           what=f"the first attempt at {route}")
        assert (after["callback_status_code"], after["callback_error"]) == (answer, None)
        rows = attempts(api, job["id"], 1)
        assert [(r["attempt"], r["succeeded"], r["status_code"], r["error"]) for r in rows] == [(1, True, answer, None)]
    received = settle(lambda: {route: len(receiver.to(route)) for route in answers})
    assert received == {route: 1 for route in answers}, "a 2xx is not retried"


def test_a_receiver_failing_twice_gets_one_success_on_the_third_attempt(api, receiver):
    route = path()
    receiver.behaviour = lambda p, n, previous=receiver.behaviour: (500 if n <= 2 else 200) if p == route else previous(p, n)
    job = finish(api, receiver, route)
    wait_until(lambda: [a.answer for a in receiver.to(route)], done=lambda answers: 200 in answers,
               what=f"the third attempt at {route}", stall=RETRY_STALL)
    got = settle(lambda: [a.answer for a in receiver.to(route)])
    assert got == [500, 500, 200], "two failures, one success, nothing after it"
    assert len({a.headers["webhook-id"] for a in receiver.to(route)}) == 1
    rows = attempts(api, job["id"], 3)
    assert [(r["attempt"], r["succeeded"], r["status_code"]) for r in rows] == [(1, False, 500), (2, False, 500), (3, True, 200)]
    assert rows[0]["error"] == "HTTP 500" and rows[2]["error"] is None
    assert [r["sent_at"] for r in rows] == sorted(r["sent_at"] for r in rows) and len({r["sent_at"] for r in rows}) == 3
    assert {r["webhook_id"] for r in rows} == {receiver.to(route)[0].headers["webhook-id"]}
    after = api.job(job["id"])
    assert after["callback_status_code"] == 200 and after["callback_error"] is None


def test_no_answer_leaves_callback_status_code_null(api, doomed):
    """README: ``callback_status_code`` is null when no answer came (the receiver closed the
    connection); ``callback_error`` says why."""
    job = doomed["close"]["job"]
    rows = attempts(api, job["id"], 1)
    assert rows[0]["status_code"] is None and rows[0]["error"] and rows[0]["succeeded"] is False
    after = api.job(job["id"])
    assert after["callback_sent_at"] is not None
    assert after["callback_status_code"] is None, "no answer came: no status code"
    assert after["callback_error"]


def test_410_stops_retrying_at_once(api, receiver, dead_letters):
    route = path()
    receiver.behaviour = lambda p, n, previous=receiver.behaviour: 410 if p == route else previous(p, n)
    job = finish(api, receiver, route, "failed")
    wait_until(lambda: receiver.to(route), what=f"the attempt at {route}")
    # a retry would come a second later; give it three
    assert settle(lambda: len(receiver.to(route)), quiet=3) == 1
    assert [r["status_code"] for r in attempts(api, job["id"], 1)] == [410]
    assert job["id"] not in dead_letters()


def test_redelivery(api, other, receiver):
    route = path()
    job = finish(api, receiver, route)
    wait_until(lambda: receiver.to(route), what=f"the first delivery at {route}")
    assert other.post(f"/v1/jobs/{job['id']}/callbacks/redeliver").status_code == 404
    assert other.get(f"/v1/jobs/{job['id']}/callbacks").status_code == 404
    answer = api.post(f"/v1/jobs/{job['id']}/callbacks/redeliver")
    assert answer.status_code == 202
    first, second = wait_until(lambda: receiver.to(route), done=lambda got: len(got) == 2, what="the redelivery")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == answer.json()["webhook_id"]
    assert first.body == second.body
    running = api.create(status="running", callback_url=receiver.url(route))
    refused = api.post(f"/v1/jobs/{running['id']}/callbacks/redeliver")
    assert refused.status_code == 409 and refused.json()["current_status"] == "running"
    no_url = api.create(status="running")
    api.patch(f"/v1/jobs/{no_url['id']}", json={"status": "completed"})
    assert api.post(f"/v1/jobs/{no_url['id']}/callbacks/redeliver").status_code == 409


def rows_error(api, job_id: str) -> str:
    """The error of a job's last attempt (a refused connection's wording is the sender's)."""
    error = attempts(api, job_id, 6)[-1]["error"]
    assert error
    return error


def signatures(received) -> list[str]:
    return received.headers["webhook-signature"].split()


def test_a_rotation_signs_with_both_secrets(api, receiver):
    old = api.get("/v1/webhook-secret").json()["secret"]
    rotated = api.post("/v1/webhook-secret/rotate")
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new != old and new.startswith("whsec_") and api.get("/v1/webhook-secret").json() == {"secret": new}
    route = path()
    finish(api, receiver, route)
    (got,) = wait_until(lambda: receiver.to(route), what=f"the delivery at {route}")
    assert len(signatures(got)) == 2
    Webhook(new).verify(got.body, got.headers)
    Webhook(old).verify(got.body, got.headers)


def test_a_second_rotation_within_24_hours_drops_the_oldest_secret(api, receiver):
    oldest = api.get("/v1/webhook-secret").json()["secret"]
    middle = api.post("/v1/webhook-secret/rotate").json()["secret"]
    newest = api.post("/v1/webhook-secret/rotate").json()["secret"]
    assert len({oldest, middle, newest}) == 3
    route = path()
    finish(api, receiver, route)
    (got,) = wait_until(lambda: receiver.to(route), what=f"the delivery at {route}")
    assert len(signatures(got)) == 2, "the newest and the one before it"
    Webhook(newest).verify(got.body, got.headers)
    Webhook(middle).verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(oldest).verify(got.body, got.headers)


def test_an_always_failing_receiver_ends_in_the_dead_letter_queue_after_six_attempts(api, receiver, doomed, dead_letters):
    for kind, last_error in (("503", "HTTP 503"), ("close", None)):
        job, route = doomed[kind]["job"], doomed[kind]["route"]
        # progress: each attempt reaches the receiver, up to six
        wait_until(lambda: (len(receiver.to(route)), job["id"] in dead_letters()), done=lambda state: state[1],
                   what=f"job {job['id']} ({kind}) in the dead-letter queue", stall=RETRY_STALL)
        (dead,) = dead_letters()[job["id"]]
        assert dead["attempts"] == 6 and dead["webhook_id"].startswith("msg_")
        assert dead["last_error"] == (last_error or rows_error(api, job["id"])), dead
        assert settle(lambda: len(receiver.to(route))) == 6
        rows = attempts(api, job["id"], 6)
        assert [r["attempt"] for r in rows] == [1, 2, 3, 4, 5, 6] and not any(r["succeeded"] for r in rows)
        assert api.job(job["id"])["callback_error"] == rows[-1]["error"]


SOAK = 60  # jobs; with half the attempts failing, about 120 deliveries and a dead letter or two


def test_soak_jobs_against_a_receiver_failing_half_the_time(api, receiver, dead_letters):
    """Every webhook ends delivered exactly once or dead-lettered; none is lost. (The stack's
    work grows with the number of jobs, the wait with the backoff: 15 s for six attempts here.)"""
    rng = random.Random(20261128)
    lock = threading.Lock()
    prefix = f"/soak-{uuid.uuid4().hex[:8]}-"
    previous = receiver.behaviour

    def flaky(p: str, n: int):
        if not p.startswith(prefix):
            return previous(p, n)
        with lock:
            return 500 if rng.random() < 0.5 else 200

    receiver.behaviour = flaky
    jobs: dict[str, str] = {}
    errors: list[str] = []

    def complete(i: int) -> None:
        route = f"{prefix}{i}"
        try:
            job = api.create(status="running", callback_url=receiver.url(route))
            answer = api.patch(f"/v1/jobs/{job['id']}", json={"status": "completed"})
        except Exception as exc:  # noqa: BLE001 - reported below with the others
            errors.append(repr(exc))
            return
        if answer.status_code != 200:
            errors.append(answer.text)
        jobs[job["id"]] = route

    threads = [threading.Thread(target=lambda k=k: [complete(i) for i in range(k, SOAK, 4)]) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(jobs) == SOAK, errors

    def progress() -> tuple[int, int]:
        """(webhooks settled: delivered or dead-lettered, attempts seen): both move while retries run."""
        dead = dead_letters()
        settled = sum(1 for job_id, route in jobs.items()
                      if job_id in dead or any(r.answer == 200 for r in receiver.to(route)))
        return settled, sum(len(receiver.to(route)) for route in jobs.values())

    wait_until(progress, done=lambda state: state[0] == SOAK, what=f"all {SOAK} soak webhooks to settle",
               stall=RETRY_STALL, poll=0.5, max_poll=1.0)
    # any straggler (a second success, a dead letter after a success) shows itself before it settles
    settle(lambda: sum(len(receiver.to(route)) for route in jobs.values()), quiet=3, poll=0.5)
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
    assert delivered + sum(1 for j in jobs if j in dead) == SOAK
    print(f"soak: {delivered} delivered, {SOAK - delivered} dead-lettered")
