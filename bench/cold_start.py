"""Cold start: the time to import each function's module in a fresh interpreter.

Printed as a ratio to ``import boto3`` measured the same way in the same run
(the machine is noisy; the ratio is what to compare). Each figure is the
median of several fresh interpreters. Also printed: import plus the first
request an instance handles (the health route, no AWS call), since work
moved out of the import would show up there; and, for the API function,
import plus building every public model (they are built on first use, and all
before its SnapStart snapshot: the snapshot's work).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("BENCH_RUNS", "7"))

PROBE = r"""
import importlib.util, json, sys, time
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
first = None
if target == "api":
    event = json.load(open("events/api_health.json"))
    class Context:
        function_name = "bench"; memory_limit_in_mb = 512; aws_request_id = "bench"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
        def get_remaining_time_in_millis(self): return 10000
    module.lambda_handler(event, Context())
    first = time.perf_counter() - t0
built = None
if target == "api":  # what the SnapStart snapshot holds besides: every public model built
    from jobsvc import schemas
    schemas.build()
    built = time.perf_counter() - t0
print(json.dumps({"import": t1 - t0, "first": first, "built": built}))
"""


def measure(target: str, traced: bool = False) -> dict[str, float | None]:
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
    imports, firsts, builts = [], [], []
    subprocess.run([sys.executable, "-c", PROBE, target], cwd=ROOT, env=env, check=True, capture_output=True)  # warm .pyc
    for _ in range(RUNS):
        out = subprocess.run([sys.executable, "-c", PROBE, target], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        imports.append(result["import"])
        if result["first"] is not None:
            firsts.append(result["first"])
        if result.get("built") is not None:
            builts.append(result["built"])
    return {"import": statistics.median(imports), "first": statistics.median(firsts) if firsts else None,
            "built": statistics.median(builts) if builts else None}


def main() -> None:
    baseline = measure("boto3")["import"]
    print(f"cold start (median of {RUNS} fresh interpreters, Python {sys.version.split()[0]})")
    print(f"  import boto3 (baseline)          {1000 * baseline:7.1f} ms   1.00x")
    traced_rows = []
    for name in sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").exists()):
        result = measure(name)
        line = f"  functions/{name:<12} import     {1000 * result['import']:7.1f} ms   {result['import'] / baseline:.2f}x"
        print(line)
        if result["first"] is not None:
            print(f"  functions/{name:<12} +1st call  {1000 * result['first']:7.1f} ms   {result['first'] / baseline:.2f}x")
        if result["built"] is not None:
            print(f"  functions/{name:<12} +all models built (its SnapStart snapshot, with the import) "
                  f"{1000 * result['built']:7.1f} ms   {result['built'] / baseline:.2f}x")
        traced_rows.append((name, measure(name, traced=True)["import"]))
    print("  with tracing on, as in Lambda (Powertools' Tracer loads the X-Ray SDK at import):")
    for name, seconds in traced_rows:
        print(f"  functions/{name:<12} import     {1000 * seconds:7.1f} ms   {seconds / baseline:.2f}x")
    print("  (the API function runs with SnapStart in AWS: its import, tracer included, is in the snapshot)")


if __name__ == "__main__":
    main()
