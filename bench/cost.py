"""The cost meter: what a job's lifecycle costs in AWS, from what the local stack actually did.

It runs the whole service in this process (``local.stack.LocalStack``), drives lifecycles
over HTTP, and measures, step by step:

- DynamoDB write and read units, from the table's stream images and the emulator's own log
  of requests and answers, by DynamoDB's published rules (``local/metering.py``): item
  sizes rounded up per 1 KB written / 4 KB read, an index written only when an item enters
  it, leaves it or changes its keys or projected attributes, transactions counted double,
  refused conditional writes counted as DynamoDB counts them;
- Lambda invocations and GB-seconds (the memory of each function from template.yaml, the
  duration measured around each invocation: the local handlers talk to an emulator, not to
  DynamoDB, so this is an estimate);
- API Gateway requests, SQS requests (the service's, and the messages Lambda's pollers move).

Then it prices them (PRICES, with their source) per 1M lifecycles, by service and by step,
beside the floor: the API requests, the API function's invocations and one table write per
step. Also: a batch of 100 requests with 2 KB results (per 1M requests), the hot-key
shares of a one-organization run of mixed operations, and requests per operation
including authorization.

    make bench            # or: .venv/bin/python bench/cost.py  (BENCH_LIFECYCLES=200)
"""
from __future__ import annotations

import io
import json
import math
import os
import random
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common")]
N = int(os.environ.get("BENCH_LIFECYCLES", "200"))
#: lifecycles run first and not counted: they start the functions' instances (an instance's start
#: is paid once per instance, not per lifecycle: bench/cold_start.py measures it)
WARM_UP = int(os.environ.get("BENCH_WARM_UP", "32"))
HOTKEY_OPS = int(os.environ.get("BENCH_HOTKEY_OPS", "2400"))

#: us-east-1 list prices, on-demand, as published on the AWS pricing pages (read 2026-11-29):
#: https://aws.amazon.com/api-gateway/pricing/ (HTTP APIs, first 300 million requests a month),
#: https://aws.amazon.com/lambda/pricing/ (Arm), https://aws.amazon.com/dynamodb/pricing/on-demand/
#: (since the November 2024 price cut), https://aws.amazon.com/sqs/pricing/ (standard queues).
#: DynamoDB Streams reads by Lambda triggers are free; free tiers, storage, logs and data
#: transfer are left out.
PRICES = {
    "api_gateway_request": 1.00 / 1e6,
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0000133334,
    "dynamodb_wru": 0.625 / 1e6,
    "dynamodb_rru": 0.125 / 1e6,
    "sqs_request": 0.40 / 1e6,
}
STEP_FUNCTIONS_STANDARD_TRANSITION = 25.0 / 1e6  # https://aws.amazon.com/step-functions/pricing/

#: The AWS estimate of Lambda duration (the local wall time is this 2-core machine running the
#: emulator, the gateway, every function and the bench at once, far slower than Lambda):
#: an invocation's CPU time, measured in its instance, stretched by the share of a vCPU its
#: memory buys (Lambda gives a whole vCPU at 1,769 MB, proportionally less below), plus a wait
#: per DynamoDB or SQS request the functions made (single-digit milliseconds in a region) and
#: per webhook POST (a receiver answering in 100 ms). A function's requests are counted one
#: after the other, except the callbacks function's: it attempts every record of a batch at once
#: (WEBHOOK_CONCURRENCY threads), each attempt a chain of requests and one POST, so a batch of k
#: records waits ceil(k / WEBHOOK_CONCURRENCY) chains, not k.
FULL_VCPU_MB = 1769
AWS_REQUEST_SECONDS = 0.008
WEBHOOK_POST_SECONDS = 0.100


# ---- the emulator's log ------------------------------------------------------------------


@dataclass
class Call:
    service: str  # dynamodb, dynamodbstreams, sqs
    action: str
    request: dict
    response: dict
    status: int
    stack: bool  # made by the local stack itself (its pumps, its set-up), not by a function
    function: str = ""  # the function whose instance made it (from its user agent's app id)


