"""Fault soak: a few hundred jobs with webhooks and a few batches on a local stack that fails a
fraction of its DynamoDB and SQS requests (throttling and 5xx) and kills Lambda instances in the
middle of invocations (``LOCAL_FAULTS``), with receivers that answer, fail, trickle, reset or do
not resolve. Then:

- clients saw no 5xx but the service's ``503`` with a ``detail`` (retried, as a client should)
  and API Gateway's own ``500 {"message"}`` for an instance killed under a request (the
  platform's answer: counted, reported, and a retry must then succeed);
- every job is in the status its lifecycle leads to, and its history is a path of the state
  machine (``from`` chaining, each step allowed, the last one the job's status);
- every terminal job with a callback has its webhook delivered (the receiver answered 2xx to its
  ``webhook-id``) or dead-lettered, and no webhook announced another status than the job's;
- every batch ended, in the status its requests lead to, with all its items;
- the dead letters, once the failing receivers answer 200 again, are delivered: redriven with
  the operator command (``python -m jobsvc.redrive --dlq URL --queue URL``), and what is left
  recovered with ``POST /v1/callbacks/recover``.

Faults run all along (they are set at start); every wait is on progress (``tests.waiting``),
with the whole module under a hard cap (``CAP_SECONDS``). Its stack is its own (faults would
break the other tests). The workload is reproducible in what it asks (seeded); the interleaving
of threads, and so which request meets which fault, is not.

A summary of what happened (answers by class, kills, dead letters, recoveries) is printed at the
end of each test (``-rP`` shows it) and written to ``tests/artifacts/soak_faults.json``.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
import requests
from botocore.config import Config

from tests.contract import ACTIVE, STATUSES, TERMINAL, TRANSITIONS, next_link
from tests.e2e.conftest import KEYS
from tests.e2e.own_stack import ROOT, own_stack
from tests.receiver import Receiver
from tests.waiting import wait_until

#: run by `make soak`, not by `make test`: minutes of faults on a stack of its own
pytestmark = pytest.mark.soak

SEED = 20261128
FAULTS = f"dynamodb=0.03,sqs=0.03,kill=0.02,seed={SEED}"
#: the webhook schedule shortened so that retries end quickly: 1 s, 2 s, 2 s, then the DLQ
PARAMETERS = "WebhookFirstRetrySeconds=1,WebhookMaxRetryDelaySeconds=2,WebhookMaxRetries=3"
ATTEMPTS_PER_ROUND = 1 + 3
JOBS = 250
THREADS = 6
#: the hard cap on the whole module (stack start to the last check)
CAP_SECONDS = 25 * 60
#: a wait fails after this long without progress. A sender killed in the middle of an attempt
#: holds its delivery under a 120 s lease (README, "Delivery guarantees"), which a later claim
#: takes over; an instance killed with a batch of retries keeps those messages invisible for
#: the retry queue's visibility timeout, as in AWS: a silence of up to that long is legitimate.
WEBHOOK_STALL = 60.0 + max(120.0, float(
    __import__("local.template", fromlist=["Template"]).Template().resources["WebhookQueue"]["Properties"]["VisibilityTimeout"]))
#: the scheduler (batch polls, the sweep) runs every second here; a run killed in the middle
#: holds the scheduler's lease (SCHEDULER_LEASE_SECONDS, 330 s) until it expires
SCHEDULE_STALL = 60.0
#: how long the webhooks must stay unchanged to be taken as settled
QUIET = 6.0
#: how often one request is tried (503 with detail, API Gateway's 500, connection errors)
TRIES = 8
USERS = {"a": KEYS["a"], "c": KEYS["c"]}  # two users of organization alpha
ITEM_STATUS = {"succeeded": "completed", "errored": "failed", "canceled": "cancelled", "expired": "expired"}

STARTED = time.monotonic()


def capped(what: str) -> None:
    if time.monotonic() - STARTED > CAP_SECONDS:
        raise AssertionError(f"the soak passed its cap of {CAP_SECONDS} s while waiting for {what}")


def wait(check: Callable[[], Any], *, what: str, done: Callable[[Any], Any] = bool, stall: float = 30.0) -> Any:
    """``tests.waiting.wait_until`` under the module's cap, polling gently (up to every 2 s: the
    emulator answers one request at a time and is busy enough)."""

    def checked() -> Any:
        capped(what)
        return check()

    return wait_until(checked, what=what, done=done, stall=stall, poll=0.2, max_poll=2.0)


# ---- clients: every answer recorded ----------------------------------------------------------


@dataclass
class Answer:
    status: int | None
    body: Any
    headers: dict[str, str]
    #: statuses of the earlier tries of this request (503s, API Gateway's 500s...)
    earlier: list[int | None] = field(default_factory=list)

    @property
    def after_platform_error(self) -> bool:
        return 500 in self.earlier


class Ledger:
    """Every answer every client got, classified."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answers: Counter = Counter()  # (method, route, status) -> n
        self.busy = 0  # 503 with a detail: the service's "retry later"
        self.platform = 0  # API Gateway's own 500 {"message": ...}: an instance died under the request
        self.connection = 0
        self.failures: list[str] = []  # everything a client must never see, with the request

    def fail(self, text: str) -> None:
        with self.lock:
            self.failures.append(text)


LEDGER = Ledger()


def route_of(path: str) -> str:
    parts = ["{id}" if p.startswith("job-") else p for p in urlsplit(path).path.split("/")]
    return "/".join(parts)


