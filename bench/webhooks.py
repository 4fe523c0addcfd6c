"""Webhook figures on the local stack.

1. Latency from the PATCH that completes a job to the receiver getting its
   webhook (stream pump -> callbacks function -> POST), median and 95th
   percentile over N jobs, one at a time.
2. DynamoDB and SQS requests per delivered webhook, counted with botocore's
   event hooks in the callbacks path: a first-attempt success, and a
   success after one failure (the retry goes through SQS).
"""
from __future__ import annotations

import contextlib
import io
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
N = int(os.environ.get("BENCH_JOBS", "100"))

from local.stack import ApiKey, LocalStack  # noqa: E402

KEY = ApiKey("jsk_bench_0123456789abcdef", "org-bench", "user-bench")


def main() -> None:
    import requests

    from tests.receiver import Receiver

    receiver = Receiver()
    with LocalStack(port=0, api_keys=[KEY]) as stack:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {KEY.key}"
        latencies = []
        for i in range(N):
            route = f"/lat-{i}"
            job = session.post(f"{stack.url}/v1/jobs", json={"status": "running", "callback_url": receiver.url(route)}).json()
            started = time.time()
            assert session.patch(f"{stack.url}/v1/jobs/{job['id']}", json={"status": "completed"}).status_code == 200
            if not receiver.wait_for(lambda: receiver.to(route), timeout=30):
                raise SystemExit(f"no webhook for job {i}")
            latencies.append(receiver.to(route)[0].at - started)
        latencies.sort()
        p95 = latencies[max(0, int(round(0.95 * len(latencies))) - 1)]
        print(f"webhook latency, PATCH -> receiver, local stack ({N} jobs, one at a time)")
        print(f"  median {1000 * statistics.median(latencies):6.1f} ms   p95 {1000 * p95:6.1f} ms   max {1000 * latencies[-1]:6.1f} ms")
        print(f"  (includes the pumps' {1000 * stack.poll_seconds:.0f} ms polling interval; AWS polls the stream about 4 times a second)")

        counts(stack, receiver)
    receiver.close()


def counts(stack: LocalStack, receiver) -> None:
    """Requests made by the callbacks path for one delivered webhook."""
    from jobsvc import jobs, queues, webhooks
    from jobsvc.config import settings
    from jobsvc.auth import Actor
    from jobsvc.schemas import JobCreate, JobUpdate
    from local.counting import count_dynamodb_requests

    for pump in stack.pumps:
        pump.stop()
    actor = Actor(KEY.organization_id, KEY.user_id)
    webhooks.get_secret(actor)
    sqs_calls: list[str] = []
    queues.botocore_client().meta.events.register("before-call.sqs", lambda model, **_: sqs_calls.append(model.name))

    queue = stack.emulator.client("sqs")

    def one(route: str, failures: int) -> tuple[list[str], list[str]]:
        receiver.behaviour = lambda p, n: 500 if p == route and n <= failures else 200
        job, _ = jobs.create_job(actor, JobCreate(status="running", callback_url=receiver.url(route)))
        job = jobs.update_job(actor, job["id"], JobUpdate(status="completed"))
        sqs_calls.clear()
        task = webhooks.task_for(job)
        with count_dynamodb_requests() as calls:
            result = webhooks.deliver(task)
            while result == webhooks.RETRYING:  # take the retry from the queue, as the SQS trigger would
                message = None
                while message is None:
                    got = queue.receive_message(QueueUrl=settings().webhook_queue_url, WaitTimeSeconds=0)
                    message = (got.get("Messages") or [None])[0]
                    time.sleep(0.05)
                queue.delete_message(QueueUrl=settings().webhook_queue_url, ReceiptHandle=message["ReceiptHandle"])
                result = webhooks.deliver(webhooks.Task.from_message(message["Body"]))
        assert result == webhooks.DELIVERED, result
        return list(calls), list(sqs_calls)

    print("requests per delivered webhook (callbacks function)")
    for label, route, failures in [("first attempt succeeds", "/count-ok", 0), ("one failure, then success", "/count-retry", 1)]:
        with contextlib.redirect_stdout(io.StringIO()):  # the metrics the path emits (a JSON line each)
            dynamodb, sqs = one(route, failures)
        print(f"  {label:<28} DynamoDB {len(dynamodb)} ({', '.join(dynamodb)})   SQS {len(sqs)} ({', '.join(sqs) or '-'})")


if __name__ == "__main__":
    main()