@dataclass
class Meter:
    #: the schedule fires only while this is set (its fixed cost per minute is not a lifecycle's)
    scheduler_on: bool = False
    calls: list[Call] = field(default_factory=list)
    invocations: Counter = field(default_factory=Counter)
    seconds: Counter = field(default_factory=Counter)
    #: records per invocation of the callbacks function (its attempts run at once)
    callbacks_batches: list[int] = field(default_factory=list)
    api_requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.invocations.clear()
            self.seconds.clear()
            self.callbacks_batches.clear()
            self.api_requests = 0

    def last_service_call(self) -> float:
        return getattr(self, "_last", 0.0)


METER = Meter()


def instrument() -> None:
    """Count what the local stack does, from the outside (nothing in local/ knows about it)."""
    from local import emulator, gateway, lambdas, pumps

    fire = pumps.SchedulePump._fire

    def maybe_fire(self: Any) -> None:
        if METER.scheduler_on:
            fire(self)

    pumps.SchedulePump._fire = maybe_fire  # type: ignore[method-assign]

    inner = emulator._Serving.__call__

    def logged(self: Any, environ: dict, start_response: Callable) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        status_holder = {}

        def capture(status: str, headers: list, *args: Any) -> Any:
            status_holder["code"] = int(status.split()[0])
            return start_response(status, headers, *args)

        out = inner(self, environ, capture)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            service = "dynamodbstreams" if target.startswith("DynamoDBStreams") else "dynamodb" if target.startswith("DynamoDB") else "sqs"
            try:
                request = json.loads(body or b"{}")
                response = json.loads(b"".join(out) or b"{}")
            except ValueError:
                request, response = {}, {}
            agent = environ.get("HTTP_USER_AGENT", "")
            stack = "Boto3/" in agent
            function = next((part[4:] for part in agent.split() if part.startswith("app/")), "")
            with METER.lock:
                METER.calls.append(Call(service, target.split(".")[-1], request, response, status_holder.get("code", 200),
                                        stack, function))
                if not stack:
                    METER._last = time.monotonic()  # type: ignore[attr-defined]
        return out

    emulator._Serving.__call__ = logged  # type: ignore[method-assign]

    start = lambdas.LocalFunction._start
    starting = threading.Lock()

    def named(self: Any) -> Any:
        """An instance whose SDK says which function it is (botocore's AWS_SDK_UA_APP_ID: the
        user agent's app id), so that each request is put to its function's account."""
        with starting:  # an instance copies the environment when it starts
            os.environ["AWS_SDK_UA_APP_ID"] = self.spec.logical_id
            try:
                return start(self)
            finally:
                del os.environ["AWS_SDK_UA_APP_ID"]

    lambdas.LocalFunction._start = named  # type: ignore[method-assign]

    invoke = lambdas.LocalFunction.invoke

    def timed(self: Any, event: dict, request_id: str | None = None) -> Any:
        started = time.monotonic()
        try:
            return invoke(self, event, request_id)
        finally:
            with METER.lock:
                METER.invocations[self.spec.logical_id] += 1
                METER.seconds[self.spec.logical_id] += time.monotonic() - started
                if self.spec.logical_id == "CallbacksFunction":
                    METER.callbacks_batches.append(len(event.get("Records") or []))

    lambdas.LocalFunction.invoke = timed  # type: ignore[method-assign]

    handle = gateway.Gateway.handle_request

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        with METER.lock:
            METER.api_requests += 1
        return handle(self, *args, **kwargs)

    gateway.Gateway.handle_request = counted  # type: ignore[method-assign]


# ---- pricing what was logged ---------------------------------------------------------


