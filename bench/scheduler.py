"""One scheduler run over N running batches against a fake provider that answers after 100 ms.

Prints the wall time for N = 100 and N = 1000 as a ratio to the ideal
N x 100 ms / pool size, the DynamoDB requests per polled batch, and the same
run over a table holding many other jobs (the cost follows N, not the table:
work is found through indexes, never a scan). DynamoDB is the local stack's
emulator (moto, one request at a time) in a process of its own.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
LATENCY = 0.1
SIZES = [int(n) for n in os.environ.get("BENCH_BATCHES", "100,1000").split(",")]


def serve(code: str) -> tuple[object, str]:
    """Run a server in a process of its own (so that it does not share this one's interpreter lock)."""
    import subprocess

    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline().strip()  # type: ignore[union-attr]


def main() -> None:
    # a run polls at most POLL_MAX_PER_PROVIDER batches of a provider (600 by default, the rest
    # wait for the next run): the bench measures one run over all N, so the cap is raised to N
    os.environ.setdefault("POLL_MAX_PER_PROVIDER", str(max(SIZES)))
    fake, fake_url = serve(
        "from tests.fake_providers import FakeProviders; import time; "
        f"f = FakeProviders(polls_to_finish=10**6); f.latency = {LATENCY}; print(f.url, flush=True); time.sleep(3600)"
    )
    os.environ.update(ANTHROPIC_BASE_URL=fake_url, ANTHROPIC_API_KEY="sk-ant-test", PROVIDER_TIMEOUT_SECONDS="10")
    from local.stack import LocalStack

    emulator, endpoint = serve("from local.emulator import Emulator; import time; print(Emulator().start(), flush=True); time.sleep(3600)")
    os.environ.update(AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
    stack = LocalStack(port=0, endpoint_url=endpoint).start()
    for pump in stack.pumps:
        pump.stop()  # runs are driven here, not by the schedule

    from jobsvc import batches, scheduler
    from jobsvc.auth import Actor
    from jobsvc.config import settings
    from jobsvc.jobs import create_job, update_running_batch
    from jobsvc.schemas import BatchCreate, JobCreate
    from jobsvc.storage import batches as batch_store, layout
    from jobsvc.storage.jobs import Write
    from local.counting import count_dynamodb_requests

    actor = Actor("org-bench", "user-bench")
    pool = settings().poll_concurrency
    made = 0

    def ensure(n: int) -> None:
        nonlocal made
        from concurrent.futures import ThreadPoolExecutor

        request = BatchCreate(provider="anthropic", requests=[{"custom_id": "r", "params": {}}])
        with ThreadPoolExecutor(pool) as submitters:
            list(submitters.map(lambda _: batches.create_batch(actor, request), range(n - made)))
        made = n

    def one_run(n: int) -> tuple[float, list[str], scheduler.RunReport]:
        with count_dynamodb_requests() as calls:
            started = time.perf_counter()
            report = scheduler.run(lambda: 900_000, f"bench-{n}-{time.time()}")
            took = time.perf_counter() - started
        assert report.polled == n and report.still_running == n, report
        return took, list(calls), report

    print(f"scheduler run, fake provider answering after {1000 * LATENCY:.0f} ms, pool of {pool}")
    for n in SIZES:
        ensure(n)
        took, calls, _ = one_run(n)
        ideal = n * LATENCY / pool
        per_batch = calls.count("UpdateItem") / n
        print(f"  N={n:<5} wall {took:6.2f} s   ideal {ideal:5.2f} s   ratio {took / ideal:4.2f}   "
              f"DynamoDB {len(calls)} requests ({per_batch:.2f} UpdateItem per batch, "
              f"{calls.count('Query')} Query, {len(calls) - calls.count('UpdateItem') - calls.count('Query')} other)")

    n = SIZES[0]
    for _ in range(5000):
        create_job(actor, JobCreate(expires_in_seconds=86400))
    # only the first n batches stay running: end the rest so the run covers n again
    for entry in batch_store.polling_entries()[n:]:
        update_running_batch(layout.org_of_pk(entry["pk"]), entry["sk"].removeprefix("JOB#"), Write(), target="completed")
    took, calls, _ = one_run(n)
    print(f"  N={n:<5} with 5000 more jobs in the table: wall {took:6.2f} s, DynamoDB {len(calls)} requests "
          f"({', '.join(sorted(set(calls)))}; no Scan)")
    stack.stop()
    emulator.terminate()  # type: ignore[attr-defined]
    fake.terminate()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