class Client:
    """A client of one API key: retries a 503 with a detail (the service's honest "busy"), API
    Gateway's 500 (an instance killed under the request) and connection errors, with backoff
    and jitter; records every answer in the ledger. One session per thread."""

    def __init__(self, base: str, key: str, user: str) -> None:
        self.base, self.key, self.user = base, key, user
        self.local = threading.local()

    @property
    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
            self.local.session.headers["Authorization"] = f"Bearer {self.key}"
        return self.local.session

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             params: dict | None = None) -> Answer:
        earlier: list[int | None] = []
        answer = Answer(None, None, {})
        route = route_of(path)
        for attempt in range(TRIES):
            if attempt:
                time.sleep(random.uniform(0, min(4.0, 0.25 * 2 ** attempt)))
            try:
                response = self.session.request(method, self.base + path, json=body, headers=headers,
                                                params=params, timeout=60)
            except requests.RequestException as exc:
                with LEDGER.lock:
                    LEDGER.connection += 1
                LEDGER.fail(f"{method} {path}: no answer: {exc!r}")
                earlier.append(None)
                continue
            try:
                parsed = response.json()
            except ValueError:
                parsed = None
                LEDGER.fail(f"{method} {path} {body!r}: {response.status_code} answer is not JSON: {response.text[:200]!r}")
            answer = Answer(response.status_code, parsed, {k.lower(): v for k, v in response.headers.items()}, list(earlier))
            with LEDGER.lock:
                LEDGER.answers[(method, route, response.status_code)] += 1
            if response.status_code < 500:
                return answer
            if response.status_code == 503 and isinstance(parsed, dict) and isinstance(parsed.get("detail"), str):
                with LEDGER.lock:
                    LEDGER.busy += 1
            elif response.status_code == 500 and parsed == {"message": "Internal Server Error"}:
                with LEDGER.lock:
                    LEDGER.platform += 1
            else:
                LEDGER.fail(f"{method} {path} {json.dumps(body)[:300] if body is not None else ''}: "
                            f"{response.status_code} {response.text[:300]}")
            earlier.append(response.status_code)
        LEDGER.fail(f"{method} {path}: still {answer.status} after {TRIES} tries ({earlier})")
        return answer


# ---- receivers ------------------------------------------------------------------------------


class Behaviours:
    """What the receiver answers, by path: ``/ok/...`` 200; ``/flaky/<k>/...`` fails the first
    ``k`` requests (500, 503, 429, a closed connection), then 200; ``/down/...`` 500;
    ``/reset/...`` a TCP reset; ``/trickle/...`` a 200 whose body takes 7 s (past the 5 s limit).
    ``healed``: every path answers 200 (the receivers are fixed before the dead letters are
    redriven)."""

    FLAKY = (500, 503, "close", 429)

    def __init__(self) -> None:
        self.healed = False

    def __call__(self, path: str, n: int) -> Any:
        kind = path.split("/")[1]
        if self.healed or kind == "ok":
            return 200
        if kind == "flaky":
            k = int(path.split("/")[2])
            return self.FLAKY[(n - 1) % len(self.FLAKY)] if n <= k else 200
        if kind == "down":
            return 500
        if kind == "reset":
            return "reset"
        if kind == "trickle":
            return ("trickle", 0.7, 200)
        return 404


def delivered(request) -> bool:
    return isinstance(request.answer, int) and 200 <= request.answer < 300


# ---- the workload ---------------------------------------------------------------------------


@dataclass
class Tracked:
    index: int
    plan: str
    target: str  # what its callback does: ok, flaky, down, reset, trickle, unresolvable, none
    user: str
    id: str | None = None
    callback_url: str | None = None
    #: the statuses the job may end in (checked after the soak); a set: races and kills
    expected: set[str] = field(default_factory=set)
    #: who makes its last transition: "user" or "system:sweep"
    ended_by: str = "user"
    deleted: bool = False
    notes: list[str] = field(default_factory=list)
    #: for a job the sweep ends: when it becomes due (RFC 3339), as the service answered
    due: str | None = None
    #: when its last transition happened (its history's last entry)
    ended_at: str | None = None


PLANS = {  # plan -> weight
    "complete": 28, "fail": 12, "cancel": 16, "expire": 7, "race": 8,
    "heartbeat": 6, "expiry": 5, "active": 8, "delete": 5,
}
TARGETS = {"ok": 45, "flaky": 20, "down": 9, "reset": 5, "trickle": 2, "unresolvable": 4, "none": 15}


def plan_jobs() -> list[Tracked]:
    rng = random.Random(SEED)
    jobs = []
    for i in range(JOBS):
        plan = rng.choices(list(PLANS), weights=list(PLANS.values()))[0]
        target = "none" if plan == "delete" else rng.choices(list(TARGETS), weights=list(TARGETS.values()))[0]
        jobs.append(Tracked(i, plan, target, rng.choice(list(USERS))))
    return jobs


