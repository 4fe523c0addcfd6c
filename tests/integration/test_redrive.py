"""Nothing dead-lettered is lost: the operator's redrive sends dead letters back, and each is
attempted again (a new round of retries), and delivered once the receiver is back."""
from __future__ import annotations

import json
import subprocess
import sys

from jobsvc import jobs, redrive, webhooks
from jobsvc.auth import Actor
from jobsvc.config import settings
from jobsvc.schemas import JobCreate, JobUpdate

A = Actor("org-redrive", "user-r")


def drain(env, queue: str) -> list[dict]:
    found = []
    while True:
        got = env.sqs.receive_message(QueueUrl=env.urls[queue], MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return found
        for m in got:
            env.sqs.delete_message(QueueUrl=env.urls[queue], ReceiptHandle=m["ReceiptHandle"])
        found += [json.loads(m["Body"]) for m in got]


def test_a_redriven_dead_letter_is_attempted_again_and_delivered(webhook_env, monkeypatch):
    monkeypatch.setenv("WEBHOOK_MAX_RETRIES", "0")  # the first failure dead-letters
    settings.cache_clear()
    down = {"down": True}
    webhook_env.receiver.behaviour = lambda path, n: 503 if down["down"] else 200
    job, _ = jobs.create_job(A, JobCreate(status="running", callback_url=webhook_env.receiver.url()))
    job = jobs.update_job(A, job["id"], JobUpdate(status="completed"))
    assert webhooks.deliver(webhooks.task_for(job)) == webhooks.DEAD_LETTERED

    down["down"] = False  # the receiver is back; the operator redrives
    assert redrive.redrive(webhook_env.sqs, webhook_env.urls["WebhookDeadLetterQueue"], webhook_env.urls["WebhookQueue"]) == 1
    (message,) = drain(webhook_env, "WebhookQueue")
    assert webhooks.deliver(webhooks.Task.from_message(json.dumps(message))) == webhooks.DELIVERED
    answers = [r.answer for r in webhook_env.receiver.requests]
    assert answers == [503, 200]
    attempts = webhooks.list_attempts(A, job["id"])
    assert [(a["attempt"], a["succeeded"]) for a in attempts] == [(1, False), (2, True)]
    assert jobs.get_job(A, job["id"])["callback_status_code"] == 200
    # the same dead letter redriven twice (a crash between copy and delete) is not sent twice
    assert webhooks.deliver(webhooks.Task.from_message(json.dumps(message))) == webhooks.DUPLICATE


def test_a_redriven_dead_letter_that_fails_again_goes_back_to_the_dead_letter_queue(webhook_env, monkeypatch):
    monkeypatch.setenv("WEBHOOK_MAX_RETRIES", "0")
    settings.cache_clear()
    webhook_env.receiver.behaviour = lambda path, n: 500
    job, _ = jobs.create_job(A, JobCreate(status="running", callback_url=webhook_env.receiver.url()))
    job = jobs.update_job(A, job["id"], JobUpdate(status="completed"))
    assert webhooks.deliver(webhooks.task_for(job)) == webhooks.DEAD_LETTERED
    redrive.redrive(webhook_env.sqs, webhook_env.urls["WebhookDeadLetterQueue"], webhook_env.urls["WebhookQueue"])
    (message,) = drain(webhook_env, "WebhookQueue")
    assert webhooks.deliver(webhooks.Task.from_message(json.dumps(message))) == webhooks.DEAD_LETTERED
    (dead,) = drain(webhook_env, "WebhookDeadLetterQueue")
    assert dead["job_id"] == job["id"] and dead["attempts"] == 2


def test_recover_resends_the_failed_deliveries_of_a_window_once(webhook_env, monkeypatch):
    monkeypatch.setenv("WEBHOOK_MAX_RETRIES", "0")
    settings.cache_clear()
    down = {"down": True}
    webhook_env.receiver.behaviour = lambda path, n: 503 if down["down"] else 200
    failed = []
    for _ in range(3):
        job, _ = jobs.create_job(A, JobCreate(status="running", callback_url=webhook_env.receiver.url()))
        job = jobs.update_job(A, job["id"], JobUpdate(status="completed"))
        assert webhooks.deliver(webhooks.task_for(job)) == webhooks.DEAD_LETTERED
        failed.append(job["id"])
    other = Actor("org-elsewhere", "u")
    assert webhooks.recover(other, "2000-01-01T00:00:00Z") == {"queued": 0}  # another organization's are not its
    down["down"] = False
    assert webhooks.recover(A, "2000-01-01T00:00:00Z") == {"queued": 3}
    assert webhooks.recover(A, "2000-01-01T00:00:00Z") == {"queued": 0}  # not queued twice
    for message in drain(webhook_env, "WebhookQueue"):
        assert webhooks.deliver(webhooks.Task.from_message(json.dumps(message))) == webhooks.DELIVERED
    assert all(jobs.get_job(A, job_id)["callback_status_code"] == 200 for job_id in failed)


def test_the_command_line(webhook_env):
    answer = subprocess.run([sys.executable, "-m", "jobsvc.redrive", "--help"], capture_output=True, text=True,
                            cwd="layers/common")
    assert answer.returncode == 0 and "--dlq" in answer.stdout
    missing = subprocess.run([sys.executable, "-m", "jobsvc.redrive"], capture_output=True, text=True, cwd="layers/common",
                             env={"PATH": "/usr/bin:/bin"})
    assert missing.returncode == 2 and "--dlq" in missing.stderr


def test_recover_then_redrive_delivers_the_event_once_and_recover_queued_twice_sends_once(webhook_env, monkeypatch):
    """A failure recovered through the API is not sent again by a later redrive of its dead
    letter, and a recover repeated after a crash (its entry still in the failed index) does
    not send the event twice."""
    monkeypatch.setenv("WEBHOOK_MAX_RETRIES", "0")
    settings.cache_clear()
    down = {"down": True}
    webhook_env.receiver.behaviour = lambda path, n: 503 if down["down"] else 200
    job, _ = jobs.create_job(A, JobCreate(status="running", callback_url=webhook_env.receiver.url()))
    job = jobs.update_job(A, job["id"], JobUpdate(status="completed"))
    assert webhooks.deliver(webhooks.task_for(job)) == webhooks.DEAD_LETTERED
    down["down"] = False
    from jobsvc.storage import webhooks as store

    real_unmark = store.unmark_failed
    monkeypatch.setattr(store, "unmark_failed", lambda *a: False)  # the first call dies before taking it out
    assert webhooks.recover(A, "2000-01-01T00:00:00Z") == {"queued": 1}
    monkeypatch.setattr(store, "unmark_failed", real_unmark)
    assert webhooks.recover(A, "2000-01-01T00:00:00Z") == {"queued": 1}  # found again: nothing lost
    outcomes = [webhooks.deliver(webhooks.Task.from_message(json.dumps(m))) for m in drain(webhook_env, "WebhookQueue")]
    assert sorted(outcomes) == sorted([webhooks.DELIVERED, webhooks.DUPLICATE])
    # the operator redrives the dead letter afterwards: the event was delivered, it is not sent again
    assert redrive.redrive(webhook_env.sqs, webhook_env.urls["WebhookDeadLetterQueue"], webhook_env.urls["WebhookQueue"]) == 1
    for message in drain(webhook_env, "WebhookQueue"):
        assert webhooks.deliver(webhooks.Task.from_message(json.dumps(message))) == webhooks.DUPLICATE
    assert [r.answer for r in webhook_env.receiver.requests] == [503, 200]


def test_a_redrive_run_ends_when_what_it_moved_comes_straight_back(webhook_env):
    """A dead letter that fails again at once (a URL refused for good) lands back in the
    dead-letter queue while the run goes on: the run moves each message once and ends."""
    sqs, urls = webhook_env.sqs, webhook_env.urls
    for n in range(3):
        sqs.send_message(QueueUrl=urls["WebhookDeadLetterQueue"], MessageBody=json.dumps({"n": n}))
    import time as _time

    _time.sleep(0.01)
    real_send = sqs.send_message_batch

    def bounce(QueueUrl, Entries):  # noqa: N803 - botocore's names
        # every message sent back fails at once and is dead-lettered again
        return real_send(QueueUrl=urls["WebhookDeadLetterQueue"], Entries=Entries)

    sqs.send_message_batch = bounce
    try:
        assert redrive.redrive(sqs, urls["WebhookDeadLetterQueue"], urls["WebhookQueue"]) == 3
    finally:
        del sqs.send_message_batch