class StreamReader:
    def __init__(self, emulator: Any) -> None:
        self.client = emulator.client("dynamodbstreams")
        ddb = emulator.client("dynamodb")
        arn = ddb.describe_table(TableName="JobsTable")["Table"]["LatestStreamArn"]
        shards = self.client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        self.iterators = [self.client.get_shard_iterator(StreamArn=arn, ShardId=s["ShardId"],
                                                         ShardIteratorType="TRIM_HORIZON")["ShardIterator"] for s in shards]
        self.read()

    def read(self) -> list[dict]:
        records = []
        for i, iterator in enumerate(self.iterators):
            while True:
                page = self.client.get_records(ShardIterator=iterator, Limit=1000)
                records += page["Records"]
                iterator = page.get("NextShardIterator") or iterator
                if not page["Records"]:
                    break
            self.iterators[i] = iterator
        return records


@dataclass
class Usage:
    api_requests: int = 0
    invocations: dict = field(default_factory=dict)
    gb_seconds: dict = field(default_factory=dict)
    #: CPU seconds the instances spent in handlers, by function
    cpu: dict = field(default_factory=dict)
    #: the AWS estimate of GB-seconds (see FULL_VCPU_MB), by what it is spent on
    aws_gb: dict = field(default_factory=dict)
    webhook_posts: int = 0
    callbacks_batches: list = field(default_factory=list)
    wru_table: float = 0
    wru_index: dict = field(default_factory=dict)
    rru: float = 0
    dynamodb_requests: Counter = field(default_factory=Counter)
    sqs_requests: int = 0
    wru_by_item: Counter = field(default_factory=Counter)  # job / webhook / other

    @property
    def wru(self) -> float:
        return self.wru_table + sum(self.wru_index.values())

    def dollars(self) -> dict[str, float]:
        return {
            "API Gateway": self.api_requests * PRICES["api_gateway_request"],
            "Lambda requests": sum(self.invocations.values()) * PRICES["lambda_request"],
            "Lambda duration": sum(self.gb_seconds.values()) * PRICES["lambda_gb_second"],
            "DynamoDB writes": self.wru * PRICES["dynamodb_wru"],
            "DynamoDB reads": self.rru * PRICES["dynamodb_rru"],
            "SQS": self.sqs_requests * PRICES["sqs_request"],
        }


