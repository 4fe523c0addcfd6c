"""The real handlers, called with the events/ samples against moto's DynamoDB."""
from __future__ import annotations

import json

import pytest

from jobsvc import auth
from tests.helpers import count_dynamodb_requests, event, load_function


def call(fn, ev, context):
    response = fn.lambda_handler(ev, context)
    body = json.loads(response["body"]) if response.get("body") else None
    return response["statusCode"], body, response.get("headers") or {}


def with_job(ev: dict, job_id: str) -> dict:
    ev["pathParameters"]["job_id"] = job_id
    ev["rawPath"] = ev["rawPath"].replace("job-01a222d6-3e20-7709-8ca5-2a2f43631f8a", job_id)
    ev["requestContext"]["http"]["path"] = ev["rawPath"]
    return ev


def create(api_fn, context, body: dict | None = None) -> dict:
    ev = event("api_create_job")
    ev["headers"].pop("idempotency-key")
    ev["body"] = json.dumps(body if body is not None else {})
    status, job, _ = call(api_fn, ev, context)
    assert status == 201, job
    return job


def test_health_sample(table, api_fn, context):
    assert call(api_fn, event("api_health"), context)[:2] == (200, {"status": "ok"})


def test_create_sample_is_idempotent(table, api_fn, context):
    status, job, headers = call(api_fn, event("api_create_job"), context)
    assert status == 201
    assert job["job_type"] == "run" and job["metadata"]["source_id"] == "agent-7"
    assert job["organization_id"] == "org-sample" and job["user_id"] == "user-sample"
    assert "Idempotent-Replayed" not in headers
    status, again, headers = call(api_fn, event("api_create_job"), context)
    assert status == 201 and again == job
    assert headers.get("Idempotent-Replayed") == "true"


def test_every_sample_route(table, api_fn, context):
    """Each sample event does what its route says, in order: read, update, add and list a
    message, cancel, delete; then the job is gone."""
    job = create(api_fn, context, {"metadata": {"kept": True}})
    answers = {}
    for name, expected in [
        ("api_get_job", 200), ("api_update_job", 200), ("api_add_message", 201),
        ("api_list_messages", 200), ("api_cancel_job", 200), ("api_delete_job", 200),
    ]:
        status, body, _ = call(api_fn, with_job(event(name), job["id"]), context)
        assert status == expected, (name, body)
        answers[name] = body
    assert answers["api_get_job"] == job
    updated = answers["api_update_job"]  # the sample: {"status": "pending", "metadata": {"step": 1}}
    assert (updated["id"], updated["status"], updated["metadata"]) == (job["id"], "pending", {"kept": True, "step": 1})
    message = answers["api_add_message"]  # the sample: {"role": "user", "content": "hello"}
    assert (message["job_id"], message["role"], message["content"]) == (job["id"], "user", "hello")
    assert answers["api_list_messages"] == [message]
    cancelled = answers["api_cancel_job"]
    assert (cancelled["status"], cancelled["stop_reason"], cancelled["metadata"]) == ("cancelled", "cancelled", updated["metadata"])
    assert cancelled["completed_at"] is not None
    assert answers["api_delete_job"] == cancelled, "delete answers the job as it was"
    for name in ("api_get_job", "api_update_job", "api_add_message", "api_list_messages", "api_cancel_job", "api_delete_job"):
        status, body, _ = call(api_fn, with_job(event(name), job["id"]), context)
        assert status == 404 and body["detail"], (name, status, body)


def test_list_sample(table, api_fn, context):
    ids = [create(api_fn, context)["id"] for _ in range(4)]
    status, jobs, _ = call(api_fn, event("api_list_jobs"), context)  # limit=3, asc, active
    assert status == 200
    assert [j["id"] for j in jobs] == ids[:3]


def test_unauthenticated_sample_is_401(table, api_fn, context):
    status, body, headers = call(api_fn, event("api_unauthenticated"), context)
    assert status == 401 and body["detail"]
    assert headers.get("WWW-Authenticate") == "Bearer"


def test_authorizer_maps_a_key_to_its_actor(table, authorizer_fn, context):
    auth.create_key("org-sample", "user-sample", key="jsk_sample_key_0123456789")
    decision = authorizer_fn.lambda_handler(event("authorizer"), context)
    assert decision == {"isAuthorized": True, "context": {"organization_id": "org-sample", "user_id": "user-sample"}}


@pytest.mark.parametrize("header", [None, "Bearer jsk_unknown_key_0123456789", "Basic dXNlcjpwYXNz", "Bearer short"])
def test_authorizer_gives_no_actor_to_bad_keys(table, authorizer_fn, api_fn, context, header):
    auth.create_key("org-sample", "user-sample", key="jsk_sample_key_0123456789")
    ev = event("authorizer")
    if header is None:
        ev["headers"].pop("authorization")
    else:
        ev["headers"]["authorization"] = header
    decision = authorizer_fn.lambda_handler(ev, context)
    assert "organization_id" not in decision["context"] and decision["context"]["error"]
    # and the API refuses a request that carries that context
    api_event = event("api_list_jobs")
    api_event["requestContext"]["authorizer"] = {"lambda": decision["context"]}
    status, body, _ = call(api_fn, api_event, context)
    assert status == 401 and body["detail"] == decision["context"]["error"]


def test_revoked_key_is_refused(table, authorizer_fn, context):
    key = auth.create_key("org-sample", "user-sample")
    ev = event("authorizer")
    ev["headers"]["authorization"] = f"Bearer {key}"
    assert authorizer_fn.lambda_handler(ev, context)["context"].get("organization_id") == "org-sample"
    assert auth.revoke_key(key)
    assert "organization_id" not in authorizer_fn.lambda_handler(ev, context)["context"]
    assert not auth.revoke_key(key)