class Soak:
    def __init__(self, stack: dict, receiver: Receiver) -> None:
        self.stack = stack
        self.base = stack["base"]
        self.receiver = receiver
        self.clients = {name: Client(self.base, key, user) for name, (key, _org, user) in USERS.items()}
        self.api = self.clients["a"]
        self.jobs = plan_jobs()
        self.batches: list[dict] = []
        self.started_at = datetime.now(timezone.utc)
        self.summary: dict[str, Any] = {}

    # -- one request with its expected answers --

    def expect(self, who: Tracked, answer: Answer, allowed: set[int], what: str) -> Answer:
        if answer.status not in allowed:
            LEDGER.fail(f"job {who.index} ({who.plan}, {who.id}): {what}: expected {sorted(allowed)}, "
                        f"got {answer.status} {json.dumps(answer.body)[:300]}")
        return answer

    def transition(self, job: Tracked, client: Client, target: str, path_suffix: str = "", **extra: Any) -> Answer:
        """PATCH a job to ``target`` (``path_suffix="/cancel"`` for a cancel). A 409 whose
        current_status is the target after an earlier API Gateway 500 is the write that the killed
        instance made before it died: applied."""
        body = None if path_suffix else {"status": target, **extra}
        answer = client.call("PATCH", f"/v1/jobs/{job.id}{path_suffix}", body)
        if answer.status == 409 and answer.after_platform_error and (answer.body or {}).get("current_status") == target:
            job.notes.append(f"{target}: applied by a killed instance, then 409")
            return answer
        return self.expect(job, answer, {200}, f"PATCH {target}")

    def create(self, job: Tracked, client: Client, rng: random.Random, **body: Any) -> dict:
        key = f"soak-{SEED}-{job.index}"
        if job.target == "unresolvable":
            job.callback_url = Receiver.unresolvable_url(f"/unresolvable/{job.index}")
        elif job.target != "none":
            kind = f"flaky/{rng.choice((1, 2))}" if job.target == "flaky" else job.target
            job.callback_url = self.receiver.url(f"/{kind}/{job.index}")
        body = {"metadata": {"source_id": f"soak-{job.plan}", "index": job.index}, **body}
        if job.callback_url:
            body["callback_url"] = job.callback_url
        answer = self.expect(job, client.call("POST", "/v1/jobs", body, headers={"Idempotency-Key": key}), {201}, "create")
        created = answer.body or {}
        job.id = created.get("id")
        if job.id and rng.random() < 0.15:  # the same create again: the same job, replayed
            again = self.expect(job, client.call("POST", "/v1/jobs", body, headers={"Idempotency-Key": key}), {201}, "replayed create")
            if (again.body or {}).get("id") != job.id or again.headers.get("idempotent-replayed") != "true":
                LEDGER.fail(f"job {job.index}: a replayed create answered {again.status} {again.headers.get('idempotent-replayed')} "
                            f"{json.dumps(again.body)[:200]} instead of job {job.id}")
        return created

    def walk(self, job: Tracked, client: Client, rng: random.Random, path: list[str]) -> None:
        for step in path:
            self.transition(job, client, step)

    def illegal(self, job: Tracked, client: Client, current: str) -> None:
        """A transition the table refuses: 409 with the current status, nothing changes."""
        refused = sorted(set(STATUSES) - TRANSITIONS[current] - {current})
        target = refused[job.index % len(refused)]
        answer = self.expect(job, client.call("PATCH", f"/v1/jobs/{job.id}", {"status": target}), {409}, f"illegal {current}->{target}")
        if answer.status == 409 and (answer.body or {}).get("current_status") != current:
            LEDGER.fail(f"job {job.index}: illegal {current}->{target}: 409 names {answer.body}, the job is {current}")

    def run_job(self, job: Tracked) -> None:
        rng = random.Random(SEED * 1000 + job.index)
        client = self.clients[job.user]
        other = self.clients["c" if job.user == "a" else "a"]
        plan = job.plan
        if plan == "heartbeat":  # running, then silent: the sweep fails it
            created = self.create(job, client, rng, status="running", heartbeat_timeout_seconds=10)
            job.due = shift(created.get("last_updated_at"), 10)
            if job.id:
                beat = self.expect(job, client.call("PATCH", f"/v1/jobs/{job.id}", {"metadata": {"beat": 1}}), {200}, "heartbeat")
                job.due = shift((beat.body or {}).get("last_updated_at"), 10) or job.due
            job.expected, job.ended_by = {"failed"}, "system:sweep"
            return
        if plan == "expiry":  # never started: the sweep expires it
            created = self.create(job, client, rng, status=rng.choice(("created", "pending")), expires_in_seconds=60)
            job.due = created.get("expires_at")
            job.expected, job.ended_by = {"expired"}, "system:sweep"
            return
        initial = rng.choice(("created", "pending", "running"))
        if plan == "expire":
            initial = rng.choice(("created", "pending"))
        self.create(job, client, rng, status=initial)
        if not job.id:
            return
        if rng.random() < 0.3:
            self.illegal(job, client, initial)
        if rng.random() < 0.3:
            self.expect(job, client.call("POST", f"/v1/jobs/{job.id}/messages", {"role": "user", "content": f"hello {job.index}"}),
                        {201}, "message")
        to_running = {"created": ["pending", "running"], "pending": ["running"], "running": []}[initial]
        if plan == "active":
            steps = to_running[: rng.randint(0, len(to_running))]
            self.walk(job, rng.choice((client, other)), rng, steps)
            job.expected = {steps[-1] if steps else initial}
            return
        if plan == "expire":
            self.transition(job, client, "expired")
            job.expected = {"expired"}
        elif plan == "cancel":
            self.walk(job, client, rng, to_running[: rng.randint(0, len(to_running))])
            self.transition(job, other, "cancelled", "/cancel")
            job.expected = {"cancelled"}
        elif plan == "race":  # completed and cancelled at once: one wins, the other is refused
            self.walk(job, client, rng, to_running)
            barrier = threading.Barrier(2)
            answers: dict[str, Answer] = {}

            def racer(name: str, call: Callable[[], Answer]) -> None:
                barrier.wait(timeout=30)
                answers[name] = call()

            threads = [
                threading.Thread(target=racer, args=("completed", lambda: client.call("PATCH", f"/v1/jobs/{job.id}", {"status": "completed"})))
                , threading.Thread(target=racer, args=("cancelled", lambda: other.call("PATCH", f"/v1/jobs/{job.id}/cancel")))
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=600)
            winners = [name for name, a in answers.items() if a.status == 200]
            for name, a in answers.items():
                self.expect(job, a, {200, 409}, f"race {name}")
            if len(winners) != 1 and not any(a.after_platform_error for a in answers.values()):
                LEDGER.fail(f"job {job.index} ({job.id}): race completed/cancelled: {len(winners)} winners "
                            f"{ {n: (a.status, a.body) for n, a in answers.items()} }")
            job.expected = set(winners) if len(winners) == 1 else {"completed", "cancelled"}
            job.notes.append(f"race won by {winners}")
        else:  # complete, fail, delete
            self.walk(job, client, rng, to_running)
            self.expect(job, client.call("PATCH", f"/v1/jobs/{job.id}", {"metadata": {"step": 1, "note": "x" * rng.randint(0, 200)}}),
                        {200}, "heartbeat")
            final = "failed" if plan == "fail" else "completed"
            extra = {"stop_reason": "boom"} if final == "failed" else {"ttft_ns": 1000 + job.index}
            done = self.transition(job, other, final, **extra)
            job.expected = {final}
            if rng.random() < 0.3 and done.status == 200:  # a retried "completed": 200, nothing changes
                again = self.expect(job, client.call("PATCH", f"/v1/jobs/{job.id}", {"status": final}), {200}, "repeat")
                if again.status == 200 and (again.body or {}).get("completed_at") != (done.body or {}).get("completed_at"):
                    LEDGER.fail(f"job {job.index}: a repeated {final} changed completed_at: {done.body} -> {again.body}")
        if rng.random() < 0.2:  # anything else on a terminal job is refused
            answer = self.expect(job, client.call("PATCH", f"/v1/jobs/{job.id}", {"metadata": {"late": True}}), {409}, "late update")
            if answer.status == 409 and (answer.body or {}).get("current_status") not in job.expected:
                LEDGER.fail(f"job {job.index}: late update: 409 names {answer.body}, expected one of {job.expected}")
        if plan == "delete":
            answer = client.call("DELETE", f"/v1/jobs/{job.id}")
            if answer.status == 404 and answer.after_platform_error:
                # the killed instance deleted it before it died; the retry finds it gone
                job.notes.append("delete: applied by a killed instance, then 404")
            else:
                self.expect(job, answer, {200}, "delete")
            job.deleted = True

    # -- batches --

    BATCH_PLANS = [  # (name, outcomes of its requests, callback target, cancel right away)
        ("all-succeeded", ["succeeded"] * 20, "ok", False),
        ("mixed", ["succeeded", "errored", "canceled", "expired"] * 4, "flaky", False),
        ("all-expired", ["expired"] * 10, "ok", False),
        ("cancelled", ["succeeded", "errored"] * 12, "ok", True),
        ("paged", ["succeeded", "errored", "succeeded"] * 15, "none", False),
        ("errored", ["errored"] * 8, "down", False),
    ]

    def submit_batches(self) -> None:
        for n, (name, outcomes, target, cancel) in enumerate(self.BATCH_PLANS):
            requests_ = [{"custom_id": f"{name}-{i:03d}", "params": {"simulate": o, "max_tokens": 16}} for i, o in enumerate(outcomes)]
            body: dict[str, Any] = {"provider": "simulated", "requests": requests_, "metadata": {"source_id": "soak-batch", "name": name}}
            if target != "none":
                body["callback_url"] = self.receiver.url(f"/{'flaky/2' if target == 'flaky' else target}/batch-{n}")
            answer = self.api.call("POST", "/v1/batches", body)
            if answer.status != 201:
                LEDGER.fail(f"batch {name}: submission answered {answer.status} {json.dumps(answer.body)[:300]}")
                continue
            batch = {"name": name, "id": answer.body["id"], "outcomes": {r["custom_id"]: r["params"]["simulate"] for r in requests_},
                     "callback": target != "none", "target": target, "cancel": cancel, "cancel_answer": None}
            if answer.after_platform_error:
                batch["note"] = "submitted again after API Gateway's 500: the first submission may have made a batch too"
            if cancel:
                cancelled = self.api.call("PATCH", f"/v1/batches/{batch['id']}/cancel")
                batch["cancel_answer"] = cancelled.status
                if cancelled.status not in (202, 409):
                    LEDGER.fail(f"batch {name}: cancel answered {cancelled.status} {json.dumps(cancelled.body)[:300]}")
            self.batches.append(batch)

    def run(self) -> None:
        self.submit_batches()
        with ThreadPoolExecutor(THREADS) as pool:
            for future in [pool.submit(self.run_job, job) for job in self.jobs]:
                future.result()

    # -- reading back --

    def job(self, job_id: str) -> Answer:
        return self.api.call("GET", f"/v1/jobs/{job_id}")

    def statuses(self) -> dict[str, str | None]:
        out = {}
        for job in self.jobs:
            if job.id and not job.deleted:
                out[job.id] = (self.job(job.id).body or {}).get("status")
        return out


