"""Batch results: a batch of 10,000 results of ~30 KB stored by scheduler runs, and the poller's memory.

- The fake provider (``tests/fake_providers.py``, in a process of its own) holds an Anthropic
  message batch of N requests (``BENCH_BATCH_RESULTS``, default 10,000), each with a ``fake_text``
  of ~30 KB (``BENCH_RESULT_BYTES``), unique per request (its custom_id, then filler), so that
  every stored result can be checked whole. It ends at its first poll after the registration.
- The batch is registered through the API (``POST /v1/batches`` with its ``provider_batch_id``:
  a submission of 300 MB could never pass the 3 MB body limit) on the local stack, whose
  emulator (moto) runs in a process of its own. The stack's pumps are stopped: runs are driven
  here, and the stream pumps would only read the result items' records (which no function
  takes), competing for the emulator, which serves one request at a time.
- Scheduler runs: each is ``jobsvc.scheduler.run(remaining_ms, run_id)`` in a fresh child
  process (a cold Lambda instance), with a 300 s budget (the function's Timeout) counted
  from its start, the 30 s reserve of the settings (SCHEDULER_RESERVE_SECONDS) and the
  default POLL_CONCURRENCY (16). A child still running at the budget is killed, as Lambda
  would. Each run prints: results stored, seconds, the child's peak RSS
  (``VmHWM``) beside its RSS after the imports, its DynamoDB time by operation,
  and the emulator's and fake provider's CPU seconds during the run.
- At the end: runs needed, and every item read back through ``GET /v1/batches/{id}/items``
  (following ``Link``): none missing, none duplicated, every result the text it was given.
- Then the same with 16 batches at once (``BENCH_MULTI_BATCHES`` = 16, each of
  ``BENCH_MULTI_RESULTS`` = 1,000 results of the same size: 16,000 in all, kept smaller than
  16 x 10,000 so that the run stays within minutes on this machine), to show the poller's
  memory stays bounded by bytes with the default concurrency. ``BENCH_MULTI_BATCHES=0`` skips it.

Goals (the issue): all stored within a few runs; peak memory <= 256 MB with the default
concurrency. Figures only, no assertion on time; the load average is printed at the start
and the end (2 shared cores).

    .venv/bin/python bench/batch_results.py
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common")]
RESULTS = int(os.environ.get("BENCH_BATCH_RESULTS", "10000"))
RESULT_BYTES = int(os.environ.get("BENCH_RESULT_BYTES", "30000"))
MULTI_BATCHES = int(os.environ.get("BENCH_MULTI_BATCHES", "16"))
MULTI_RESULTS = int(os.environ.get("BENCH_MULTI_RESULTS", "1000"))
BUDGET_SECONDS = float(os.environ.get("BENCH_RUN_SECONDS", "300"))  # the scheduler function's Timeout
MAX_RUNS = int(os.environ.get("BENCH_MAX_RUNS", "12"))
GOAL_MB = 256


# ---- the child: one scheduler run, as a fresh Lambda instance would make it ------------------


def child(run_id: str) -> None:
    """One scheduler run; prints one JSON line with what it did and its memory."""

    def rss_kb(field: str = "VmRSS") -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    started = time.monotonic()
    if os.environ.get("BENCH_TRACEMALLOC"):
        import tracemalloc

        tracemalloc.start()
    from jobsvc import scheduler, storage
    from jobsvc.config import settings

    imported_kb = rss_kb()
    db_seconds: dict[str, float] = {}
    db_counts: dict[str, int] = {}
    local = threading.local()
    lock = threading.Lock()

    def listener(stage: str, operation: str, params: dict) -> None:
        if stage == "before":
            local.started = time.monotonic()
            return
        took = time.monotonic() - getattr(local, "started", time.monotonic())
        with lock:
            db_seconds[operation] = db_seconds.get(operation, 0.0) + took
            db_counts[operation] = db_counts.get(operation, 0) + 1

    storage.wire.listeners.append(listener)  # for the whole run (this process ends with it)
    budget_end = started + BUDGET_SECONDS
    samples: list[tuple[float, int, int]] = []
    if os.environ.get("BENCH_MEMORY_SAMPLES"):  # diagnosis: RSS (and Python's own allocations) over the run
        def sample() -> None:
            import tracemalloc

            while True:
                traced = tracemalloc.get_traced_memory()[0] // 1024 if tracemalloc.is_tracing() else 0
                samples.append((time.monotonic() - started, rss_kb(), traced))
                time.sleep(1.0)

        threading.Thread(target=sample, daemon=True).start()
    report = scheduler.run(lambda: int((budget_end - time.monotonic()) * 1000), run_id)
    took = time.monotonic() - started
    out = {
        "run_id": run_id, "seconds": took, "ran": report.ran, "polled": report.polled, "resuming": report.resuming,
        "ended": report.ended, "poll_errors": report.poll_errors, "left": report.left_for_next_run,
        "still_running": report.still_running, "imported_kb": imported_kb,
        # this process's own high-water mark (ru_maxrss is not: Linux carries the parent's
        # over fork and exec, so a child of a large parent reports the parent's peak)
        "peak_kb": rss_kb("VmHWM"), "db_seconds": db_seconds, "db_counts": db_counts,
        "cpu": resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime,
        "poll_concurrency": settings().poll_concurrency, "reserve_seconds": settings().scheduler_reserve_seconds,
    }
    if os.environ.get("BENCH_TRACEMALLOC"):
        import tracemalloc

        out["tracemalloc_peak_kb"] = tracemalloc.get_traced_memory()[1] // 1024
        top = tracemalloc.take_snapshot().statistics("lineno")[:8]
        out["tracemalloc_top"] = [f"{stat.size // 1024} KB {stat.count} blocks {stat.traceback}" for stat in top]
    if samples:
        out["samples"] = samples
    print("RESULT " + json.dumps(out), flush=True)


# ---- helpers of the parent -------------------------------------------------------------


def serve(code: str) -> tuple[subprocess.Popen, str]:
    """A server in a process of its own; its first line of output is its URL."""
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline().strip()  # type: ignore[union-attr]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def text_for(custom_id: str) -> str:
    head = f"{custom_id}:"
    return head + "x" * (RESULT_BYTES - len(head))


def submit_to_fake(fake_url: str, prefix: str, n: int) -> str:
    """Create a message batch of n requests at the fake provider (as if submitted elsewhere);
    its id. The body is written by hand: n x 30 KB."""
    import requests

    parts = []
    for i in range(n):
        cid = f"{prefix}-{i:05d}"
        parts.append(json.dumps({"custom_id": cid, "params": {"model": "m", "max_tokens": 8, "messages": [],
                                                               "fake_text": text_for(cid)}}))
    body = ('{"requests": [' + ",".join(parts) + "]}").encode()
    del parts
    r = requests.post(f"{fake_url}/v1/messages/batches", data=body, timeout=600,
                      headers={"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01",
                               "content-type": "application/json"})
    assert r.status_code == 200, r.text[:500]
    return r.json()["id"]


class Bench:
    def __init__(self, stack: Any, session: Any, emulator_pid: int, fake_pid: int) -> None:
        self.stack = stack
        self.session = session
        self.emulator_pid = emulator_pid
        self.fake_pid = fake_pid
        self.runs = 0

    def register(self, provider_batch_id: str) -> str:
        r = self.session.post(f"{self.stack.url}/v1/batches",
                              json={"provider": "anthropic", "provider_batch_id": provider_batch_id})
        assert r.status_code == 201, (r.status_code, r.text)
        return r.json()["id"]

    def job(self, job_id: str) -> dict:
        from jobsvc.storage import jobs as job_store

        job, _ = job_store.get_job("org-results", job_id)
        return job or {}

    def scheduler_run(self) -> dict:
        """One run in a fresh child process, killed at the budget as Lambda would."""
        self.runs += 1
        run_id = f"bench-results-{self.runs}-{time.time():.0f}"
        emulator_cpu, fake_cpu = cpu_seconds(self.emulator_pid), cpu_seconds(self.fake_pid)
        started = time.monotonic()
        process = subprocess.Popen([sys.executable, __file__, "--scheduler-run", run_id], cwd=ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = process.communicate(timeout=BUDGET_SECONDS + 2)
            killed = False
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            killed = True
        line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
        result = json.loads(line[len("RESULT "):]) if line else {}
        result.update(wall=time.monotonic() - started, killed=killed,
                      emulator_cpu=cpu_seconds(self.emulator_pid) - emulator_cpu,
                      fake_cpu=cpu_seconds(self.fake_pid) - fake_cpu)
        if not line:
            result["stderr"] = err[-2000:]
        return result

    def until_done(self, job_ids: list[str], label: str) -> dict:
        """Scheduler runs until every batch has ended; a row per run."""
        peak_kb = 0
        rows = []
        print(f"  {'run':>3} {'stored':>7} {'total':>7} {'seconds':>8} {'peak RSS':>9} {'RSS at start':>12} "
              f"{'poller CPU':>10} {'emulator CPU':>12} {'fake CPU':>8}  DynamoDB (requests, seconds)  outcome")
        for run in range(1, MAX_RUNS + 1):
            before = sum(int(self.job(j).get("results_stored") or 0) for j in job_ids)
            result = self.scheduler_run()
            jobs = [self.job(j) for j in job_ids]
            after = sum(int(j.get("results_stored") or 0) for j in jobs)
            ended = sum(1 for j in jobs if j.get("status") != "running")
            peak_kb = max(peak_kb, result.get("peak_kb", 0))
            db = ", ".join(f"{name} {result['db_counts'][name]} {seconds:.1f}s"
                           for name, seconds in sorted(result.get("db_seconds", {}).items(), key=lambda kv: -kv[1]))
            outcome = ("KILLED at the budget" if result["killed"] else
                       f"ended {result.get('ended')}, resuming {result.get('resuming')}, errors {result.get('poll_errors')}"
                       if result.get("ran") else f"did not run (lease held) {result.get('stderr', '')[-300:]}")
            errors = sorted({j.get("last_poll_error") for j in jobs if j.get("last_poll_error")})
            print(f"  {run:>3} {after - before:>7} {after:>7} {result['wall']:>8.1f} "
                  f"{result.get('peak_kb', 0) / 1024:>7.0f}MB {result.get('imported_kb', 0) / 1024:>10.0f}MB "
                  f"{result.get('cpu', 0):>9.1f}s {result['emulator_cpu']:>11.1f}s {result['fake_cpu']:>7.1f}s  {db or '-'}  {outcome}"
                  + (f"; last_poll_error: {errors[:2]}" if errors else "")
                  + (f"; tracemalloc peak {result['tracemalloc_peak_kb'] / 1024:.0f} MB" if "tracemalloc_peak_kb" in result else ""))
            rows.append((after - before, result))
            if ended == len(job_ids):
                break
        return {"runs": run, "peak_kb": peak_kb, "ended": ended, "rows": rows}

    def read_items(self, job_id: str) -> list[dict]:
        """Every item through the API, following Link."""
        url = f"{self.stack.url}/v1/batches/{job_id}/items?limit=100"
        items: list[dict] = []
        pages = 0
        while url:
            r = self.session.get(url)
            assert r.status_code == 200, (r.status_code, r.text[:300])
            items += r.json()
            pages += 1
            url = r.links.get("next", {}).get("url")
        self.pages = pages
        return items

    def check(self, job_id: str, prefix: str, n: int) -> tuple[int, int, int, int, int]:
        """(items read, missing, duplicated, wrong, pages)."""
        items = self.read_items(job_id)
        seen: dict[str, int] = {}
        wrong = 0
        for item in items:
            cid = item["custom_id"]
            seen[cid] = seen.get(cid, 0) + 1
            try:
                text = item["result"]["content"][0]["text"]
            except (KeyError, IndexError, TypeError):
                text = None
            if item["status"] != "completed" or item["truncated"] or text != text_for(cid):
                wrong += 1
        wanted = {f"{prefix}-{i:05d}" for i in range(n)}
        missing = len(wanted - set(seen))
        duplicated = sum(c - 1 for c in seen.values() if c > 1) + len(set(seen) - wanted)
        return len(items), missing, duplicated, wrong, self.pages


def main() -> None:
    import requests

    from bench.quiet import quiet_functions

    quiet_functions()
    load_start = os.getloadavg()
    fake, fake_url = serve(
        "from tests.fake_providers import FakeProviders; import time; "
        "f = FakeProviders(polls_to_finish=1); print(f.url, flush=True); time.sleep(86400)"
    )
    emulator, endpoint = serve("from local.emulator import Emulator; import time; print(Emulator().start(), flush=True); "
                               "time.sleep(86400)")
    os.environ.update(ANTHROPIC_BASE_URL=fake_url, ANTHROPIC_API_KEY="sk-ant-test",
                      AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
    from local.stack import ApiKey, LocalStack

    key = ApiKey("jsk_results_bench_0123456789abcdef", "org-results", "user-results")
    # the schedule never fires (runs are made here), and the pumps are stopped once started
    stack = LocalStack(port=0, endpoint_url=endpoint, api_keys=[key], schedule_seconds=10**7).start()
    for pump in stack.pumps:
        pump.stop()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key.key}"
    bench = Bench(stack, session, emulator.pid, fake.pid)
    try:
        from jobsvc.config import settings

        cfg = settings()
        print(f"Batch results: scheduler runs in child processes, budget {BUDGET_SECONDS:.0f} s each "
              f"(reserve {cfg.scheduler_reserve_seconds:.0f} s), POLL_CONCURRENCY {cfg.poll_concurrency}; "
              f"load average at start {load_start[0]:.2f} / {load_start[1]:.2f} / {load_start[2]:.2f}")
        single(bench, fake_url)
        if MULTI_BATCHES > 0:
            multi(bench, fake_url)
    finally:
        stack.stop()
        emulator.terminate()
        fake.terminate()
    load_end = os.getloadavg()
    print(f"\nload average at end {load_end[0]:.2f} / {load_end[1]:.2f} / {load_end[2]:.2f} (2 cores, shared)")


def single(bench: Bench, fake_url: str) -> None:
    started = time.monotonic()
    provider_id = submit_to_fake(fake_url, "one", RESULTS)
    job_id = bench.register(provider_id)
    print(f"\n1 batch of {RESULTS} results of {RESULT_BYTES / 1000:.0f} KB ({RESULTS * RESULT_BYTES / 1e6:.0f} MB) "
          f"at the fake provider, registered as {job_id} ({time.monotonic() - started:.0f} s to set up)")
    done = bench.until_done([job_id], "single")
    job = bench.job(job_id)
    read_started = time.monotonic()
    n, missing, duplicated, wrong, pages = bench.check(job_id, "one", RESULTS)
    read_seconds = time.monotonic() - read_started
    stored_seconds = sum(r["wall"] for _, r in done["rows"])
    print(f"  runs needed {done['runs']} (batch {job.get('status')}, results_stored {job.get('results_stored')}, "
          f"{RESULTS / stored_seconds:.0f} results/s over the runs' {stored_seconds:.0f} s)")
    print(f"  poller peak RSS {done['peak_kb'] / 1024:.0f} MB (goal <= {GOAL_MB} MB: "
          f"{'met' if done['peak_kb'] / 1024 <= GOAL_MB else 'MISSED'})")
    print(f"  read back through GET /v1/batches/{{id}}/items: {n} items in {pages} pages ({read_seconds:.0f} s), "
          f"missing {missing}, duplicated {duplicated}, wrong or truncated {wrong}")


def multi(bench: Bench, fake_url: str) -> None:
    started = time.monotonic()
    ids = []
    for b in range(MULTI_BATCHES):
        ids.append((bench.register(submit_to_fake(fake_url, f"m{b:02d}", MULTI_RESULTS)), f"m{b:02d}"))
    print(f"\n{MULTI_BATCHES} batches at once, {MULTI_RESULTS} results of {RESULT_BYTES / 1000:.0f} KB each "
          f"({MULTI_BATCHES * MULTI_RESULTS} in all, {MULTI_BATCHES * MULTI_RESULTS * RESULT_BYTES / 1e6:.0f} MB; fewer per "
          f"batch than the single batch's {RESULTS} to keep the run within minutes) "
          f"({time.monotonic() - started:.0f} s to set up)")
    done = bench.until_done([j for j, _ in ids], "multi")
    totals = [0, 0, 0, 0]
    for job_id, prefix in ids:
        n, missing, duplicated, wrong, _ = bench.check(job_id, prefix, MULTI_RESULTS)
        for i, v in enumerate((n, missing, duplicated, wrong)):
            totals[i] += v
    print(f"  runs needed {done['runs']} ({done['ended']} of {MULTI_BATCHES} batches ended)")
    print(f"  poller peak RSS {done['peak_kb'] / 1024:.0f} MB (goal <= {GOAL_MB} MB: "
          f"{'met' if done['peak_kb'] / 1024 <= GOAL_MB else 'MISSED'})")
    print(f"  read back: {totals[0]} items, missing {totals[1]}, duplicated {totals[2]}, wrong or truncated {totals[3]}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--scheduler-run"]:
        child(sys.argv[2])
    else:
        main()
