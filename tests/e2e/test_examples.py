"""examples/worker.py and examples/receiver.py against the local stack: the worker's job ends
with a webhook to the receiver, which verifies it and prints the event."""
from __future__ import annotations

import base64
import json
import os
import time
from datetime import datetime, timezone

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from tests.client.e2e_fixtures import background, client_env, client_venv, example  # noqa: F401  (fixtures)
from tests.client.support import EXAMPLES_DIR, wait_for


@pytest.fixture
def receiver(background, client_venv, api):
    """examples/receiver.py on a free port, with the organization's current secret."""
    secret = api.get("/v1/webhook-secret").json()["secret"]
    env = client_venv.env("http://unused", None, WEBHOOK_SECRET=secret)
    process = background([client_venv.python, EXAMPLES_DIR / "receiver.py", "--port", "0"], env=env)
    line = process.line("listening on ")
    assert line, process.output()
    process.url = line.split()[-1]
    return process


def events_for(receiver, job_id: str) -> list[dict]:
    out = []
    for line in list(receiver.out):
        if line.startswith("{"):
            item = json.loads(line)
            if item["event"]["job_id"] == job_id:
                out.append(item)
    return out


def run_worker(background, example, client_venv, *args: str):
    return background([client_venv.python, example("worker.py"), *args])


def test_a_worker_completes_and_the_receiver_gets_the_webhook(background, example, client_venv, receiver, api, tag):
    worker = run_worker(background, example, client_venv, "--steps", "3", "--step-seconds", "0.2",
                        "--source-id", tag, "--callback-url", receiver.url + "hook")
    assert worker.wait(timeout=120) == 0, worker.output()
    job_id = worker.line("job ").split()[1]
    assert worker.line("completed: ") == f"completed: job {job_id}"
    assert [line.strip() for line in worker.out if line.startswith("step ")] == ["step 1/3 done", "step 2/3 done", "step 3/3 done"]
    job = api.job(job_id)
    assert job["status"] == "completed"
    assert job["metadata"] == {"source_id": tag, "step": 3, "steps": 3, "progress": 1.0}

    (delivered,) = wait_for(lambda: events_for(receiver, job_id), timeout=60)
    assert delivered["event"]["type"] == "job.completed" and delivered["event"]["status"] == "completed"
    assert delivered["event"]["metadata"]["progress"] == 1.0
    attempts = wait_for(lambda: api.get(f"/v1/jobs/{job_id}/callbacks").json(), timeout=60)
    assert attempts[0]["webhook_id"] == delivered["webhook_id"] and attempts[0]["succeeded"] is True
    assert attempts[0]["status_code"] == 204

    # a redelivery carries the same webhook-id: answered, not handled twice
    assert api.post(f"/v1/jobs/{job_id}/callbacks/redeliver").status_code == 202
    assert wait_for(lambda: any(f"duplicate: {delivered['webhook_id']}" in l for l in receiver.err), timeout=60)
    assert len(events_for(receiver, job_id)) == 1


def test_a_failing_worker_fails_its_job(background, example, client_venv, receiver, api):
    worker = run_worker(background, example, client_venv, "--steps", "3", "--step-seconds", "0.1", "--fail-at", "2",
                        "--callback-url", receiver.url + "hook")
    assert worker.wait(timeout=120) == 1, worker.output()
    job_id = worker.line("job ").split()[1]
    job = api.job(job_id)
    assert (job["status"], job["stop_reason"]) == ("failed", "SimulatedFailure")
    assert job["metadata"]["step"] == 1
    (delivered,) = wait_for(lambda: events_for(receiver, job_id), timeout=60)
    assert delivered["event"]["type"] == "job.failed" and delivered["event"]["stop_reason"] == "SimulatedFailure"


def test_a_worker_stops_when_its_job_is_cancelled(background, example, client_venv, receiver, api):
    worker = run_worker(background, example, client_venv, "--steps", "1000", "--step-seconds", "0.2",
                        "--heartbeat-timeout", "10", "--callback-url", receiver.url + "hook")
    job_id = worker.line("job ").split()[1]
    assert worker.line("step 1/1000 done")
    assert api.patch(f"/v1/jobs/{job_id}/cancel").status_code == 200
    assert worker.wait(timeout=120) == 0, worker.output()
    assert worker.line("stopped: ") == f"stopped: job {job_id} was cancelled"
    assert api.job(job_id)["status"] == "cancelled"
    (delivered,) = wait_for(lambda: events_for(receiver, job_id), timeout=60)
    assert delivered["event"]["type"] == "job.cancelled"


def test_the_receiver_refuses_a_delivery_signed_with_another_secret(receiver):
    forged = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    body = json.dumps({"type": "job.completed", "job_id": "job-forged"})
    at = int(time.time())
    headers = {"webhook-id": "msg_forged", "webhook-timestamp": str(at),
               "webhook-signature": Webhook(forged).sign("msg_forged", datetime.fromtimestamp(at, tz=timezone.utc), body)}
    assert requests.post(receiver.url, data=body, headers=headers, timeout=10).status_code == 400
    assert events_for(receiver, "job-forged") == []