# ---- the emulator's queues ------------------------------------------------------------------


class Queues:
    """The retry queue and the dead-letter queue, read with boto3 against the emulator (whose
    faults hit these requests too: botocore retries them)."""

    def __init__(self, endpoint: str) -> None:
        self.sqs = boto3.client(
            "sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local",
            config=Config(retries={"mode": "standard", "max_attempts": 10}),
        )
        self.dynamodb = boto3.client(
            "dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local",
            config=Config(retries={"mode": "standard", "max_attempts": 10}),
        )
        self.dlq = self.sqs.get_queue_url(QueueName="WebhookDeadLetterQueue")["QueueUrl"]
        self.queue = self.sqs.get_queue_url(QueueName="WebhookQueue")["QueueUrl"]

    def depth(self, url: str) -> tuple[int, int, int]:
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return (int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"]),
                int(attributes["ApproximateNumberOfMessagesDelayed"]))

    def scheduler_lease(self) -> dict | None:
        """The scheduler's lease item (a run holds it until it ends, or until ``until``)."""
        item = self.dynamodb.get_item(TableName="JobsTable", Key={"pk": {"S": "LEASE#scheduler"}, "sk": {"S": "LEASE"}},
                                      ConsistentRead=True).get("Item")
        if not item:
            return None
        return {"holder": item.get("holder", {}).get("S"), "until_in_seconds": int(item["until"]["N"]) - int(time.time())}

    def dead_letters(self) -> list[dict]:
        """Every message of the dead-letter queue, left in it (each is made visible again)."""
        seen: dict[str, dict] = {}
        handles = []
        for _ in range(200):
            messages = self.sqs.receive_message(QueueUrl=self.dlq, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", [])
            if not messages:
                break
            for m in messages:
                seen[m["MessageId"]] = json.loads(m["Body"])
                handles.append(m["ReceiptHandle"])
        for handle in handles:
            self.sqs.change_message_visibility(QueueUrl=self.dlq, ReceiptHandle=handle, VisibilityTimeout=0)
        return list(seen.values())


# ---- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rx = Receiver(behaviour=Behaviours())
    yield rx
    rx.close()


@pytest.fixture(scope="module")
def soak_stack() -> Iterator[dict]:
    global STARTED
    STARTED = time.monotonic()
    with own_stack(
        KEYS, JOBS_SCHEDULE_SECONDS="1", LOCAL_INDEX_LAG_MS="100", LOCAL_FAULTS=FAULTS, LOCAL_PARAMETERS=PARAMETERS,
    ) as stack:
        assert any("LOCAL_FAULTS" in line and "kill=0.02" in line for line in stack["output"]), "".join(stack["output"])
        yield stack


@pytest.fixture(scope="module")
def queues(soak_stack) -> Queues:
    return Queues(soak_stack["emulator"])


@pytest.fixture(scope="module")
def soak(soak_stack, receiver, queues) -> Soak:
    """The workload, run to its end: every job driven, every batch submitted, and then every
    job that is to end by itself (the sweep) ended."""
    run = Soak(soak_stack, receiver)
    started = time.monotonic()
    run.run()
    run.summary["workload_seconds"] = round(time.monotonic() - started, 1)
    return run


def shift(moment: str | None, seconds: float) -> str | None:
    if not moment:
        return None
    return (parse(moment) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


#: a line of the stack's output for an API request whose Lambda invocation failed:
#: ``gateway: POST /v1/x: ApiFunction: KeyError: 'job_id'``
GATEWAY_ERROR = re.compile(r"^gateway: (\S+) (\S+): (\w+): ([\w.]+): ?(.*)$")


def gateway_errors(output: list[str]) -> Counter:
    """(method, route, function, error type, message) -> count, from the stack's output."""
    found: Counter = Counter()
    for line in list(output):
        match = GATEWAY_ERROR.match(line.strip())
        if match:
            method, path, function, kind, message = match.groups()
            found[(method, route_of(path), function, kind, message[:200])] += 1
    return found


def function_errors(output: list[str]) -> Counter:
    """The last line of every traceback the stack printed (a function error seen by a pump, or
    the gateway): what failed, but for instances killed on purpose."""
    found: Counter = Counter()
    lines = list(output)
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or lines[j].startswith("\t")):
                j += 1
            if j < len(lines):
                found[lines[j].strip()[:300]] += 1
    return found


def secret(soak: Soak) -> str:
    return soak.api.call("GET", "/v1/webhook-secret").body["secret"]


def webhooks_by_id(receiver: Receiver) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for request in list(receiver.requests):
        out[request.headers.get("webhook-id", "?")].append(request)
    return out


def verify(secret: str, request) -> str | None:
    """Standard Webhooks, checked as of the moment the receiver got the request (the checks run
    minutes later): None, or what is wrong. (The ``standardwebhooks`` package checks the
    timestamp against the present.)"""
    headers = request.headers
    try:
        timestamp = int(headers["webhook-timestamp"])
    except (KeyError, ValueError):
        return f"has no webhook-timestamp: {headers}"
    if abs(request.at - timestamp) > 300:
        return f"is stamped {timestamp}, received at {request.at:.0f}"
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{headers['webhook-id']}.{timestamp}.{request.body}".encode(), hashlib.sha256).digest()).decode()
    signatures = [part.partition(",")[2] for part in headers.get("webhook-signature", "").split()]
    if not any(hmac.compare_digest(expected, sig) for sig in signatures):
        return f"does not verify (signatures {headers.get('webhook-signature')})"
    return None


def webhook_id(job_id: str, status: str) -> str:
    """What the service names a terminal event (it is the same on every attempt): checked against
    the receiver's requests, which carry it."""
    return f"msg_{job_id.removeprefix('job-').replace('-', '')}_{status}"


def report(soak: Soak, **more: Any) -> None:
    soak.summary.update(more)
    soak.summary.update({
        "elapsed_seconds": round(time.monotonic() - STARTED, 1),
        "answers": {f"{m} {r} {s}": n for (m, r, s), n in sorted(LEDGER.answers.items(), key=lambda kv: str(kv[0]))},
        "busy_503_with_detail": LEDGER.busy, "api_gateway_500": LEDGER.platform, "connection_errors": LEDGER.connection,
        "client_failures": len(LEDGER.failures),
        "stack_kills": sum("Runtime.ExitError" in line for line in soak.stack["output"]),
        "gateway_errors": {" ".join(k): n for k, n in gateway_errors(soak.stack["output"]).items()},
        "function_errors": dict(function_errors(soak.stack["output"]).most_common(30)),
    })
    text = json.dumps(soak.summary, indent=1, default=str)
    print(text)
    artifacts = ROOT / "tests" / "artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "soak_faults.json").write_text(text)
    (artifacts / "soak_faults_stack.log").write_text("".join(soak.stack["output"]))


# ---- the checks -----------------------------------------------------------------------------


def test_clients_saw_no_5xx_but_503_with_detail(soak):
    """Every answer of the workload: a 5xx is only ever the service's 503 with a detail (a busy
    database after its retries) or API Gateway's 500 for an instance killed under the request,
    and a retry then got the expected answer. Any other answer than the lifecycle expects (a 404
    for a job that exists, a 422 for a valid body...) is a failure too."""
    report(soak)
    problems = list(LEDGER.failures)
    # API Gateway's 500 is the platform's answer only when the instance was killed: any other
    # failed invocation behind one (the function raised) is the service's 5xx
    for (method, route, function, kind, message), n in gateway_errors(soak.stack["output"]).items():
        if kind != "Runtime.ExitError":
            problems.append(f"{n} x {method} {route}: API Gateway's 500 for {function} failing with {kind}: {message}")
    assert not problems, f"{len(problems)} wrong answers:\n" + "\n".join(problems[:60])


def check_history(job: Tracked, record: dict, history: list[dict]) -> list[str]:
    problems = []
    chain = [(h.get("from"), h.get("status")) for h in history]
    if not history:
        return ["no history"]
    if history[0].get("from") is not None or history[0].get("status") not in ACTIVE:
        problems.append(f"first entry {history[0]}")
    for previous, entry in zip(history, history[1:]):
        if entry.get("from") != previous.get("status"):
            problems.append(f"'from' does not chain: {previous.get('status')} then {entry}")
        if entry.get("status") not in TRANSITIONS.get(entry.get("from"), ()):
            problems.append(f"{entry.get('from')} -> {entry.get('status')} is not a transition")
    if history[-1].get("status") != record.get("status"):
        problems.append(f"history ends {history[-1].get('status')}, the job is {record.get('status')}")
    ats = [h.get("at") for h in history]
    if ats != sorted(ats):
        problems.append(f"times not in order: {ats}")
    users = {f"user:{user}" for _key, _org, user in USERS.values()}
    for entry in history:
        actor = entry.get("actor")
        if actor not in users and actor != "system:sweep":
            problems.append(f"actor {actor!r} in {entry}")
    if job.ended_by == "system:sweep" and record.get("status") in TERMINAL:
        last = history[-1]
        reason = "heartbeat_timeout" if record.get("status") == "failed" else "timeout"
        if (last.get("actor"), last.get("stop_reason")) != ("system:sweep", reason):
            problems.append(f"ended by {last.get('actor')} ({last.get('stop_reason')}), expected system:sweep ({reason})")
    if record.get("status") in TERMINAL and record.get("completed_at") != history[-1].get("at"):
        problems.append(f"completed_at {record.get('completed_at')} is not the terminal entry's time {history[-1].get('at')}")
    return [f"{chain}: {p}" for p in problems]


def test_every_job_ends_where_its_lifecycle_leads_with_a_valid_history(soak, queues):
    """Jobs left to the sweep (heartbeat timeouts after 10 s, expiries after 60 s) end by
    themselves; then every job is in the status its lifecycle leads to (a status of the state
    machine), and its history is a path of the state machine ending there."""
    waiting = [j for j in soak.jobs if j.id and not j.deleted and j.ended_by == "system:sweep"]
    soak.summary["scheduler_lease_at_sweep_wait"] = queues.scheduler_lease()
    wait(lambda: sorted((soak.job(j.id).body or {}).get("status") or "?" for j in waiting),
         done=lambda got: all(s in TERMINAL for s in got), stall=SCHEDULE_STALL,
         what=f"the sweep to end {len(waiting)} jobs (heartbeat timeouts, expiries)")
    problems = []
    ended = Counter()
    for job in soak.jobs:
        if not job.id:
            problems.append(f"job {job.index} ({job.plan}): never created")
            continue
        answer = soak.job(job.id)
        if job.deleted:
            if answer.status != 404:
                problems.append(f"job {job.index} {job.id}: deleted, then GET answers {answer.status}")
            continue
        record = answer.body or {}
        ended[record.get("status")] += 1
        if record.get("status") not in STATUSES:
            problems.append(f"job {job.index} {job.id}: status {record.get('status')!r}")
        if record.get("status") not in job.expected:
            problems.append(f"job {job.index} {job.id} ({job.plan}): {record.get('status')}, expected {sorted(job.expected)} {job.notes}")
        history = soak.api.call("GET", f"/v1/jobs/{job.id}/history")
        if history.status != 200:
            problems.append(f"job {job.index} {job.id}: history answered {history.status}")
            continue
        problems += [f"job {job.index} {job.id} ({job.plan}): {p}" for p in check_history(job, record, history.body)]
        if job.ended_by == "system:sweep" and history.body:
            job.ended_at = history.body[-1]["at"]
    # how long after it was due the sweep ended each job (it runs every second here)
    late = sorted(((parse(j.ended_at) - parse(j.due)).total_seconds(), j.id) for j in waiting if j.ended_at and j.due)
    report(soak, jobs_by_status=dict(ended), sweep_lateness_seconds={
        "jobs": len(late), "median": late[len(late) // 2][0] if late else None, "max": late[-1] if late else None,
        "over_30s": sum(1 for x, _ in late if x > 30)})
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:60])