# ---- DynamoDB requests per operation (the budget; deterministic) ------------

def test_requests_per_operation(table, api_fn, context):
    ev = event("api_create_job")
    ev["headers"].pop("idempotency-key")
    with count_dynamodb_requests() as calls:
        status, job, _ = call(api_fn, ev, context)
    assert status == 201 and calls == ["PutItem"]

    with count_dynamodb_requests() as calls:
        status, _, _ = call(api_fn, event("api_create_job"), context)  # with an Idempotency-Key
    assert status == 201 and calls == ["PutItem", "PutItem"]  # the key's record, then the job

    for name, expected in [
        ("api_get_job", ["Query"]),  # the job and its webhook state, together
        ("api_update_job", ["UpdateItem"]),
        ("api_cancel_job", ["UpdateItem"]),
        ("api_delete_job", ["DeleteItem"]),
    ]:
        with count_dynamodb_requests() as calls:
            status, body, _ = call(api_fn, with_job(event(name), job["id"]), context)
        assert status == 200, body
        assert calls == expected, name

    for _ in range(5):
        create(api_fn, context)
    ev = event("api_list_jobs")
    ev["queryStringParameters"] = {"limit": "3"}
    with count_dynamodb_requests() as calls:
        status, jobs, _ = call(api_fn, ev, context)
    assert status == 200 and len(jobs) == 3 and calls == ["Query"] * 8  # the organization's 8 partitions


def test_failed_transition_costs_one_request(table, api_fn, context):
    job = create(api_fn, context)
    ev = with_job(event("api_update_job"), job["id"])
    ev["body"] = json.dumps({"status": "completed"})
    with count_dynamodb_requests() as calls:
        status, body, _ = call(api_fn, ev, context)
    assert status == 409 and body["current_status"] == "created"
    assert calls == ["UpdateItem"]


# ---- the callbacks and scheduler functions with their samples -----------------------------


def test_callbacks_function_with_the_stream_sample(webhook_env, context):
    """The sample's job is not in the table: the record is skipped cleanly (no failure reported)."""
    fn = load_function("callbacks")
    assert fn.lambda_handler(event("callbacks_stream"), context) == {"batchItemFailures": []}
    assert webhook_env.receiver.requests == []


def test_callbacks_function_reports_a_broken_queue_message_as_a_failure(webhook_env, context):
    fn = load_function("callbacks")
    ev = event("callbacks_sqs")
    good = json.loads(json.dumps(ev["Records"][0]))
    broken = dict(good, messageId="broken-1", body="not json")
    ev["Records"] = [good, broken]
    assert fn.lambda_handler(ev, context) == {"batchItemFailures": [{"itemIdentifier": "broken-1"}]}


def test_callbacks_function_delivers_a_queued_retry(webhook_env, context):
    from jobsvc import jobs, webhooks
    from jobsvc.auth import Actor
    from jobsvc.schemas import JobCreate, JobUpdate

    fn = load_function("callbacks")
    actor = Actor("org-sample", "user-sample")
    job, _ = jobs.create_job(actor, JobCreate(status="running", callback_url=webhook_env.receiver.url()))
    job = jobs.update_job(actor, job["id"], JobUpdate(status="completed"))

    ev = event("callbacks_sqs")
    ev["Records"][0]["body"] = json.dumps(webhooks.task_for(job).message())
    assert fn.lambda_handler(ev, context) == {"batchItemFailures": []}
    assert len(webhook_env.receiver.requests) == 1


def test_scheduler_function_with_its_sample(table, context):
    fn = load_function("scheduler")
    report = fn.lambda_handler(event("scheduler"), context)
    assert report["ran"] is True and report["polled"] == 0 and report["expired"] == 0


def test_projector_function_deletes_what_a_deleted_job_leaves(table, api_fn, context):
    """A REMOVE of a job on the stream deletes its messages (and any other child item)."""
    import boto3

    from jobsvc.storage import layout

    fn = load_function("projector")
    client = boto3.client("dynamodb", region_name="us-east-1")
    job = create(api_fn, context)
    for text in ("one", "two"):
        ev = with_job(event("api_add_message"), job["id"])
        ev["body"] = json.dumps({"role": "user", "content": text})
        assert call(api_fn, ev, context)[0] == 201
    other = create(api_fn, context)
    ev = with_job(event("api_add_message"), other["id"])
    assert call(api_fn, ev, context)[0] == 201
    keys = {k: {"S": v} for k, v in layout.job_key("org-sample", job["id"]).items()}
    old_image = client.get_item(TableName="JobsTable", Key=keys)["Item"]
    assert call(api_fn, with_job(event("api_delete_job"), job["id"]), context)[0] == 200
    removed = {"Records": [{"eventID": "1", "eventName": "REMOVE", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
                            "awsRegion": "us-east-1", "dynamodb": {"Keys": keys, "OldImage": old_image, "SequenceNumber": "1"},
                            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/JobsTable/stream/x"}]}
    assert fn.lambda_handler(removed, context) == {"batchItemFailures": []}
    left = client.query(TableName="JobsTable", KeyConditionExpression="pk = :p",
                        ExpressionAttributeValues={":p": {"S": layout.children_pk(job["id"])}})["Items"]
    kept = client.query(TableName="JobsTable", KeyConditionExpression="pk = :p",
                        ExpressionAttributeValues={":p": {"S": layout.children_pk(other["id"])}})["Items"]
    assert left == [] and len(kept) == 1