def usage(records: list[dict], calls: list[Call], invocations: Counter, seconds: Counter, api_requests: int,
          memory: dict[str, int], indexes: list) -> Usage:
    from local.metering import item_size, meter, read_units, write_units

    u = Usage(api_requests=api_requests)
    u.invocations = dict(invocations)
    u.gb_seconds = {name: seconds[name] * memory[name] / 1024 for name in invocations}
    # writes that were part of a transaction cost double: match them to their stream records
    transactional: Counter = Counter()
    sizes: dict[tuple, int] = {}
    for record in records:
        keys = record["dynamodb"]["Keys"]
        sizes[(keys["pk"]["S"], keys["sk"]["S"])] = item_size(record["dynamodb"].get("NewImage") or record["dynamodb"].get("OldImage"))
    for call in calls:
        if call.service == "dynamodb" and call.action == "TransactWriteItems" and call.status == 200:
            for part in call.request.get("TransactItems", []):
                (kind, op), = part.items()
                key = op.get("Key") or {k: op["Item"][k] for k in ("pk", "sk")}
                if kind == "ConditionCheck":  # read and checked, not written: still two units a KB
                    u.wru_table += write_units(sizes.get((key["pk"]["S"], key["sk"]["S"]), 1), transactional=True)
                else:
                    transactional[(key["pk"]["S"], key["sk"]["S"])] += 1
    for record in records:
        keys = record["dynamodb"]["Keys"]
        key = (keys["pk"]["S"], keys["sk"]["S"])
        doubled = transactional[key] > 0
        if doubled:
            transactional[key] -= 1
        w = meter(record, indexes, transactional=doubled)
        u.wru_table += w.table_units
        kind = "webhook state" if w.sk.endswith("#WH") else "job" if w.sk.startswith("JOB#") else "other"
        u.wru_by_item[kind] += w.table_units
        for name, units in w.index_units.items():
            u.wru_index[name] = u.wru_index.get(name, 0) + units
    for call in calls:
        if call.service == "sqs" and not call.stack:
            u.sqs_requests += 1
        elif call.service == "sqs" and call.action in ("ReceiveMessage",) and call.response.get("Messages"):
            u.sqs_requests += 1  # Lambda's poller receiving messages for the function
        elif call.service == "sqs" and call.action in ("DeleteMessage", "DeleteMessageBatch"):
            u.sqs_requests += 1
        if call.service != "dynamodb" or call.stack:
            continue
        u.dynamodb_requests[call.action] += 1
        if call.status != 200:
            if "ConditionalCheckFailed" in json.dumps(call.response):
                key = call.request.get("Key") or {}
                size = sizes.get((key.get("pk", {}).get("S"), key.get("sk", {}).get("S")), 1)
                u.wru_table += write_units(size)  # a refused conditional write is billed too
            continue
        consistent = bool(call.request.get("ConsistentRead"))
        if call.action == "GetItem":
            u.rru += read_units(item_size(call.response.get("Item")), consistent) if call.response.get("Item") else (1 if consistent else 0.5)
        elif call.action == "Query":
            items = call.response.get("Items", [])
            total = sum(item_size(i) for i in items)
            scanned = call.response.get("ScannedCount", len(items))
            if scanned > len(items) and items:
                total += (scanned - len(items)) * total // len(items)
            u.rru += read_units(total, consistent)
        elif call.action == "BatchGetItem":
            for table, spec in call.request.get("RequestItems", {}).items():
                strong = bool(spec.get("ConsistentRead"))
                found = call.response.get("Responses", {}).get(table, [])
                for item in found:
                    u.rru += read_units(item_size(item), strong)
                # a key that finds no item is billed as the smallest read, as a GetItem's is
                unprocessed = len(call.response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", []))
                u.rru += max(0, len(spec.get("Keys", [])) - unprocessed - len(found)) * (1 if strong else 0.5)
    return u


# ---- the runs ---------------------------------------------------------------------------


def wait_quiet(seconds: float = 1.5, cap: float = 120) -> None:
    """Until no function has talked to the emulator for ``seconds`` (the stream and the queues drained)."""
    deadline = time.monotonic() + cap
    while time.monotonic() < deadline:
        if time.monotonic() - METER.last_service_call() > seconds:
            return
        time.sleep(0.2)


def measure(stack: Any, stream: StreamReader, memory: dict, indexes: list, work: Callable[[], None],
            settle: Callable[[], None] = wait_quiet, webhook_posts: int = 0) -> Usage:
    wait_quiet()
    stream.read()
    METER.reset()
    cpu_before = {name: f.cpu_seconds for name, f in stack.functions.items()}
    work()
    settle()
    records = stream.read()
    with METER.lock:
        calls = list(METER.calls)
        invocations, seconds, api = Counter(METER.invocations), Counter(METER.seconds), METER.api_requests
        batches = list(METER.callbacks_batches)
    u = usage(records, calls, invocations, seconds, api, memory, indexes)
    u.cpu = {name: f.cpu_seconds - cpu_before[name] for name, f in stack.functions.items() if f.cpu_seconds > cpu_before[name]}
    u.webhook_posts = webhook_posts
    u.callbacks_batches = batches
    u.aws_gb = {f"{name.removesuffix('Function')} CPU": cpu * max(1.0, FULL_VCPU_MB / memory[name]) * memory[name] / 1024
                for name, cpu in u.cpu.items()}
    u.aws_gb.update(waits_gb_seconds(calls, batches, webhook_posts, memory))
    return u


def waits_gb_seconds(calls: list[Call], batches: list[int], webhook_posts: int, memory: dict) -> dict[str, float]:
    """The GB-seconds the functions spend waiting on DynamoDB/SQS and on webhook POSTs."""
    requests = Counter(c.function for c in calls if not c.stack and c.service in ("dynamodb", "sqs"))
    assert "" not in requests, "a function's request without its app id"
    waits = {"waiting on DynamoDB/SQS": 0.0, "waiting on webhook POSTs": 0.0}
    for name, n in requests.items():
        if name != "CallbacksFunction":
            waits["waiting on DynamoDB/SQS"] += n * AWS_REQUEST_SECONDS * memory[name] / 1024
    attempts = sum(batches)
    if attempts:
        from jobsvc.config import settings  # the callbacks function's threads, as the stack configures it

        concurrency = settings().webhook_concurrency
        # one attempt's chain: its share of the requests, and its POST; a batch waits its rounds
        rounds = sum(math.ceil(k / concurrency) for k in batches)
        gb = memory["CallbacksFunction"] / 1024
        waits["waiting on DynamoDB/SQS"] += rounds * requests["CallbacksFunction"] / attempts * AWS_REQUEST_SECONDS * gb
        waits["waiting on webhook POSTs"] += rounds * webhook_posts / attempts * WEBHOOK_POST_SECONDS * gb
    return waits


def aws_gb_seconds(u: Usage) -> float:
    return sum(u.aws_gb.values())


def parallel(fn: Callable[[int], Any], n: int, workers: int = 8) -> list[Any]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, range(n)))


