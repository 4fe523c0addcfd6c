"""Webhook delivery against moto (DynamoDB + SQS) and a real receiver on 127.0.0.1."""
from __future__ import annotations

import json
import time

import pytest
from standardwebhooks.webhooks import Webhook

from jobsvc import jobs, sender, webhooks
from jobsvc.storage import jobs as jobs_store
from jobsvc.storage import webhooks as webhook_store
from jobsvc.auth import Actor
from jobsvc.config import settings
from jobsvc.schemas import JobCreate, JobUpdate
from local.counting import count_dynamodb_requests

ACTOR = Actor("org-w", "user-w")


def finished_job(url: str, status: str = "completed") -> dict:
    job, _ = jobs.create_job(ACTOR, JobCreate(status="running", callback_url=url, metadata={"n": 1}))
    return jobs.update_job(ACTOR, job["id"], JobUpdate(status=status))


def queued(env, queue: str, wait: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        messages = env.sqs.receive_message(QueueUrl=env.urls[queue], MaxNumberOfMessages=10).get("Messages", [])
        if messages:
            for m in messages:
                env.sqs.delete_message(QueueUrl=env.urls[queue], ReceiptHandle=m["ReceiptHandle"])
            return [json.loads(m["Body"]) for m in messages]
        time.sleep(0.1)
    return []


def pending(env, queue: str) -> int:
    """Messages in a queue, visible, in flight or still delayed (no waiting: a retry's
    delay is a second or more, so a negative check must not wait for it to show)."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]
    attributes = env.sqs.get_queue_attributes(QueueUrl=env.urls[queue], AttributeNames=names)["Attributes"]
    return sum(int(attributes.get(name, 0)) for name in names)


def test_delivery_is_signed_recorded_and_costs_two_requests(webhook_env):
    secret = webhooks.get_secret(ACTOR)["secret"]
    job = finished_job(webhook_env.receiver.url())
    task = webhooks.task_for(job)
    with count_dynamodb_requests() as calls:
        assert webhooks.deliver(task) == webhooks.DELIVERED
    # the job (is it still there?), its webhook state and the secret in one read, then the
    # record: a first attempt makes no claim, no transaction, and the job itself is never
    # written (its callback_* members live in its webhook item)
    assert calls == ["BatchGetItem", "UpdateItem"]

    (received,) = webhook_env.receiver.requests
    assert Webhook(secret).verify(received.body, received.headers) == received.json()
    assert received.json() == {
        "type": "job.completed", "timestamp": job["completed_at"], "job_id": job["id"], "status": "completed",
        "completed_at": job["completed_at"], "metadata": {"n": 1}, "stop_reason": None, "job_type": "job",
    }
    assert received.headers["webhook-id"] == task.webhook_id
    after = jobs.get_job(ACTOR, job["id"])
    assert after["callback_status_code"] == 200 and after["callback_error"] is None and after["callback_sent_at"]
    (attempt,) = webhooks.list_attempts(ACTOR, job["id"])
    assert attempt["succeeded"] and attempt["attempt"] == 1 and attempt["status_code"] == 200
    assert attempt["event_type"] == "job.completed" and attempt["webhook_id"] == task.webhook_id
    assert pending(webhook_env, "WebhookQueue") == 0 and pending(webhook_env, "WebhookDeadLetterQueue") == 0


def test_a_duplicate_stream_record_is_not_sent_twice(webhook_env):
    task = webhooks.task_for(finished_job(webhook_env.receiver.url()))
    assert webhooks.deliver(task) == webhooks.DELIVERED
    assert webhooks.deliver(task) == webhooks.DUPLICATE
    assert len(webhook_env.receiver.requests) == 1


def test_failure_is_retried_through_the_queue_with_the_same_webhook_id(webhook_env):
    webhook_env.receiver.behaviour = lambda path, n: 500 if n == 1 else 200
    job = finished_job(webhook_env.receiver.url())
    assert webhooks.deliver(webhooks.task_for(job)) == webhooks.RETRYING
    after = jobs.get_job(ACTOR, job["id"])
    assert after["callback_status_code"] == 500 and after["callback_error"] == "HTTP 500"
    (message,) = queued(webhook_env, "WebhookQueue")
    retry = webhooks.Task(**message)
    assert retry.seen == 1
    assert webhooks.deliver(retry) == webhooks.DELIVERED
    assert webhooks.deliver(retry) == webhooks.DUPLICATE  # the same SQS message received twice
    ids = {r.headers["webhook-id"] for r in webhook_env.receiver.requests}
    assert len(webhook_env.receiver.requests) == 2 and len(ids) == 1
    attempts = webhooks.list_attempts(ACTOR, job["id"])
    assert [(a["attempt"], a["succeeded"]) for a in attempts] == [(1, False), (2, True)]
    assert jobs.get_job(ACTOR, job["id"])["callback_error"] is None


def test_410_stops_at_once(webhook_env):
    webhook_env.receiver.behaviour = lambda path, n: 410
    job = finished_job(webhook_env.receiver.url())
    assert webhooks.deliver(webhooks.task_for(job)) == webhooks.GONE
    assert pending(webhook_env, "WebhookQueue") == 0
    assert pending(webhook_env, "WebhookDeadLetterQueue") == 0
    assert jobs.get_job(ACTOR, job["id"])["callback_status_code"] == 410


def test_exhausted_retries_end_in_the_dead_letter_queue(webhook_env, monkeypatch):
    monkeypatch.setenv("WEBHOOK_MAX_RETRIES", "1")
    settings.cache_clear()
    webhook_env.receiver.behaviour = lambda path, n: 503
    job = finished_job(webhook_env.receiver.url())
    task = webhooks.task_for(job)
    assert webhooks.deliver(task) == webhooks.RETRYING
    (message,) = queued(webhook_env, "WebhookQueue")
    assert webhooks.deliver(webhooks.Task(**message)) == webhooks.DEAD_LETTERED
    (dead,) = queued(webhook_env, "WebhookDeadLetterQueue")
    assert dead["job_id"] == job["id"] and dead["webhook_id"] == task.webhook_id
    assert dead["last_error"] == "HTTP 503" and dead["attempts"] == 2
    assert jobs.get_job(ACTOR, job["id"])["callback_error"] == "HTTP 503"
    assert pending(webhook_env, "WebhookQueue") == 0


def test_a_job_deleted_while_its_webhook_is_pending_is_skipped(webhook_env):
    job = finished_job(webhook_env.receiver.url())
    jobs.delete_job(ACTOR, job["id"])
    assert webhooks.deliver(webhooks.task_for(job)) == webhooks.JOB_DELETED
    assert webhook_env.receiver.requests == []


def test_a_crashed_sender_is_taken_over_after_its_lease(webhook_env):
    job = finished_job(webhook_env.receiver.url())
    task = webhooks.task_for(job)
    now = int(time.time())
    # a sender claimed attempt 1 and died before sending (its lease has run out)
    assert webhook_store.claim(task.organization_id, task.job_id, task.delivery_id, 0, now, now - 1).claimed
    assert webhooks.deliver(task) == webhooks.DELIVERED  # the stream record, retried
    (attempt,) = webhooks.list_attempts(ACTOR, job["id"])
    assert attempt["attempt"] == 2 and attempt["succeeded"]


def test_a_live_sender_defers_a_duplicate_until_its_lease_ends(webhook_env):
    job = finished_job(webhook_env.receiver.url())
    task = webhooks.task_for(job)
    now = int(time.time())
    webhook_store.claim(task.organization_id, task.job_id, task.delivery_id, 0, now, now + 1)
    assert webhooks.deliver(task) == webhooks.DEFERRED
    assert webhook_env.receiver.requests == []
    (check,) = queued(webhook_env, "WebhookQueue", wait=5)
    assert check["takeover"] is True and check["seen"] == 1
    # the holder never finished: the check takes the delivery over
    assert webhooks.deliver(webhooks.Task(**check)) == webhooks.DELIVERED
    assert len(webhook_env.receiver.requests) == 1


def test_redelivery_sends_the_event_again_with_the_same_webhook_id(webhook_env):
    job = finished_job(webhook_env.receiver.url(), status="failed")
    first = webhooks.task_for(job)
    assert webhooks.deliver(first) == webhooks.DELIVERED
    answer = webhooks.request_redelivery(ACTOR, job["id"])
    assert answer["webhook_id"] == first.webhook_id and answer["delivery_id"] != first.delivery_id
    (message,) = queued(webhook_env, "WebhookQueue")
    assert webhooks.deliver(webhooks.Task(**message)) == webhooks.DELIVERED
    assert [r.headers["webhook-id"] for r in webhook_env.receiver.requests] == [first.webhook_id] * 2


def test_redelivery_needs_a_terminal_job_with_a_callback(webhook_env):
    from jobsvc import errors

    running, _ = jobs.create_job(ACTOR, JobCreate(status="running", callback_url=webhook_env.receiver.url()))
    with pytest.raises(errors.InvalidTransition) as refused:
        webhooks.request_redelivery(ACTOR, running["id"])
    assert refused.value.status_code == 409 and refused.value.current_status == "running"
    bare, _ = jobs.create_job(ACTOR, JobCreate(status="running"))
    jobs.update_job(ACTOR, bare["id"], JobUpdate(status="completed"))
    with pytest.raises(errors.InvalidTransition):
        webhooks.request_redelivery(ACTOR, bare["id"])


def test_rotation_signs_with_both_secrets_for_a_day(webhook_env):
    old = webhooks.get_secret(ACTOR)["secret"]
    new = webhooks.rotate_secret(ACTOR)["secret"]
    assert new != old and webhooks.get_secret(ACTOR)["secret"] == new
    assert webhooks.signing_secrets(ACTOR.organization_id) == [new, old]
    job = finished_job(webhook_env.receiver.url())
    assert webhooks.deliver(webhooks.task_for(job)) == webhooks.DELIVERED
    (received,) = webhook_env.receiver.requests
    Webhook(new).verify(received.body, received.headers)
    Webhook(old).verify(received.body, received.headers)


# ---- SSRF: a deployment-like configuration (private networks not allowed) ---------------


def test_an_internal_callback_is_refused_at_send_time_and_dead_lettered(webhook_env, monkeypatch):
    job = finished_job(webhook_env.receiver.url())  # accepted while private URLs were allowed
    monkeypatch.setenv("ALLOW_PRIVATE_CALLBACKS", "false")
    settings.cache_clear()
    assert webhooks.deliver(webhooks.task_for(job)) == webhooks.DEAD_LETTERED
    assert webhook_env.receiver.requests == []
    (dead,) = queued(webhook_env, "WebhookDeadLetterQueue")
    assert dead["last_error"].startswith("refused")
    assert jobs.get_job(ACTOR, job["id"])["callback_error"].startswith("refused")
    assert pending(webhook_env, "WebhookQueue") == 0


@pytest.mark.parametrize("url", [
    "https://169.254.169.254/latest/meta-data/", "https://[::1]/hook", "https://[fd00::1]/hook",
    "https://10.1.2.3/hook", "http://example.com/hook", "https://localhost/hook",
])
def test_sender_refuses_internal_urls_without_sending(url):
    outcome = sender.post(url, "{}", {}, timeout=1, allow_private=False)
    assert outcome.final and not outcome.succeeded and outcome.error.startswith("refused")


def test_the_connected_address_is_checked_too(webhook_env):
    """A host that passed the check but connects to an internal address (DNS rebinding) is refused."""
    import requests

    with pytest.raises(requests.ConnectionError, match="internal address"):
        sender._session(allow_private=False).post(webhook_env.receiver.url(), data=b"{}", timeout=2)
    assert webhook_env.receiver.requests == []


# ---- what a misbehaving receiver does to one attempt --------------------------------------


@pytest.mark.parametrize("action,code,error", [
    (500, 500, "HTTP 500"), (429, 429, "HTTP 429"), (301, 301, "HTTP 301: redirects are not followed"),
    ("close", None, "connection failed"), ("garbage", None, "connection failed"),
    (("sleep", 1.5, 200), None, "timed out after 0.5 s"),
])
def test_receiver_failures_are_failed_attempts(webhook_env, action, code, error):
    webhook_env.receiver.behaviour = lambda path, n: action
    outcome = sender.post(webhook_env.receiver.url(), "{}", {}, timeout=0.5, allow_private=True)
    assert not outcome.succeeded and not outcome.final
    assert outcome.status_code == code and outcome.error.startswith(error)


def test_a_receiver_that_is_down_is_a_failed_attempt():
    outcome = sender.post("http://127.0.0.1:9/hook", "{}", {}, timeout=1, allow_private=True)
    assert not outcome.succeeded and outcome.status_code is None and outcome.error.startswith("connection failed")


def test_a_retry_that_arrives_before_its_attempt_is_recorded_is_not_lost(webhook_env):
    """Attempt 1 queued its retry, but its own record ("waiting") landed after the retry came:
    the retry defers to a check, and the check makes attempt 2."""
    job = finished_job(webhook_env.receiver.url())
    task = webhooks.task_for(job)
    now = int(time.time())
    claim = webhook_store.claim(task.organization_id, task.job_id, task.delivery_id, 0, now, now + 2)
    assert webhooks.deliver(task.next(seen=1)) == webhooks.DEFERRED  # attempt 1 still "sending"
    # attempt 1's record lands: the delivery now waits for attempt 2 (whose message was used up)
    entry = {"sent_at": "2026-01-01T00:00:00.000000Z", "status_code": 500, "error": "HTTP 500", "attempt": 1, "succeeded": False}
    assert webhook_store.record(task.organization_id, task.job_id, task.delivery_id, 1, claim.seq, "waiting", entry)
    (check,) = queued(webhook_env, "WebhookQueue", wait=8)
    assert webhooks.deliver(webhooks.Task(**check)) == webhooks.DELIVERED
    first, second = webhooks.list_attempts(ACTOR, job["id"])
    assert (first["attempt"], first["succeeded"]) == (1, False) and (second["attempt"], second["succeeded"]) == (2, True)


def test_a_retry_that_arrives_before_a_first_attempts_record_waits_for_it(webhook_env, monkeypatch):
    """A first attempt (no claim) queues its retry, then records itself in one write: a retry
    that comes before that write waits for it (a check after the lease), and makes attempt 2;
    a check that still finds nothing claims the delivery and sends it."""
    monkeypatch.setenv("WEBHOOK_LEASE_SECONDS", "1")
    settings.cache_clear()
    job = finished_job(webhook_env.receiver.url())
    task = webhooks.task_for(job)
    assert webhooks.deliver(task.next(seen=1)) == webhooks.DEFERRED
    entry = {"webhook_id": task.webhook_id, "delivery_id": task.delivery_id, "event_type": "job.completed",
             "attempt": 1, "sent_at": "2026-01-01T00:00:00.000000Z", "status_code": 500, "error": "HTTP 500",
             "duration_ms": 3, "succeeded": False}
    assert webhook_store.record_first(task.organization_id, task.job_id, task.delivery_id, "waiting", entry)
    (check,) = queued(webhook_env, "WebhookQueue", wait=8)
    assert check["takeover"] is True and check["seen"] == 1
    assert webhooks.deliver(webhooks.Task(**check)) == webhooks.DELIVERED
    assert [(a["attempt"], a["succeeded"]) for a in webhooks.list_attempts(ACTOR, job["id"])] == [(1, False), (2, True)]

    # a first attempt that never recorded itself: the retry's check carries the delivery on
    # (claimed, as attempt 1 of the record), and the stream record, seen again, is refused
    never = webhooks.task_for(finished_job(webhook_env.receiver.url("/never")))
    assert webhooks.deliver(never.next(seen=1)) == webhooks.DEFERRED
    (check,) = queued(webhook_env, "WebhookQueue", wait=8)
    assert webhooks.deliver(webhooks.Task(**check)) == webhooks.DELIVERED
    assert webhooks.deliver(never) == webhooks.DUPLICATE
    assert [r.path for r in webhook_env.receiver.requests].count("/never") == 1
    assert pending(webhook_env, "WebhookQueue") == 0


def test_a_queued_first_attempt_claims(webhook_env):
    """Only the stream's first attempt goes without a claim: a queued one (a redelivery, a
    replayed stream failure) may be handed to two pollers at once by SQS, and claims first."""
    webhooks.get_secret(ACTOR)  # the organization's secret exists (its making is one more write)
    job = finished_job(webhook_env.receiver.url())
    queued_task = webhooks.Task(**webhooks.task_for(job).message())
    with count_dynamodb_requests() as calls:
        assert webhooks.deliver(queued_task) == webhooks.DELIVERED
    assert calls == ["BatchGetItem", "UpdateItem", "UpdateItem"]
    assert webhooks.deliver(queued_task) == webhooks.DUPLICATE  # the same message again
    assert len(webhook_env.receiver.requests) == 1


def test_a_first_attempt_overtaken_by_another_delivery_is_still_recorded(webhook_env, monkeypatch):
    """Another delivery of the job claims on the webhook item while the first attempt is being
    sent: the first attempt's one write is refused, and the attempt is recorded as attempt 1 of
    its own delivery, after the other's."""
    job = finished_job(webhook_env.receiver.url())
    task = webhooks.task_for(job)
    post = sender.post

    def overtaken(*args, **kwargs):
        outcome = post(*args, **kwargs)
        now = int(time.time())
        assert webhook_store.claim(task.organization_id, task.job_id, "other", 0, now, now + 60).claimed
        return outcome

    monkeypatch.setattr(sender, "post", overtaken)
    assert webhooks.deliver(task) == webhooks.DELIVERED
    state = jobs_store.get_webhook_state(ACTOR.organization_id, job["id"])
    assert state[f"d_{task.delivery_id}"]["st"] == "succeeded" and state["d_other"]["st"] == "sending"
    (attempt,) = webhooks.list_attempts(ACTOR, job["id"])
    assert attempt["attempt"] == 1 and attempt["succeeded"] and attempt["webhook_id"] == task.webhook_id


