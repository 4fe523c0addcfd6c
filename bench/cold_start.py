"""Cold start: the time to import each function's module in a fresh interpreter.

Printed as a ratio to ``import boto3`` measured the same way: each run of a
function is paired with one of ``import boto3`` (in turn before and after it),
and the figure is the median of the pairs' ratios (the machine is noisy; the
ratio is what to compare). Also printed, for the API function, in the order
AWS runs them: the import plus what its SnapStart snapshot holds besides (every
public model built, and every module a route imports, on first use elsewhere:
batches and the provider adapters, webhooks, stats, ``requests``), then the
first request a restored environment handles (the health route, no AWS call).
Last, where valgrind is installed, the instructions each import executes: a
count that does not vary from run to run, for boto3, for the libraries the API
function cannot do without (Powertools' event handler with validation,
pydantic) and for the function.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("BENCH_RUNS", "15"))

PROBE = r"""
import importlib, importlib.util, json, sys, time
target = sys.argv[1]
t0 = time.perf_counter()
if target == "boto3":
    import boto3
    module = None
else:
    spec = importlib.util.spec_from_file_location("app", f"functions/{target}/app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
t1 = time.perf_counter()
snapshot = first = None
if target == "api" and sys.argv[2:] != ["traced"]:  # as in AWS: the import, the snapshot's work, a first request
    from jobsvc.storage import db
    db.client = lambda: None  # the DynamoDB client would need credentials: not counted
    module._before_snapshot()
    t2 = time.perf_counter()
    event = json.load(open("events/api_health.json"))
    class Context:
        function_name = "bench"; memory_limit_in_mb = 512; aws_request_id = "bench"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
        def get_remaining_time_in_millis(self): return 10000
    module.lambda_handler(event, Context())
    snapshot, first = t2 - t0, time.perf_counter() - t2
print(json.dumps({"import": t1 - t0, "snapshot": snapshot, "first": first}))
"""


def _environment(target: str, traced: bool) -> dict[str, str]:
    """``traced``: as in Lambda with tracing on (Powertools' Tracer, and so the X-Ray SDK, loaded)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "layers" / "common"),
        "PYTHONDONTWRITEBYTECODE": "0",
        "TABLE_NAME": "JobsTable",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }
    env.pop("POWERTOOLS_TRACE_DISABLED", None)
    env.pop("AWS_LAMBDA_FUNCTION_NAME", None)
    if traced:
        env["AWS_LAMBDA_FUNCTION_NAME"] = f"bench-{target}"
    else:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    return env


def _probe(target: str, traced: bool = False) -> dict[str, float | None]:
    """One fresh interpreter's figures."""
    out = subprocess.run([sys.executable, "-c", PROBE, target, *(["traced"] if traced else [])], cwd=ROOT, env=_environment(target, traced),
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(target: str, traced: bool = False) -> dict[str, float | None]:
    """RUNS fresh interpreters importing ``target``, each paired with one that imports boto3 (in
    turn before and after it), so that both see the machine in the same state: on this shared
    machine ``import boto3`` alone varies by 2x from one minute to the next. Ratios: the median of
    the pairs' ratios; ``baseline``, ``import``, ``first``: medians, in seconds."""
    _probe("boto3"), _probe(target, traced)  # .pyc files written
    pairs = []
    for i in range(RUNS):
        if i % 2:
            run = _probe(target, traced)
            pairs.append((_probe("boto3")["import"], run))
        else:
            baseline = _probe("boto3")["import"]
            pairs.append((baseline, _probe(target, traced)))

    def ratio(name: str) -> float | None:
        values = [run[name] / baseline for baseline, run in pairs if run.get(name) is not None]
        return statistics.median(values) if values else None

    firsts = [run["first"] for _, run in pairs if run.get("first") is not None]
    return {"baseline": statistics.median(b for b, _ in pairs), "import": statistics.median(r["import"] for _, r in pairs),
            "import_ratio": ratio("import"), "snapshot_ratio": ratio("snapshot"),
            "first": statistics.median(firsts) if firsts else None}


#: for the count of instructions: what each figure imports (start-up alone is subtracted)
IMPORTS = {
    "import boto3": "import boto3",
    "Powertools' event handler with validation, pydantic (no code of ours)": (
        "from aws_lambda_powertools import Logger\n"
        "from aws_lambda_powertools.event_handler import APIGatewayHttpResolver\n"
        "from aws_lambda_powertools.event_handler.openapi.params import Body\n"
        "APIGatewayHttpResolver(enable_validation=True)"
    ),
    "functions/api": (
        "import importlib.util\n"
        "spec = importlib.util.spec_from_file_location('app', 'functions/api/app.py')\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)"
    ),
}


def instructions(code: str) -> int:
    """Instructions a fresh interpreter executes running ``code`` (valgrind's callgrind):
    the same count from one run to the next, where time on this shared machine is not."""
    env = {**_environment("api", False), "PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0"}
    env.pop("VALGRIND_OPTS", None)
    with tempfile.NamedTemporaryFile(prefix="callgrind.") as out:
        done = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}", sys.executable, "-c", code],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        summary = re.search(r"^summary: (\d+)", Path(out.name).read_text(), re.MULTILINE)
    if done.returncode != 0 or summary is None:
        raise RuntimeError(f"valgrind failed (exit {done.returncode}): {done.stderr[-800:]}")
    return int(summary.group(1))


def instruction_counts() -> None:
    if shutil.which("valgrind") is None:
        print("  (no valgrind here: no count of instructions)")
        return
    for code in IMPORTS.values():  # .pyc files written first: a count without compiling
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_environment("api", False), check=True, capture_output=True)
    try:
        start_up = instructions("pass")
        counts = {name: instructions(code) - start_up for name, code in IMPORTS.items()}
    except RuntimeError as exc:
        print(f"  (no count of instructions: {exc})")
        return
    baseline = counts["import boto3"]
    print("  instructions executed (valgrind; the same in every run; interpreter start-up subtracted):")
    for name, count in counts.items():
        print(f"  {name:<72} {count / 1e6:6.0f} M   {count / baseline:.2f}x")


def main() -> None:
    print(f"cold start (median of {RUNS} fresh interpreters, Python {sys.version.split()[0]}; each ratio is to "
          f"`import boto3` timed alternately with it)")
    traced_rows = []
    for name in sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").exists()):
        result = measure(name)
        print(f"  functions/{name:<12} import     {1000 * result['import']:7.1f} ms   {result['import_ratio']:.2f}x"
              f"   (import boto3 {1000 * result['baseline']:.1f} ms)")
        if result["snapshot_ratio"] is not None:
            print(f"  functions/{name:<12} import + its SnapStart snapshot's work   {result['snapshot_ratio']:.2f}x"
                  "   (every model built, every module a route imports; not the DynamoDB client)")
        if result["first"] is not None:
            print(f"  functions/{name:<12} then a first request (the health route): {1000 * result['first']:.1f} ms")
        traced = measure(name, traced=True)
        traced_rows.append((name, traced["import"], traced["import_ratio"]))
    print("  with tracing on, as in Lambda (Powertools' Tracer loads the X-Ray SDK at import):")
    for name, seconds, ratio in traced_rows:
        print(f"  functions/{name:<12} import     {1000 * seconds:7.1f} ms   {ratio:.2f}x")
    print("  (the API function runs with SnapStart in AWS: its import, tracer included, is in the snapshot)")
    instruction_counts()


if __name__ == "__main__":
    main()