def items_of(soak: Soak, batch_id: str, limit: int) -> tuple[list[dict], int]:
    """Every item of a batch, following Link: rel="next"; and the number of pages."""
    path, params = f"/v1/batches/{batch_id}/items", {"limit": limit}
    items, pages = [], 0
    while True:
        answer = soak.api.call("GET", path, params=params)
        assert answer.status == 200, f"{path} {params}: {answer.status} {answer.body}"
        items += answer.body
        pages += 1
        following = next_link(answer.headers.get("link"))
        if following is None or pages > 100:
            return items, pages
        url = urlsplit(following)
        path, params = url.path, dict(parse_qsl(url.query))


def test_every_batch_ends_with_all_its_items(soak):
    """Every batch of the organization (those submitted, and any a retried submission made) ends
    in the status its requests lead to, with every item, each in the status of its outcome, and
    counts that are its items'."""
    listed = wait(lambda: sorted((b["id"], b["status"]) for b in soak.api.call("GET", "/v1/batches", params={"limit": 100}).body or []),
                  done=lambda got: got and all(status != "running" for _, status in got), stall=SCHEDULE_STALL,
                  what=f"{len(soak.batches)} batches to end")
    problems = []
    submitted = {b["id"]: b for b in soak.batches}
    for batch_id, status in listed:
        plan = submitted.get(batch_id)
        record = soak.api.call("GET", f"/v1/batches/{batch_id}").body or {}
        items, pages = items_of(soak, batch_id, limit=7)
        if plan is None:
            problems.append(f"batch {batch_id} ({record.get('metadata')}) was not submitted by the soak as such "
                            f"(a retried submission?): {status}, {len(items)} items")
            continue
        outcomes = plan["outcomes"]
        cancelled = plan["cancel"] and plan["cancel_answer"] == 202
        if cancelled:
            expected_status = "cancelled"
        elif all(o == "expired" for o in outcomes.values()):
            expected_status = "expired"
        else:
            expected_status = "completed"
        if status != expected_status:
            problems.append(f"batch {plan['name']} {batch_id}: {status}, expected {expected_status} (cancel answered {plan['cancel_answer']})")
        ids = [item["custom_id"] for item in items]
        if sorted(ids) != sorted(outcomes) or len(ids) != len(set(ids)):
            problems.append(f"batch {plan['name']} {batch_id}: {len(ids)} items ({len(set(ids))} distinct) in {pages} pages, "
                            f"{len(outcomes)} requests; missing {sorted(set(outcomes) - set(ids))[:10]}")
        for item in items:
            want = "cancelled" if cancelled else ITEM_STATUS[outcomes.get(item["custom_id"], "succeeded")]
            if item["status"] != want:
                problems.append(f"batch {plan['name']} item {item['custom_id']}: {item['status']}, expected {want}")
            if item["status"] == "completed" and "simulated answer" not in json.dumps(item.get("result")):
                problems.append(f"batch {plan['name']} item {item['custom_id']}: result {item.get('result')}")
        tally = Counter({"completed": "succeeded", "failed": "errored", "cancelled": "canceled", "expired": "expired"}[i["status"]] for i in items)
        counts = record.get("request_counts") or {}
        if {k: counts.get(k, 0) for k in ("succeeded", "errored", "canceled", "expired", "processing")} != \
                {**{k: tally.get(k, 0) for k in ("succeeded", "errored", "canceled", "expired")}, "processing": 0}:
            problems.append(f"batch {plan['name']}: request_counts {counts}, items {dict(tally)}")
    missing = set(submitted) - {batch_id for batch_id, _ in listed}
    if missing:
        problems.append(f"batches not listed: {missing}")
    report(soak, batches={b: s for b, s in listed})
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:60])


