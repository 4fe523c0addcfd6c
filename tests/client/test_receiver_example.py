"""examples/receiver.py as a process: verifies deliveries signed by standardwebhooks, answers
at once, deduplicates on webhook-id, accepts either signature during a rotation."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from tests.client.support import EXAMPLES_DIR, wait_for

OLD = "whsec_" + base64.b64encode(os.urandom(32)).decode()
NEW = "whsec_" + base64.b64encode(os.urandom(32)).decode()


class Process:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        threading.Thread(target=lambda: self.out.extend(iter(self.proc.stdout.readline, "")), daemon=True).start()
        threading.Thread(target=lambda: self.err.extend(iter(self.proc.stderr.readline, "")), daemon=True).start()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_receiver(*secrets: str, extra: tuple = ()) -> tuple[Process, str]:
    env = {**os.environ, "WEBHOOK_SECRET": ",".join(secrets), "PYTHONUNBUFFERED": "1"}
    process = Process([sys.executable, str(EXAMPLES_DIR / "receiver.py"), "--port", "0", *extra], env)
    line = wait_for(lambda: next((l for l in process.out if l.startswith("listening on ")), None), timeout=30)
    assert line, process.err
    return process, line.split()[-1].rstrip("/")


@pytest.fixture
def receiver():
    process, url = start_receiver(NEW)
    yield process, url
    process.stop()


def event(job_id: str = "job-1") -> str:
    return json.dumps({"type": "job.completed", "job_id": job_id, "status": "completed", "metadata": {}})


def send(url: str, body: str, secrets=(NEW,), msg_id: str = "msg_1", at: float | None = None) -> requests.Response:
    at = int(time.time() if at is None else at)
    stamp = datetime.fromtimestamp(at, tz=timezone.utc)
    headers = {
        "webhook-id": msg_id, "webhook-timestamp": str(at),
        "webhook-signature": " ".join(Webhook(s).sign(msg_id, stamp, body) for s in secrets),
        "content-type": "application/json",
    }
    return requests.post(url + "/hook", data=body.encode(), headers=headers, timeout=10)


def events(process: Process) -> list[dict]:
    return [json.loads(line) for line in process.out if line.startswith("{")]


def test_a_genuine_delivery_is_answered_and_printed(receiver):
    process, url = receiver
    body = event("job-a")
    response = send(url, body, msg_id="msg_a")
    assert response.status_code == 204
    assert wait_for(lambda: events(process), timeout=30) == [{"webhook_id": "msg_a", "event": json.loads(body)}]


def test_a_redelivery_is_answered_but_handled_once(receiver):
    process, url = receiver
    for _ in range(3):
        assert send(url, event("job-b"), msg_id="msg_b").status_code == 204
    assert send(url, event("job-c"), msg_id="msg_c").status_code == 204
    assert wait_for(lambda: len(events(process)) == 2, timeout=30)
    assert [e["webhook_id"] for e in events(process)] == ["msg_b", "msg_c"]
    assert wait_for(lambda: sum("duplicate: msg_b" in l for l in process.err) == 2, timeout=30)


@pytest.mark.parametrize("case", ["wrong secret", "tampered", "too old", "too new", "no signature"])
def test_bad_deliveries_are_refused(receiver, case):
    process, url = receiver
    body = event()
    if case == "wrong secret":
        response = send(url, body, secrets=(OLD,))
    elif case == "tampered":
        at = int(time.time())
        headers = {"webhook-id": "m", "webhook-timestamp": str(at),
                   "webhook-signature": Webhook(NEW).sign("m", datetime.fromtimestamp(at, tz=timezone.utc), body)}
        response = requests.post(url, data=body.replace("completed", "failed").encode(), headers=headers, timeout=10)
    elif case == "too old":
        response = send(url, body, at=time.time() - 301)
    elif case == "too new":
        response = send(url, body, at=time.time() + 301)
    else:
        response = requests.post(url, data=body.encode(), headers={"webhook-id": "m", "webhook-timestamp": str(int(time.time()))}, timeout=10)
    assert response.status_code == 400
    assert wait_for(lambda: any(l.startswith("rejected:") for l in process.err), timeout=30)
    assert events(process) == []


def test_during_a_rotation_either_signature_verifies():
    # the service signs with the old and the new secret; this receiver knows only the new one
    process, url = start_receiver(NEW)
    try:
        assert send(url, event(), secrets=(OLD, NEW), msg_id="msg_r1").status_code == 204
        assert send(url, event(), secrets=(OLD,), msg_id="msg_r2").status_code == 400
    finally:
        process.stop()
    # one that still has only the old secret, or both
    for secrets in ((OLD,), (OLD, NEW)):
        process, url = start_receiver(*secrets)
        try:
            assert send(url, event(), secrets=(OLD, NEW), msg_id="msg_r3").status_code == 204
            assert wait_for(lambda: events(process), timeout=30)
        finally:
            process.stop()


def test_a_tolerance_can_be_set():
    process, url = start_receiver(NEW, extra=("--tolerance", "10"))
    try:
        assert send(url, event(), at=time.time() - 60).status_code == 400
    finally:
        process.stop()