def lifecycle_table(stack: Any, session: Any, receiver: Any, memory: dict, indexes: list, stream: StreamReader,
                    n: int = N, tag: str = "cost") -> dict[str, Usage]:
    url = stack.url
    metadata = {"payload": "m" * 1000}  # 1 KB of metadata
    ids: list[str] = [""] * n
    steps: dict[str, Usage] = {}

    def create(i: int) -> None:
        r = session.post(f"{url}/v1/jobs", json={"status": "created", "callback_url": receiver.url(f"/{tag}-{i}"),
                                                  "metadata": metadata, "heartbeat_timeout_seconds": 300})
        assert r.status_code == 201, r.text
        ids[i] = r.json()["id"]

    def patch(body: Callable[[int], dict]) -> Callable[[], None]:
        def run() -> None:
            def one(i: int) -> None:
                r = session.patch(f"{url}/v1/jobs/{ids[i]}", json=body(i))
                assert r.status_code == 200, r.text
            parallel(one, n)
        return run

    def delivered() -> None:
        receiver.wait_for(lambda: all(receiver.to(f"/{tag}-{i}") for i in range(n)), timeout=300)
        wait_quiet()

    steps["create"] = measure(stack, stream, memory, indexes, lambda: parallel(create, n))
    steps["-> pending"] = measure(stack, stream, memory, indexes, patch(lambda i: {"status": "pending"}))
    steps["-> running"] = measure(stack, stream, memory, indexes, patch(lambda i: {"status": "running"}))
    steps["heartbeat 1"] = measure(stack, stream, memory, indexes, patch(lambda i: {"metadata": {"step": 1}}))
    steps["heartbeat 2"] = measure(stack, stream, memory, indexes, patch(lambda i: {"metadata": {"step": 2}}))
    steps["-> completed + webhook"] = measure(
        stack, stream, memory, indexes,
        patch(lambda i: {"status": "completed", "ttft_ns": 120_000_000, "total_duration_ns": 900_000_000}), delivered,
        webhook_posts=n,
    )
    assert all(len(receiver.to(f"/{tag}-{i}")) == 1 for i in range(n)), "every webhook delivered once"
    return steps