def test_a_queued_retry_rebuilds_a_large_event_from_the_job(webhook_env):
    """Queued tasks carry no event body (SQS takes 256 KB; metadata may be bigger)."""
    webhook_env.receiver.behaviour = lambda path, n: 500 if n == 1 else 200
    job, _ = jobs.create_job(ACTOR, JobCreate(status="running", callback_url=webhook_env.receiver.url()))
    for i in range(5):
        jobs.update_job(ACTOR, job["id"], JobUpdate(metadata={f"k{i}": "x" * 60_000}))
    job = jobs.update_job(ACTOR, job["id"], JobUpdate(status="completed"))
    assert webhooks.deliver(webhooks.task_for(job)) == webhooks.RETRYING
    (message,) = queued(webhook_env, "WebhookQueue")
    assert message["payload"] is None
    assert webhooks.deliver(webhooks.Task(**message)) == webhooks.DELIVERED
    first, second = webhook_env.receiver.requests
    assert first.body == second.body and len(second.json()["metadata"]) == 5


def test_a_host_that_cannot_be_encoded_is_refused_not_a_crash():
    long_label = "https://" + "a" * 64 + ".example.com/hook"
    outcome = sender.post(long_label, "{}", {}, timeout=1, allow_private=False)
    assert outcome.final and outcome.error.startswith("refused")
