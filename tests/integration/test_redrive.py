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


# ---- stream batches Lambda gave up on ----------------------------------------------------------


def stream_records_of(table: str = "JobsTable") -> tuple[list[dict], dict]:
    """Every record of the table's stream so far, and where they are (arn, shard)."""
    import boto3

    arn = boto3.client("dynamodb", region_name="us-east-1").describe_table(TableName=table)["Table"]["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams", region_name="us-east-1")
    records, where = [], {}
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        page = streams.get_records(ShardIterator=iterator)
        for record in page["Records"]:
            records.append(record)
            where[record["dynamodb"]["SequenceNumber"]] = {"streamArn": arn, "shardId": shard["ShardId"]}
    return records, where


def given_up(env, function: str, records: list[dict], where: dict) -> None:
    """What Lambda sends the OnFailure destination when it skips a batch (local/pumps.py _give_up)."""
    first, last = records[0]["dynamodb"]["SequenceNumber"], records[-1]["dynamodb"]["SequenceNumber"]
    env.sqs.send_message(QueueUrl=env.urls["StreamFailureQueue"], MessageBody=json.dumps({
        "requestContext": {"requestId": "r", "functionArn": f"arn:aws:lambda:us-east-1:123456789012:function:jobs-{function}-AbC123",
                           "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 6},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0", "timestamp": "2026-11-29T18:00:00.000Z",
        "DDBStreamBatchInfo": {**where[first], "startSequenceNumber": first, "endSequenceNumber": last,
                               "approximateArrivalOfFirstRecord": "2026-11-29T18:00:00Z",
                               "approximateArrivalOfLastRecord": "2026-11-29T18:00:00Z", "batchSize": len(records)},
    }))


def test_a_callbacks_batch_given_up_is_replayed_its_webhooks_delivered_once(webhook_env):
    import boto3

    streams = boto3.client("dynamodbstreams", region_name="us-east-1")
    ended = []
    for status in ("completed", "failed"):
        job, _ = jobs.create_job(A, JobCreate(status="running", callback_url=webhook_env.receiver.url(f"/{status}")))
        ended.append(jobs.update_job(A, job["id"], JobUpdate(status=status)))
    jobs.create_job(A, JobCreate(status="running"))  # in the batch too: no webhook of its own
    records, where = stream_records_of()
    assert len(records) == 5
    given_up(webhook_env, "CallbacksFunction", records, where)

    done = redrive.replay_stream_failures(webhook_env.sqs, streams, webhook_env.urls["StreamFailureQueue"],
                                          webhook_env.urls["WebhookQueue"])
    assert done == {"batches": 1, "records": 5, "replayed": 2, "unreplayable": []}
    assert not drain(webhook_env, "StreamFailureQueue"), "a replayed batch leaves the queue"
    tasks = [webhooks.Task.from_message(json.dumps(m)) for m in drain(webhook_env, "WebhookQueue")]
    assert sorted(t.job_id for t in tasks) == sorted(j["id"] for j in ended)
    for task in tasks:
        assert webhooks.deliver(task) == webhooks.DELIVERED
        assert webhooks.deliver(task) == webhooks.DUPLICATE  # replayed twice (a crash before the delete): sent once
    assert sorted(r.path for r in webhook_env.receiver.requests) == ["/completed", "/failed"]
    for job in ended:
        assert jobs.get_job(A, job["id"])["callback_status_code"] == 200


def test_a_projector_batch_given_up_is_replayed_what_a_deleted_job_left_goes(webhook_env):
    import boto3

    from jobsvc.schemas import MessageCreate
    from jobsvc.storage import db

    streams = boto3.client("dynamodbstreams", region_name="us-east-1")
    job, _ = jobs.create_job(A, JobCreate(status="running"))
    for i in range(3):
        jobs.add_message(A, job["id"], MessageCreate(role="user", content={"i": i}))
    jobs.delete_job(A, job["id"])

    def leftovers() -> int:
        return db.call("Query", TableName="JobsTable", KeyConditionExpression="pk = :p", ConsistentRead=True,
                       ExpressionAttributeValues={":p": {"S": f"JOB#{job['id']}"}}).get("Count", 0)

    assert leftovers() == 3, "the messages are left until the projector runs"
    records, where = stream_records_of()
    removal = [r for r in records if r["eventName"] == "REMOVE"]
    given_up(webhook_env, "ProjectorFunction", removal, where)
    done = redrive.replay_stream_failures(webhook_env.sqs, streams, webhook_env.urls["StreamFailureQueue"],
                                          webhook_env.urls["WebhookQueue"])
    assert done == {"batches": 1, "records": 1, "replayed": 1, "unreplayable": []}
    assert leftovers() == 0
    assert not drain(webhook_env, "WebhookQueue")


def test_a_batch_the_stream_no_longer_has_is_reported_and_the_others_still_replayed(webhook_env):
    import boto3

    streams = boto3.client("dynamodbstreams", region_name="us-east-1")
    job, _ = jobs.create_job(A, JobCreate(status="running", callback_url=webhook_env.receiver.url("/ok")))
    jobs.update_job(A, job["id"], JobUpdate(status="completed"))
    records, where = stream_records_of()
    missing = [{**records[-1], "dynamodb": {**records[-1]["dynamodb"], "SequenceNumber": "9" * 30}}]
    given_up(webhook_env, "CallbacksFunction", missing, where | {"9" * 30: where[records[-1]["dynamodb"]["SequenceNumber"]]})
    webhook_env.sqs.send_message(QueueUrl=webhook_env.urls["StreamFailureQueue"], MessageBody="not json")
    given_up(webhook_env, "CallbacksFunction", records, where)
    done = redrive.replay_stream_failures(webhook_env.sqs, streams, webhook_env.urls["StreamFailureQueue"],
                                          webhook_env.urls["WebhookQueue"])
    assert (done["batches"], done["replayed"], len(done["unreplayable"])) == (1, 1, 2), done
    assert [m["job_id"] for m in drain(webhook_env, "WebhookQueue")] == [job["id"]]
    # the two it could not replay are still there, for the operator
    attributes = webhook_env.sqs.get_queue_attributes(QueueUrl=webhook_env.urls["StreamFailureQueue"],
                                                      AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert attributes["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "2"