def batch_usage(stack: Any, session: Any, receiver: Any, memory: dict, indexes: list, stream: StreamReader) -> Usage:
    requests = [{"custom_id": f"r{i}", "params": {"model": "m", "max_tokens": 8, "messages": [], "fake_text": "b" * 2000}}
                for i in range(100)]
    done: dict = {}

    def submit() -> None:
        r = session.post(f"{stack.url}/v1/batches", json={"provider": "anthropic", "requests": requests,
                                                          "callback_url": receiver.url("/cost-batch")})
        assert r.status_code == 201, r.text
        done["id"] = r.json()["id"]

    def ended() -> None:
        METER.scheduler_on = True
        receiver.wait_for(lambda: receiver.to("/cost-batch"), timeout=300)
        METER.scheduler_on = False
        wait_quiet(3)

    u = measure(stack, stream, memory, indexes, submit, ended)
    items = session.get(f"{stack.url}/v1/batches/{done['id']}/items", params={"limit": 1000}).json()
    assert len(items) == 100 or session.get(f"{stack.url}/v1/batches/{done['id']}").json()["status"] == "completed"
    return u


def hot_keys(stack: Any, session: Any, stream: StreamReader, indexes: list) -> tuple[dict, dict, int]:
    """A one-organization run of mixed operations: the largest share of the write units any
    one partition key takes, per table and index, of the organization's (and of its own)."""
    from local.metering import meter

    rng = random.Random(7)
    url = stack.url
    live: list[str] = []
    lock = threading.Lock()
    stream.read()

    def op(i: int) -> None:
        with lock:
            choice = rng.random()
            target = rng.choice(live) if live else None
        if target is None or choice < 0.25:
            r = session.post(f"{url}/v1/jobs", json={"status": rng.choice(["created", "running"]),
                                                      "heartbeat_timeout_seconds": 600,
                                                      "metadata": {"source_id": f"agent-{rng.randrange(20)}", "n": i}})
            with lock:
                live.append(r.json()["id"])
        elif choice < 0.65:
            session.patch(f"{url}/v1/jobs/{target}", json={"metadata": {"beat": i}})  # a heartbeat
        elif choice < 0.75:
            session.patch(f"{url}/v1/jobs/{target}", json={"status": rng.choice(["pending", "running", "completed", "failed"])})
        elif choice < 0.82:
            session.post(f"{url}/v1/jobs/{target}/messages", json={"role": "assistant", "content": f"step {i}"})
        elif choice < 0.88:
            session.patch(f"{url}/v1/jobs/{target}/cancel")
        elif choice < 0.92:
            session.delete(f"{url}/v1/jobs/{target}")
            with lock:
                if target in live:
                    live.remove(target)
        else:
            session.get(f"{url}/v1/jobs", params={"limit": 20, "active": "true"})

    parallel(op, HOTKEY_OPS)
    wait_quiet()
    per_key: dict[str, Counter] = defaultdict(Counter)
    for record in stream.read():
        w = meter(record, indexes)
        per_key["table"][w.partition] += w.table_units
        for name, entries in w.index_writes.items():
            for partition, units in entries:
                per_key[name][partition] += units
    total = sum(sum(c.values()) for c in per_key.values())
    of_org = {name: max(c.values()) / total for name, c in per_key.items()}
    of_own = {name: max(c.values()) / sum(c.values()) for name, c in per_key.items()}
    return of_org, of_own, total


def per_operation(stack: Any, session: Any) -> list[tuple[str, Counter, int]]:
    """DynamoDB requests of one operation, and the authorizer's invocations, one request at a time."""
    url = stack.url
    job = session.post(f"{url}/v1/jobs", json={}).json()
    rows = []
    for name, method, path, body in [
        ("create", "POST", "/v1/jobs", {}),
        ("get", "GET", f"/v1/jobs/{job['id']}", None),
        ("heartbeat (metadata PATCH)", "PATCH", f"/v1/jobs/{job['id']}", {"metadata": {"a": 1}}),
        ("transition", "PATCH", f"/v1/jobs/{job['id']}", {"status": "pending"}),
        ("list page (default)", "GET", "/v1/jobs", None),
        ("list page (active=true)", "GET", "/v1/jobs?active=true", None),
        ("cancel", "PATCH", f"/v1/jobs/{job['id']}/cancel", None),
        ("history", "GET", f"/v1/jobs/{job['id']}/history", None),
        ("delete", "DELETE", f"/v1/jobs/{job['id']}", None),
    ]:
        wait_quiet(0.5)
        METER.reset()
        r = session.request(method, url + path, json=body)
        assert r.status_code < 300, (name, r.status_code, r.text)
        with METER.lock:
            calls = Counter(c.action for c in METER.calls if c.service == "dynamodb" and not c.stack)
            authorizations = METER.invocations.get("AuthorizerFunction", 0)
        rows.append((name, calls, authorizations))
    return rows


