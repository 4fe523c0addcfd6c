"""Retention: a terminal job, and everything stored under it, is deleted a set time after it
ended (the table's TTL, then the projector's cleanup of the REMOVE on the stream). Locally
the TTL deletes are the local stack's reaper (local/ttl.py), and LOCAL_RETENTION_SECONDS
makes the retention seconds long, which this test uses."""
from __future__ import annotations

import time

import boto3
import pytest

from jobsvc import errors, jobs, stats, webhooks
from jobsvc.auth import Actor
from jobsvc.config import settings
from jobsvc.schemas import JobCreate, JobUpdate, MessageCreate
from jobsvc.storage import layout
from local.ttl import TtlReaper
from tests.helpers import LambdaContext, load_function
from tests.integration.test_capacity import Stream
from tests.waiting import wait_until

A = Actor("org-retention", "user-r")


class Emulator:
    """moto in this process: not an embedded server, so the reaper scans."""

    def client(self, service: str):
        return boto3.client(service, region_name="us-east-1")

    def expired_keys(self, table_name: str, attribute: str, now: int) -> None:
        return None


def items_under(job: dict) -> dict[str, list]:
    client = boto3.client("dynamodb", region_name="us-east-1")
    def query(pk: str, prefix: str | None) -> list:
        if prefix is None:
            return client.query(TableName="JobsTable", KeyConditionExpression="pk = :p",
                                ExpressionAttributeValues={":p": {"S": pk}})["Items"]
        return client.query(TableName="JobsTable", KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
                            ExpressionAttributeValues={":p": {"S": pk}, ":s": {"S": prefix}})["Items"]
    key = layout.job_key(A.organization_id, job["id"])
    return {"job": query(key["pk"], key["sk"]), "children": query(layout.children_pk(job["id"]), None)}


def test_a_terminal_job_and_what_it_holds_go_after_the_retention(webhook_env, monkeypatch):
    monkeypatch.setenv("RETENTION_SECONDS", "2")
    settings.cache_clear()
    stream = Stream()
    kept, _ = jobs.create_job(A, JobCreate(status="running"))
    body = JobCreate(status="running", callback_url=webhook_env.receiver.url())
    ended, _ = jobs.create_job(A, body, idempotency_key="retention-key")
    jobs.add_message(A, ended["id"], MessageCreate(role="user", content="hello"))
    ended = jobs.update_job(A, ended["id"], JobUpdate(status="completed"))
    assert webhooks.deliver(webhooks.task_for(ended)) == webhooks.DELIVERED
    projector = load_function("projector")
    projector.lambda_handler({"Records": stream.new()}, LambdaContext())
    assert stats.read(A)["counts"]["completed"] == 1 and len(items_under(ended)["job"]) == 2  # job + webhook item

    reaper = TtlReaper(Emulator(), {"JobsTable": "ttl"}, period=1)
    wait_until(lambda: reaper.sweep(reaper.emulator.client("dynamodb"), "JobsTable", "ttl"), done=lambda n: n > 0,
               what="the TTL to delete the ended job", stall=10, poll=0.5)
    projector.lambda_handler({"Records": stream.new()}, LambdaContext())
    assert items_under(ended) == {"job": [], "children": []}  # the job, its webhook item, its message
    assert jobs.get_job(A, kept["id"])["status"] == "running"  # an active job is never expired by retention
    counts = stats.read(A)["counts"]
    assert counts["completed"] == 0 and counts["running"] == 1
    with pytest.raises(Exception):
        jobs.get_job(A, ended["id"])
    # its idempotency key (alive for 24 h) does not bring it back: a replay is refused as
    # after a delete through the API
    with pytest.raises(errors.DomainError) as refused:
        jobs.create_job(A, body, idempotency_key="retention-key")
    assert refused.value.status_code == 409


def test_retention_zero_keeps_everything(table, monkeypatch):
    monkeypatch.setenv("RETENTION_DAYS", "0")
    monkeypatch.delenv("RETENTION_SECONDS", raising=False)
    settings.cache_clear()
    job, _ = jobs.create_job(A, JobCreate(status="running"))
    jobs.update_job(A, job["id"], JobUpdate(status="completed"))
    (item,) = items_under(job)["job"]
    assert item["status"] == {"S": "completed"} and "ttl" not in item


def test_the_default_retention_is_90_days_after_completed_at(table, monkeypatch):
    monkeypatch.delenv("RETENTION_SECONDS", raising=False)
    monkeypatch.delenv("RETENTION_DAYS", raising=False)
    settings.cache_clear()
    job, _ = jobs.create_job(A, JobCreate(status="running"))
    done = jobs.update_job(A, job["id"], JobUpdate(status="failed"))
    (item,) = items_under(job)["job"]
    completed = int(time.mktime(time.strptime(done["completed_at"][:19], "%Y-%m-%dT%H:%M:%S"))) - time.timezone
    assert int(item["ttl"]["N"]) == completed + 90 * 86400
