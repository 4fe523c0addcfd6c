"""The local stack itself: a deleted job's children go (stream -> cleanup function), and
AWS_ENDPOINT_URL makes it use an AWS-compatible endpoint that already exists."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import requests

ROOT = Path(__file__).resolve().parents[2]


def test_deleting_a_job_deletes_its_messages(api, stack):
    job = api.create()
    for text in ("a", "b", "c"):
        assert api.post(f"/v1/jobs/{job['id']}/messages", json={"role": "user", "content": text}).status_code == 201
    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 200
    dynamodb = boto3.client("dynamodb", endpoint_url=stack["emulator"], region_name="us-east-1",
                            aws_access_key_id="local", aws_secret_access_key="local")

    from jobsvc.storage import layout

    def children() -> list:
        return dynamodb.query(TableName="JobsTable", KeyConditionExpression="pk = :p",
                              ExpressionAttributeValues={":p": {"S": layout.children_pk(job["id"])}})["Items"]

    deadline = time.monotonic() + 15
    while children() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert children() == []


def test_aws_endpoint_url_uses_an_existing_endpoint_and_creates_what_is_missing():
    from local.emulator import Emulator

    emulator = Emulator()
    endpoint = emulator.start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PORT": str(port), "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "local",
           "AWS_SECRET_ACCESS_KEY": "local", "LOCAL_API_KEYS": "jsk_endpoint_test_0123456789:org-e:user-e"}
    proc = subprocess.Popen([sys.executable, "-m", "local"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if line.startswith("ready:"):
                break
        assert any("(external)" in line for line in lines), lines
        headers = {"Authorization": "Bearer jsk_endpoint_test_0123456789"}
        job = requests.post(f"http://127.0.0.1:{port}/v1/jobs", json={}, headers=headers, timeout=10).json()
        got = requests.get(f"http://127.0.0.1:{port}/v1/jobs/{job['id']}", headers=headers, timeout=10)
        assert got.status_code == 200 and got.json()["status"] == "created"
        # it is in the endpoint given, not in an emulator of the stack's own
        dynamodb = emulator.client("dynamodb")
        found = dynamodb.scan(TableName="JobsTable", FilterExpression="id = :id",
                              ExpressionAttributeValues={":id": {"S": job["id"]}})["Items"]
        assert [item["status"] for item in found] == [{"S": "created"}]
        assert "WebhookQueue" in " ".join(emulator.client("sqs").list_queues()["QueueUrls"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        emulator.stop()