def with_callback(soak: Soak) -> list[tuple[str, str, str]]:
    """(job id, final status, target) of every terminal job and batch that has a callback."""
    out = []
    for job in soak.jobs:
        if job.id and not job.deleted and job.callback_url:
            status = (soak.job(job.id).body or {}).get("status")
            if status in TERMINAL:
                out.append((job.id, status, job.target))
    for batch in soak.batches:
        if batch["callback"]:
            status = (soak.job(batch["id"]).body or {}).get("status")
            if status in TERMINAL:
                out.append((batch["id"], status, batch["target"]))
    return out


def settled_webhooks(soak: Soak, receiver: Receiver, queues: Queues, expected: list[tuple[str, str, str]], what: str) -> dict:
    """Wait until every expected webhook is delivered or dead-lettered (the retry queue empty and
    nothing changing); the dead letters by webhook id."""

    def state() -> tuple:
        ids = webhooks_by_id(receiver)
        done = sum(1 for job_id, status, _ in expected if any(delivered(r) for r in ids.get(webhook_id(job_id, status), [])))
        return done, len(receiver.requests), queues.depth(queues.queue), queues.depth(queues.dlq)

    # done: the retry queue empty and nothing in flight, every webhook delivered or (by count) in
    # the dead-letter queue, and all of that unchanged for QUIET seconds. Also done when the
    # queues are empty and nothing has changed for a retry queue's visibility timeout
    # (WEBHOOK_STALL): then nothing more can come, and the checks that follow name each
    # webhook that was neither delivered nor dead-lettered (rather than a stalled wait).
    last: dict[str, Any] = {"value": None, "since": 0.0}

    def done(s: tuple) -> bool:
        if s[2] != (0, 0, 0):
            last["value"] = None
            return False
        if s != last["value"]:
            last.update(value=s, since=time.monotonic())
            return False
        quiet_for = time.monotonic() - last["since"]
        if s[0] + s[3][0] + s[3][1] >= len(expected):
            return quiet_for >= QUIET
        return quiet_for >= WEBHOOK_STALL - 30

    wait(state, stall=WEBHOOK_STALL, what=what, done=done)
    letters: dict[str, list[dict]] = defaultdict(list)
    for letter in queues.dead_letters():
        letters[letter.get("webhook_id")].append(letter)
    return letters


