"""DynamoDB requests per API operation on the success path (deterministic counts).

Runs the real API handler with the events/ samples against moto's in-process
DynamoDB (table built from template.yaml) and counts requests with botocore's
event hooks. Budget from the issue: create 1 (also with an Idempotency-Key),
get 1, transition/update/cancel 1, list page 1, delete 1.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common")]
os.environ.update(
    AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
    TABLE_NAME="JobsTable", POWERTOOLS_LOG_LEVEL="ERROR", POWERTOOLS_TRACE_DISABLED="true",
    POWERTOOLS_METRICS_NAMESPACE="JobLifecycle",  # as template.yaml's Globals: the metrics are emitted
)
os.environ.pop("AWS_ENDPOINT_URL", None)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from local import in_process  # noqa: E402
from local.counting import count_dynamodb_requests  # noqa: E402
from local.template import Template  # noqa: E402
from tests.helpers import LambdaContext, event, load_function  # noqa: E402

SAMPLE_JOB = "job-01a222d6-3e20-7709-8ca5-2a2f43631f8a"


def main() -> None:
    in_process.install()  # moto in this process answers the service's DynamoDB requests
    # the metrics the API emits (a line of JSON each on stdout, as in Lambda) are not the table's
    with mock_aws(), contextlib.redirect_stdout(io.StringIO()):
        client = boto3.client("dynamodb", region_name="us-east-1")
        for definition in Template().table_definitions():
            client.create_table(**definition["create"])
        api = load_function("api")
        context = LambdaContext()
        rows: list[tuple[str, int, list[str], int]] = []

        def run(label: str, ev: dict) -> dict:
            with count_dynamodb_requests() as calls:
                response = api.lambda_handler(ev, context)
            rows.append((label, response["statusCode"], list(calls), len(calls)))
            return json.loads(response["body"]) if response.get("body") else {}

        def on_job(name: str, job_id: str, body: dict | None = None) -> dict:
            ev = json.loads(json.dumps(event(name)).replace(SAMPLE_JOB, job_id))
            if body is not None:
                ev["body"] = json.dumps(body)
            return ev

        plain = event("api_create_job")
        plain["headers"].pop("idempotency-key")
        running = dict(plain, body=json.dumps({"status": "running", "metadata": {"source_id": "agent-7"}}))
        job = run("create (running)", running)
        run("create with Idempotency-Key", event("api_create_job"))
        run("create, replayed Idempotency-Key", event("api_create_job"))
        for _ in range(20):
            api.lambda_handler(plain, context)
        run("get", on_job("api_get_job", job["id"]))
        run("update (metadata merge + heartbeat)", on_job("api_update_job", job["id"], {"metadata": {"k": 1}}))
        run("transition running -> completed", on_job("api_update_job", job["id"], {"status": "completed"}))
        run("transition refused (409)", on_job("api_update_job", job["id"], {"status": "failed"}))
        second = run("create", plain)
        run("cancel", on_job("api_cancel_job", second["id"]))
        listing = event("api_list_jobs")
        for label, query in [
            ("list page (limit 3)", {"limit": "3"}),
            ("list page (limit 50, status)", {"status": "running"}),
            ("list page (active, asc)", {"active": "true", "order": "asc", "limit": "10"}),
            ("list page (source_id)", {"source_id": "agent-7"}),
            ("list page (status + job_type)", {"status": "running", "job_type": "run", "limit": "5"}),
        ]:
            listing["queryStringParameters"] = query
            run(label, dict(listing))
        run("delete", on_job("api_delete_job", job["id"]))
        run("append message", on_job("api_add_message", second["id"]))
        run("list messages", on_job("api_list_messages", second["id"]))

    print("DynamoDB requests per API operation")
    for label, status, calls, count in rows:
        print(f"  {label:<38} {status}  {count}  {', '.join(calls)}")


if __name__ == "__main__":
    main()