def main() -> None:
    import requests

    from local.metering import indexes_from_template, item_size  # noqa: F401
    from local.stack import ApiKey, LocalStack
    from local.template import Template
    from tests.fake_providers import FakeProviders
    from tests.receiver import Receiver

    instrument()
    key = ApiKey("jsk_cost_bench_0123456789abcdef", "org-cost", "user-cost")
    receiver = Receiver()
    template = Template()
    indexes = indexes_from_template(template.table_definitions()[0]["create"])
    memory = {name: f.memory for name, f in template.functions().items()}
    with FakeProviders(polls_to_finish=1) as fake:
        os.environ.update(ANTHROPIC_BASE_URL=fake.url, ANTHROPIC_API_KEY="sk-ant-test")
        with LocalStack(port=0, api_keys=[key], schedule_seconds=1) as stack:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {key.key}"
            session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=16))
            stream = StreamReader(stack.emulator)
            if WARM_UP:
                lifecycle_table(stack, session, receiver, memory, indexes, stream, n=WARM_UP, tag="warm-up")
            steps = lifecycle_table(stack, session, receiver, memory, indexes, stream)
            batch = batch_usage(stack, session, receiver, memory, indexes, stream)
            operations = per_operation(stack, session)
            of_org, of_own, total = hot_keys(stack, session, stream, indexes)
    receiver.close()
    report(steps, batch, operations, of_org, of_own, total, memory)