def check_deliveries(soak: Soak, receiver: Receiver, expected: list[tuple[str, str, str]], letters: dict, *,
                     dead_allowed: Callable[[str], bool]) -> tuple[list[str], Counter]:
    problems, outcome = [], Counter()
    ids = webhooks_by_id(receiver)
    key = secret(soak)
    for job_id, status, target in expected:
        wid = webhook_id(job_id, status)
        got = ids.get(wid, [])
        if any(delivered(r) for r in got):
            outcome[f"{target}: delivered"] += 1
            first = next(r for r in got if delivered(r))
            problem = verify(key, first)
            event = first.json()
            if problem or (event["job_id"], event["status"], event["type"]) != (job_id, status, f"job.{status}"):
                problems.append(f"{job_id}: the delivered webhook {problem or 'says'} {event}")
        elif wid in letters:
            outcome[f"{target}: dead-lettered"] += 1
            if not dead_allowed(target):
                problems.append(f"{job_id} ({target}): dead-lettered, {len(got)} attempts seen by the receiver: {letters[wid][0]}")
        else:
            outcome[f"{target}: lost"] += 1
            attempts = soak.api.call("GET", f"/v1/jobs/{job_id}/callbacks").body
            problems.append(f"{job_id} ({target}, {status}): neither delivered nor dead-lettered; the receiver saw "
                            f"{[r.answer for r in got]}; attempts {json.dumps(attempts)[:600]}")
    # no webhook announced a status the job does not have (two terminal transitions)
    finals = {job_id: status for job_id, status, _ in expected}
    for wid, got in ids.items():
        for job_id, status in finals.items():
            if wid.startswith(webhook_id(job_id, "")) and wid != webhook_id(job_id, status):
                problems.append(f"{job_id} is {status}, yet a webhook {wid} was sent ({len(got)} times)")
    return problems, outcome


