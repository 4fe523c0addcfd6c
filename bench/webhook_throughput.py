"""Webhook throughput: N jobs completed at once against a receiver that answers in 500 ms.

The whole service runs in this process (``local.stack.LocalStack``, nothing paused); the
receiver runs in a process of its own (a threaded HTTP server with a deep accept queue that
sleeps 500 ms and answers 200, so it can hold hundreds of requests at once and never shares
this process's interpreter lock). N jobs (``BENCH_WEBHOOK_JOBS``, default 1000) are created
``running`` with a callback to it, then all PATCHed ``completed`` as fast as a pool of threads
can. Printed:

- the time from the first completion (the jobs' ``completed_at``, set by the API function) to
  the last webhook received, and deliveries per second over it; the completion phase alone
  (the PATCHes), since it bounds the rate too;
- the peak number of requests the receiver had in flight at once;
- duplicates (a ``webhook-id`` answered 2xx more than once: must be 0) and missing webhooks;
- p50 / p95 / max of completion -> receipt latency;
- where the time went, measured from outside (nothing in local/ knows): the callbacks
  function's invocations (stream or SQS, records per invocation, their duration and how many
  ran at once), the time the emulator held its one-request-at-a-time lock (its busy share of
  the window), the API's PATCH rate;
- the AWS figure per stream shard computed from template.yaml (BatchSize, WEBHOOK_CONCURRENCY,
  ParallelizationFactor, ReservedConcurrentExecutions) for the same 500 ms receiver.

No assertion on time: the machine has 2 cores and is shared, so the load average is printed
at the start and the end.

    .venv/bin/python bench/webhook_throughput.py        (BENCH_WEBHOOK_JOBS=1000)
"""
from __future__ import annotations

import json
import math
import multiprocessing
import os
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common")]
N = int(os.environ.get("BENCH_WEBHOOK_JOBS", "1000"))
ANSWER_SECONDS = 0.5
PATCH_THREADS = int(os.environ.get("BENCH_PATCH_THREADS", "16"))
#: 1 (default): the callbacks function's stream mapping is held while the jobs are completed and
#: released once all are: N terminal transitions are in the stream at once, as when a provider's
#: batch ends (this 2-core machine's API completes about 30 jobs a second; AWS's would take them
#: all within a second), and the delivery path alone is timed from the release. 0: deliveries run
#: while the completions are made, and the window starts at the first completion.
HOLD_COMPLETIONS = os.environ.get("BENCH_HOLD_COMPLETIONS", "1") == "1"


# ---- the receiver (a process of its own) ---------------------------------------------------