def report(steps: dict[str, Usage], batch: Usage, operations: list, of_org: dict, of_own: dict, total: int, memory: dict) -> None:
    scale = 1e6 / N
    print(f"\nCost per 1M standard lifecycles (measured over {N} on the local stack; us-east-1 list prices)")
    header = f"{'step':26} {'API':>5} {'Lambda inv':>10} {'GB-s':>8} {'WRU':>6} {'RRU':>6} {'SQS':>4} {'$ / 1M':>8}"
    print(header)
    print("-" * len(header))
    totals: Counter = Counter()
    per_service: Counter = Counter()
    for name, u in steps.items():
        dollars = u.dollars()
        per_service.update(dollars)
        cost = sum(dollars.values()) * scale
        totals["cost"] += cost
        print(f"{name:26} {u.api_requests / N:5.2f} {sum(u.invocations.values()) / N:10.2f} "
              f"{sum(u.gb_seconds.values()) / N:8.4f} {u.wru / N:6.2f} {u.rru / N:6.2f} {u.sqs_requests / N:4.1f} {cost:8.2f}")
    print("-" * len(header))
    print(f"{'total':26} {'':>5} {'':>10} {'':>8} {'':>6} {'':>6} {'':>4} {totals['cost']:8.2f}")
    print("\nby service, $ per 1M lifecycles:")
    for service, dollars in per_service.items():
        print(f"  {service:18} {dollars * scale:7.2f}")
    # the same with the AWS estimate of Lambda duration in place of this machine's wall time
    aws_gb = sum(aws_gb_seconds(u) for u in steps.values())
    aws_duration = aws_gb * PRICES["lambda_gb_second"] * scale
    local_duration = per_service["Lambda duration"] * scale
    print(f"\nin AWS (estimate): Lambda duration ${aws_duration:.2f} instead of ${local_duration:.2f} "
          f"({aws_gb / N:.4f} GB-s a lifecycle: CPU time measured in the "
          f"instances x {FULL_VCPU_MB} MB / memory, + {1000 * AWS_REQUEST_SECONDS:.0f} ms a DynamoDB/SQS request, "
          f"+ {1000 * WEBHOOK_POST_SECONDS:.0f} ms a webhook POST)")
    print(f"  total in AWS (estimate): ${totals['cost'] - local_duration + aws_duration:.2f} per 1M lifecycles")
    spent: Counter = Counter()
    for u in steps.values():
        spent.update(u.aws_gb)
    print("  the estimated duration by what it is spent on, $ per 1M lifecycles: " + ", ".join(
        f"{what} {gb * PRICES['lambda_gb_second'] * scale:.2f}" for what, gb in spent.most_common()))
    cpu: Counter = Counter()
    calls: Counter = Counter()
    for u in steps.values():
        cpu.update(u.cpu)
        calls.update(u.invocations)
    print("  CPU per invocation: " + ", ".join(
        f"{name.removesuffix('Function')} {1000 * cpu[name] / calls[name]:.1f} ms" for name in sorted(cpu) if calls.get(name)))
    batches = [k for u in steps.values() for k in u.callbacks_batches]
    if batches:
        print(f"  the callbacks function: {len(batches)} invocations of {sum(batches) / len(batches):.1f} records on "
              f"average (largest {max(batches)}), its attempts made at once")
    print("  invocations per step: " + "; ".join(
        f"{name} " + ", ".join(f"{f.removesuffix('Function')} {n}" for f, n in sorted(u.invocations.items()))
        for name, u in steps.items()))
    wru_job = sum(u.wru_by_item["job"] for u in steps.values()) / N
    floor = (6 * PRICES["api_gateway_request"] + 6 * PRICES["lambda_request"] + wru_job * PRICES["dynamodb_wru"]) * 1e6
    print(f"\nfloor (6 API requests, 6 API invocations, one job write per step = {wru_job:.1f} WRU): ${floor:.2f} per 1M")
    print(f"Step Functions Standard, the same 5 transitions alone: ${5 * STEP_FUNCTIONS_STANDARD_TRANSITION * 1e6:.2f} per 1M")
    print("\nwrite units per lifecycle by where they land:")
    index_totals: Counter = Counter()
    for u in steps.values():
        index_totals.update(u.wru_index)
    for kind in ("job", "webhook state", "other"):
        print(f"  table, {kind:15} {sum(u.wru_by_item[kind] for u in steps.values()) / N:5.2f}")
    for name, units in sorted(index_totals.items()):
        print(f"  index {name:16} {units / N:5.2f}")
    print(f"  heartbeat: {steps['heartbeat 1'].wru_table / N:.2f} table + {sum(steps['heartbeat 1'].wru_index.values()) / N:.2f} index write units")

    per_request = sum(batch.dollars().values()) / 100 * 1e6
    print(f"\nA batch of 100 requests with 2 KB results: ${per_request:.2f} per 1M requests "
          f"({batch.wru:.0f} WRU, {batch.rru:.0f} RRU, {sum(batch.invocations.values())} invocations, "
          f"{batch.api_requests} API requests for the batch)")

    print(f"\nHot keys: one organization, {HOTKEY_OPS} mixed operations, {total} write units in all")
    print(f"  {'where':10} {'largest key, share of the organization':>40} {'share of its own writes':>25}")
    for name in sorted(of_org, key=lambda n: (n != "table", n)):
        print(f"  {name:10} {of_org[name]:40.3f} {of_own[name]:25.3f}")

    print("\nRequests per operation (one at a time; authorizer invocations with the cache warm)")
    for name, calls, authorizations in operations:
        listed = ", ".join(f"{n} {a}" for a, n in sorted(calls.items())) or "none"
        print(f"  {name:28} DynamoDB {sum(calls.values())} ({listed}); authorizer invocations {authorizations}")


if __name__ == "__main__":
    main()