def test_every_webhook_is_delivered_or_dead_lettered(soak, receiver, queues):
    """Every terminal job (and batch) with a callback: the receiver answered 2xx to its
    webhook-id, or its event is in the dead-letter queue, and only receivers that never accept
    (down, reset, trickle, unresolvable) are dead-lettered."""
    expected = with_callback(soak)
    try:
        letters = settled_webhooks(soak, receiver, queues, expected, f"{len(expected)} webhooks to be delivered or dead-lettered")
        never = {"down", "reset", "trickle", "unresolvable"}
        problems, outcome = check_deliveries(soak, receiver, expected, letters, dead_allowed=lambda t: t in never)
        report(soak, webhooks=dict(outcome), dead_letters=sum(len(v) for v in letters.values()))
    finally:
        # for a failed run, where a lost webhook may be: a stream batch the callbacks function
        # gave up on (its shard and sequence numbers, for jobsvc.redrive --stream-failures)
        failures = queues.sqs.get_queue_url(QueueName="StreamFailureQueue")["QueueUrl"]
        peeked = queues.sqs.receive_message(QueueUrl=failures, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        report(soak, stream_failures={
            "depth": queues.depth(failures), "messages": [m["Body"][:2000] for m in peeked],
            "given_up": [line.rstrip() for line in soak.stack["output"] if ": skipping " in line][:20],
        })
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:60])


def heal(receiver: Receiver) -> None:
    receiver.behaviour.healed = True


def test_the_dead_letters_redriven_by_the_operator_command_are_delivered(soak, receiver, queues):
    """The receivers answer 200 again; the operator command moves every dead letter back to the
    retry queue; each is attempted again: delivered (or, for a host that never resolves, dead-
    lettered again after a new round of attempts)."""
    expected = with_callback(soak)
    settled_webhooks(soak, receiver, queues, expected, "the webhooks to settle before the redrive")
    letters = queues.dead_letters()
    heal(receiver)
    seen_before = len(receiver.requests)
    command = [sys.executable, "-m", "jobsvc.redrive", "--dlq", queues.dlq, "--queue", queues.queue]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "AWS_ENDPOINT_URL": soak.stack["emulator"], "PYTHONPATH": str(ROOT / "layers/common"),
             "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_REGION": "us-east-1",
             "AWS_DEFAULT_REGION": "us-east-1"},
    )
    report(soak, redrive={"dead_letters": len(letters), "exit": result.returncode, "stdout": result.stdout[-500:],
                          "stderr": result.stderr[-1000:]})
    assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-2000:]}"
    letters_after = settled_webhooks(soak, receiver, queues, expected, "the redriven webhooks")
    problems, outcome = check_deliveries(soak, receiver, expected, letters_after, dead_allowed=lambda t: t == "unresolvable")
    # every redriven event was attempted again (an unresolvable host: a new round of attempts)
    for letter in letters:
        if not any(r.headers.get("webhook-id") == letter.get("webhook_id") for r in receiver.requests[seen_before:]) \
                and "unresolvable" not in str(letter.get("callback_url")):
            problems.append(f"dead letter {letter.get('webhook_id')} was not attempted again after the redrive")
    report(soak, after_redrive=dict(outcome))
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:60])


def test_recover_delivers_every_webhook_that_ended_failed(soak, receiver, queues):
    """``POST /v1/callbacks/recover`` over the soak's window queues every event whose delivery
    ended failed (those the redrive did not deliver); with the receivers answering 200, every
    webhook is then delivered, but those to a host that never resolves."""
    expected = with_callback(soak)
    settled_webhooks(soak, receiver, queues, expected, "the webhooks to settle before the recovery")
    heal(receiver)
    since = (soak.started_at - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    answer = soak.api.call("POST", "/v1/callbacks/recover", {"since": since})
    assert answer.status == 202 and isinstance((answer.body or {}).get("queued"), int), f"recover: {answer.status} {answer.body}"
    letters = settled_webhooks(soak, receiver, queues, expected, "the recovered webhooks")
    problems, outcome = check_deliveries(soak, receiver, expected, letters, dead_allowed=lambda t: t == "unresolvable")
    report(soak, recover={"queued": answer.body["queued"]}, after_recover=dict(outcome))
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:60])