def _serve_receiver(conn: Any, answer_seconds: float) -> None:
    """Answer every POST 200 after ``answer_seconds``; GET /stats gives what was received."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from local.lambdas import name_process

    name_process("receiver")

    lock = threading.Lock()
    state = {"in_flight": 0, "peak": 0}
    received: list[tuple] = []  # (path, webhook-id, arrived, answered, completed_at)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            arrived = time.time()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                state["in_flight"] += 1
                state["peak"] = max(state["peak"], state["in_flight"])
            try:
                time.sleep(answer_seconds)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                self.wfile.flush()
                ok = True
            except OSError:
                ok = False
            finally:
                with lock:
                    state["in_flight"] -= 1
            try:
                completed_at = json.loads(body).get("completed_at")
            except ValueError:
                completed_at = None
            with lock:
                received.append((self.path, self.headers.get("webhook-id"), arrived, time.time() if ok else None, completed_at))

        def do_GET(self) -> None:  # noqa: N802
            with lock:
                data = json.dumps({"peak": state["peak"], "in_flight": state["in_flight"], "received": received}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024  # the listen backlog: hundreds of connections may arrive at once

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass

    server = Server(("127.0.0.1", 0), Handler)
    conn.send(server.server_address[1])
    server.serve_forever()


class SlowReceiver:
    def __init__(self, answer_seconds: float) -> None:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self.process = context.Process(target=_serve_receiver, args=(child, answer_seconds), daemon=True)
        self.process.start()
        self.port = parent.recv()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stats(self) -> dict:
        import requests

        return requests.get(self.url("/stats"), timeout=30).json()

    def close(self) -> None:
        self.process.kill()
        self.process.join(5)


# ---- instruments, from outside the local stack ---------------------------------------------


class Probe:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: (function, source, records, start, end) of every invocation
        self.invocations: list[tuple[str, str, int, float, float]] = []
        self.running: Counter = Counter()
        self.peak_running: Counter = Counter()
        #: (action, start, end, CPU seconds of the serving thread, records answered, made by the stack itself)
        self.emulator_requests: list[tuple[str, float, float, float, int, bool]] = []

    def reset(self) -> None:
        with self.lock:
            self.invocations.clear()
            self.emulator_requests.clear()
            self.peak_running = Counter(self.running)


PROBE = Probe()


#: set: the callbacks function's stream mapping reads nothing (see main: "completed at once")
HOLD = threading.Event()


def instrument() -> None:
    """Time what the local stack does, from the outside (nothing in local/ knows about it)."""
    from local import emulator, lambdas, pumps

    poll = pumps.StreamPump.poll

    def held_poll(self: Any) -> bool:
        if HOLD.is_set() and self.function.spec.logical_id == "CallbacksFunction":
            return False
        return poll(self)

    pumps.StreamPump.poll = held_poll  # type: ignore[method-assign]

    invoke = lambdas.LocalFunction.invoke

    def timed(self: Any, event: Any, request_id: str | None = None) -> Any:
        name = self.spec.logical_id
        records = event.get("Records") or [] if isinstance(event, dict) else []
        source = records[0].get("eventSource", "?").split(":")[-1] if records else "direct"
        started = time.time()
        with PROBE.lock:
            PROBE.running[name] += 1
            PROBE.peak_running[name] = max(PROBE.peak_running[name], PROBE.running[name])
        try:
            return invoke(self, event, request_id)
        finally:
            with PROBE.lock:
                PROBE.running[name] -= 1
                PROBE.invocations.append((name, source, len(records), started, time.time()))

    lambdas.LocalFunction.invoke = timed  # type: ignore[method-assign]

    init = emulator._Serving.__init__

    def init_timed(self: Any, app: Any, behaviour: Any) -> None:
        def held(environ: dict, start_response: Any) -> list[bytes]:
            started = time.time()  # called with the lock held: this is the time moto keeps it
            cpu = time.thread_time()
            body = list(app(environ, start_response))
            cpu = time.thread_time() - cpu
            ended = time.time()
            action = environ.get("HTTP_X_AMZ_TARGET", "").split(".")[-1] or environ.get("PATH_INFO", "?")
            records = 0
            if action in ("GetRecords", "ReceiveMessage"):
                records = sum(chunk.count(b'"eventID"') + chunk.count(b'"ReceiptHandle"') for chunk in body)
            stack = "Boto3/" in environ.get("HTTP_USER_AGENT", "")  # the pumps' and set-up's clients
            with PROBE.lock:
                PROBE.emulator_requests.append((action, started, ended, cpu, records, stack))
            return body

        init(self, held, behaviour)

    emulator._Serving.__init__ = init_timed  # type: ignore[method-assign]


# ---- the AWS figure ---------------------------------------------------------------------


def aws_figure() -> list[str]:
    from jobsvc.config import Settings
    from local.template import Template

    template = Template()
    callbacks = template.functions()["CallbacksFunction"]
    stream = next(props for name, kind, props in template.event_sources() if name == "CallbacksFunction" and kind == "DynamoDB")
    sqs = next(props for name, kind, props in template.event_sources() if name == "CallbacksFunction" and kind == "SQS")
    batch = int(stream.get("BatchSize", 100))
    factor = int(stream.get("ParallelizationFactor", 1))
    concurrency = int(callbacks.environment.get("WEBHOOK_CONCURRENCY") or Settings.from_env({}).webhook_concurrency)
    reserved = template.resolve(template.resources["CallbacksFunction"]["Properties"].get("ReservedConcurrentExecutions"))
    reserved = int(reserved) if reserved is not None else None
    in_flight = min(batch, concurrency) * factor
    per_shard = in_flight / ANSWER_SECONDS
    lines = [
        f"AWS, per stream shard, computed from template.yaml for the same {1000 * ANSWER_SECONDS:.0f} ms receiver:",
        f"  records per batch (BatchSize)                 {batch}",
        f"  attempts in flight per invocation             {min(batch, concurrency)} (min(BatchSize, WEBHOOK_CONCURRENCY={concurrency}))",
        f"  batches of a shard at once (ParallelizationFactor) {factor}",
        f"  deliveries/s per shard = min({batch}, {concurrency}) x {factor} / {ANSWER_SECONDS} s = {per_shard:.0f}/s "
        f"({in_flight} attempts in flight)",
    ]
    if reserved:
        cap = reserved * min(batch, concurrency) / ANSWER_SECONDS
        lines.append(f"  reserved concurrency (WebhookFunctionConcurrency) {reserved} instances: at most {reserved} invocations "
                     f"at once over every shard and the retry queue, {reserved * min(batch, concurrency)} attempts in flight, "
                     f"{cap:.0f}/s in all; so {reserved / factor:.0f} shards at full parallelization "
                     f"(stream pollers take instances first, retries (SQS BatchSize {sqs.get('BatchSize')}) share them)")
    lines += [
        "  assumptions: every batch is full (a busy shard: records arrive faster than they are sent), every",
        "  attempt succeeds at its first try in 500 ms, a receiver that takes that many connections at once, the",
        f"  function's own work (2 DynamoDB requests per first-attempt delivery, ~10-20 ms in AWS) small beside {ANSWER_SECONDS} s, and",
        f"  batches whose {math.ceil(batch / concurrency)} rounds of {concurrency} take ~{math.ceil(batch / concurrency) * ANSWER_SECONDS:.1f} s",
        f"  (the last round only {batch - (math.ceil(batch / concurrency) - 1) * concurrency} attempts: a full batch averages "
        f"{batch / (math.ceil(batch / concurrency) * ANSWER_SECONDS) * factor:.0f}/s per shard, the figure above is the ceiling);",
        "  Lambda reads a shard ~4 times a second, so a shard's pollers also add ~250 ms per batch when it is idle.",
    ]
    return lines


# ---- the run ----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(math.ceil(q * len(ordered))) - 1))]


def union_seconds(spans: list[tuple[float, float]], start: float, end: float) -> float:
    """How long at least one of ``spans`` was going on, within [start, end]."""
    total, cursor = 0.0, start
    for a, b in sorted(spans):
        a, b = max(a, cursor), min(b, end)
        if b > a:
            total += b - a
            cursor = b
    return total


def parse_iso(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=__import__("datetime").timezone.utc).timestamp()


def main() -> None:
    import requests

    from bench.quiet import quiet_functions

    from local.stack import ApiKey, LocalStack

    quiet_functions()
    load_start = os.getloadavg()
    instrument()
    key = ApiKey("jsk_throughput_bench_0123456789abcdef", "org-throughput", "user-throughput")
    receiver = SlowReceiver(ANSWER_SECONDS)
    with LocalStack(port=0, api_keys=[key]) as stack:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key.key}"
        session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=PATCH_THREADS))
        url = stack.url
        ids = [""] * N
        retried: Counter = Counter()
        failed: Counter = Counter()

        def send(method: str, path: str, body: dict | None, expected: int) -> Any:
            """One API request; a 5xx (an instance timed out on this busy machine) is retried, as
            the client library does (a create is made safe to repeat by its Idempotency-Key, a
            repeated completion is answered 200 unchanged). None if it never succeeded."""
            headers = {"Idempotency-Key": f"bench-{path}-{json.dumps(body, sort_keys=True)}"} if method == "POST" else {}
            for attempt in range(8):
                r = session.request(method, url + path, json=body, headers=headers)
                if r.status_code < 500:
                    break
                retried[method] += 1
                time.sleep(min(10.0, 0.5 * 2 ** attempt))
            if r.status_code != expected:
                failed[method] += 1
                print(f"  {method} {path}: {r.status_code} {r.text[:200]}", file=sys.stderr)
                return None
            return r

        send("GET", "/v1/jobs?limit=1", None, 200)  # the authorizer's answer cached, instances warm

        def create(i: int) -> None:
            r = send("POST", "/v1/jobs", {"status": "running", "callback_url": receiver.url(f"/job-{i}")}, 201)
            ids[i] = r.json()["id"] if r is not None else ""

        started = time.time()
        with ThreadPoolExecutor(PATCH_THREADS) as pool:
            list(pool.map(create, range(N)))
        print(f"created {sum(1 for i in ids if i)} running jobs in {time.time() - started:.1f} s "
              f"(load average now {os.getloadavg()[0]:.2f})")
        time.sleep(3)  # the stream's creation records pass (no filter takes them) and the pumps go idle
        PROBE.reset()

        completed = [False] * N

        def complete(i: int) -> None:
            if ids[i]:
                completed[i] = send("PATCH", f"/v1/jobs/{ids[i]}", {"status": "completed"}, 200) is not None

        if HOLD_COMPLETIONS:
            HOLD.set()
        t0 = time.time()
        with ThreadPoolExecutor(PATCH_THREADS) as pool:
            list(pool.map(complete, range(N)))
        t_patched = time.time()
        expected = sum(completed)
        if HOLD_COMPLETIONS:
            # the projector (not held) counts the completions now, so that what is timed after the
            # release is the delivery path, not the projector catching up beside it
            time.sleep(2)
            HOLD.clear()
        t_release = time.time()

        # until every completed job's webhook is in, or nothing new came for a long while
        last_count, last_change = -1, time.time()
        while True:
            stats = receiver.stats()
            count = len({r[0] for r in stats["received"]})
            if count >= expected and stats["in_flight"] == 0:
                break
            if count != last_count:
                last_count, last_change = count, time.time()
            elif time.time() - last_change > 180:
                print(f"  gave up waiting: {count} of {expected} webhooks, none new for 180 s", file=sys.stderr)
                break
            time.sleep(0.5)
        time.sleep(1.0)  # a late duplicate would show up here
        stats = receiver.stats()
        with PROBE.lock:
            invocations = list(PROBE.invocations)
            emulator_requests = list(PROBE.emulator_requests)
            peak_running = Counter(PROBE.peak_running)
    receiver.close()
    load_end = os.getloadavg()
    report(stats, invocations, emulator_requests, peak_running, t0, t_patched, t_release, expected, retried, failed,
           load_start, load_end)


def report(stats: dict, invocations: list, emulator_requests: list, peak_running: Counter, t0: float, t_patched: float,
           t_release: float, expected: int, retried: Counter, failed: Counter, load_start: tuple, load_end: tuple) -> None:
    received = stats["received"]
    first_of: dict[str, tuple] = {}
    answered: Counter = Counter()
    for path, webhook_id, arrived, done, completed_at in received:
        if path not in first_of or arrived < first_of[path][2]:
            first_of[path] = (path, webhook_id, arrived, done, completed_at)
        if done is not None:
            answered[webhook_id] += 1
    duplicates = sum(n - 1 for n in answered.values() if n > 1)
    completions = [parse_iso(r[4]) for r in first_of.values() if r[4]]
    # the window starts when the backlog is released, or at the first completion
    if HOLD_COMPLETIONS:
        window_start, since = t_release, "release"
    else:
        window_start, since = (min(completions) if completions else t0), "first completion"
    arrivals = sorted(r[2] for r in first_of.values())
    last_receipt = arrivals[-1] if arrivals else time.time()
    window = max(1e-9, last_receipt - window_start)
    latencies = [r[2] - max(parse_iso(r[4]), window_start) for r in first_of.values() if r[4]]
    rate = len(first_of) / window
    after_patches = [a for a in arrivals if a > t_patched]
    drain = (len(after_patches) / (last_receipt - t_patched)) if after_patches and last_receipt > t_patched else float("nan")

    print(f"\nWebhook throughput, local stack, {N} jobs completed at once, receiver answering 200 after "
          f"{1000 * ANSWER_SECONDS:.0f} ms (load average at start {load_start[0]:.2f} / {load_start[1]:.2f} / {load_start[2]:.2f})")
    if HOLD_COMPLETIONS:
        print("  the callbacks function's stream mapping was held while the jobs were completed, then released: the "
              "window is release -> last webhook")
    print(f"  completions (PATCH, {PATCH_THREADS} threads)      {expected} in {t_patched - t0:6.1f} s = "
          f"{expected / (t_patched - t0):5.1f}/s   (API 5xx retried: {retried['POST']} creates, {retried['PATCH']} "
          f"completions; failed for good: {failed['POST']} creates, {failed['PATCH']} completions)")
    print(f"  {since} -> last webhook      {window:6.1f} s")
    print(f"  deliveries per second                 {rate:6.1f}/s   (goal >= 40/s: {'met' if rate >= 40 else 'MISSED'}; "
          f"{rate * ANSWER_SECONDS:.1f}x one attempt at a time's {1 / ANSWER_SECONDS:.0f}/s)")
    if not HOLD_COMPLETIONS:
        print(f"    of which after the last completion  {len(after_patches)} in {max(0.0, last_receipt - t_patched):.1f} s "
              f"= {drain:.1f}/s (the backlog drained by the callbacks path alone)")
    print(f"  peak requests in flight at receiver   {stats['peak']:6d}     (goal >= 20)")
    print(f"  webhooks received {len(received)}, jobs reached {len(first_of)} of {expected}, missing "
          f"{expected - len(first_of)}, duplicates (webhook-id answered 2xx twice) {duplicates}")
    if latencies:
        print(f"  {'release' if HOLD_COMPLETIONS else 'completion'} -> receipt latency         p50 {percentile(latencies, 0.5):6.2f} s   "
              f"p95 {percentile(latencies, 0.95):6.2f} s   max {max(latencies):6.2f} s")
    if arrivals:
        buckets = Counter(int((a - window_start) // 10) for a in arrivals)
        print(f"  webhooks received per 10 s from the {since}: "
              + " ".join(str(buckets.get(b, 0)) for b in range(int(window // 10) + 1)))

    start, end = window_start, last_receipt
    print("\n  where the time went, within the window (measured from outside the stack):")
    callbacks = [i for i in invocations if i[0] == "CallbacksFunction" and i[1] == "dynamodb"]
    if callbacks:
        sizes = [i[2] for i in callbacks]
        durations = [i[4] - i[3] for i in callbacks]
        ideal = [math.ceil(n / 32) * ANSWER_SECONDS for n in sizes]
        covered = union_seconds([(i[3], i[4]) for i in callbacks], start, end)
        print(f"    callbacks (stream): {len(callbacks)} invocations, records each mean {statistics.mean(sizes):.0f} "
              f"max {max(sizes)}; duration mean {statistics.mean(durations):.2f} s vs {statistics.mean(ideal):.2f} s "
              f"for its rounds of 32 x {ANSWER_SECONDS} s (x{sum(durations) / sum(ideal):.1f}); one running "
              f"{100 * covered / window:.0f}% of the window, at most {peak_running['CallbacksFunction']} at once")
        print(f"      => {sum(sizes) / sum(durations):.1f} records per second of invocation (the local stream pump "
              f"invokes up to ParallelizationFactor batches of a shard at once, on at most 4 local instances)")
    for name in sorted({i[0] for i in invocations} - {"CallbacksFunction"}):
        rows = [i for i in invocations if i[0] == name and i[3] <= end]
        if rows:
            print(f"    {name}: {len(rows)} invocations, {sum(i[2] for i in rows)} records, "
                  f"{sum(i[4] - i[3] for i in rows):.0f} s in all, at most {peak_running[name]} at once")
    window_requests = [r for r in emulator_requests if start <= r[1] <= end]
    if window_requests:
        held = union_seconds([(r[1], r[2]) for r in window_requests], start, end)
        print(f"    emulator (moto in this process, one request at a time): {len(window_requests)} requests, "
              f"lock held {held:.0f} s = {100 * held / window:.0f}% of the window")
        by_action: dict[tuple, list] = {}
        for action, a, b, cpu, records, stack in window_requests:
            by_action.setdefault((action, "pumps" if stack else "functions"), []).append((b - a, cpu, records))
        total = sum(b - a for _, a, b, *_ in window_requests) or 1
        print(f"      {'request':16} {'by':9} {'count':>6} {'ms each':>8} {'CPU ms':>7} {'share':>6}  records")
        for (action, by), rows in sorted(by_action.items(), key=lambda kv: -sum(r[0] for r in kv[1])):
            wall = sum(r[0] for r in rows)
            records = sum(r[2] for r in rows)
            extra = f"  {records} ({1000 * wall / records:.1f} ms a record)" if records else ""
            print(f"      {action:16} {by:9} {len(rows):6d} {1000 * wall / len(rows):8.1f} "
                  f"{1000 * sum(r[1] for r in rows) / len(rows):7.1f} {100 * wall / total:5.0f}%{extra}")
        print("      (ms each: wall time inside the lock; CPU ms: the serving thread's own CPU, the rest is waiting for "
              "this process's interpreter lock and the machine's cores)")
        longest = sorted(window_requests, key=lambda r: r[1] - r[2])[:3]
        print("      longest holds: " + ", ".join(f"{r[0]} {r[2] - r[1]:.1f} s" + (f" ({r[4]} records)" if r[4] else "")
                                                 for r in longest)
              + " (every other request, the API's and the functions', waits behind it)")
        cpu = sum(r[3] for r in window_requests)
        delivered = max(1, len(first_of))
        print(f"      emulator CPU per delivered webhook (its completion, delivery, the projector's counting, the pumps' "
              f"reads, the schedule's sweeps): {1000 * cpu / delivered:.0f} ms => at most {delivered / cpu:.0f}/s "
              f"with a core to itself; lock time per webhook {1000 * held / delivered:.0f} ms => "
              f"{delivered / held:.0f}/s as it ran")
    print()
    for line in aws_figure():
        print(line)
    print(f"\nload average at end {load_end[0]:.2f} / {load_end[1]:.2f} / {load_end[2]:.2f} (2 cores, shared)")


if __name__ == "__main__":
    main()
