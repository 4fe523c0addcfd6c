"""Every function is traced by Powertools' Tracer in Lambda, and imports nothing for it elsewhere."""
from __future__ import annotations

import json
import subprocess
import sys

from jobsvc import tracing

FUNCTIONS = ["api", "authorizer", "callbacks", "projector", "scheduler"]


def test_tracing_is_on_in_lambda_only():
    assert tracing.enabled({"AWS_LAMBDA_FUNCTION_NAME": "f"})
    assert not tracing.enabled({})
    assert not tracing.enabled({"AWS_LAMBDA_FUNCTION_NAME": "f", "POWERTOOLS_TRACE_DISABLED": "true"})
    assert not tracing.enabled({"AWS_LAMBDA_FUNCTION_NAME": "f", "AWS_SAM_LOCAL": "true"})


def _imported(lambda_env: bool) -> dict:
    """Every function's module imported in one fresh interpreter: whether the X-Ray SDK got
    loaded, and how many wrappers (``__wrapped__`` links) each handler has."""
    probe = (
        "import importlib.util, json, sys; sys.path[:0] = ['layers/common']\n"
        f"names = {FUNCTIONS!r}\n"
        "depth = {}\n"
        "for name in names:\n"
        "    spec = importlib.util.spec_from_file_location('app_' + name, f'functions/{name}/app.py')\n"
        "    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "    f, n = m.lambda_handler, 0\n"
        "    while hasattr(f, '__wrapped__'):\n"
        "        f, n = f.__wrapped__, n + 1\n"
        "    depth[name] = n\n"
        "print(json.dumps({'xray': 'aws_xray_sdk.core' in sys.modules, 'depth': depth}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_SERVICE_NAME": "jobs", "TABLE_NAME": "t"}
    if lambda_env:
        env["AWS_LAMBDA_FUNCTION_NAME"] = "f"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=".")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_every_function_is_traced_in_lambda_and_nowhere_else():
    """In Lambda each handler gets one wrapper more (the Tracer's) and the X-Ray SDK is loaded;
    elsewhere nothing of it is imported. (All five in one interpreter each way: a fresh
    interpreter per function cost about ten seconds of the suite.)"""
    traced, plain = _imported(lambda_env=True), _imported(lambda_env=False)
    assert traced["xray"] and not plain["xray"]
    assert set(traced["depth"]) == set(FUNCTIONS)
    for name in FUNCTIONS:
        assert traced["depth"][name] == plain["depth"][name] + 1, (name, traced, plain)


def test_each_dynamodb_request_is_a_subsegment_when_tracing_is_on(monkeypatch):
    """The service's DynamoDB client is not botocore, which the Tracer patches: each request is
    put in a subsegment of its own, as the X-Ray SDK names botocore's (namespace aws)."""
    from aws_xray_sdk.core import xray_recorder
    from botocore.credentials import Credentials

    from jobsvc.storage import db, wire

    monkeypatch.setattr(db, "_traced", lambda: True)
    monkeypatch.setattr(db, "_client", wire.Client("us-east-1", credentials=Credentials("a", "b")))
    monkeypatch.setattr(wire, "transport", lambda url, headers, body: (200, {}, b'{"Count":0}'))
    segment = xray_recorder.begin_segment("test", sampling=1)
    try:
        db.call("Query", TableName="JobsTable", KeyConditionExpression="pk = :p")
        (sub,) = segment.subsegments
        assert sub.name == "DynamoDB" and sub.namespace == "aws"
        assert sub.aws["operation"] == "Query" and sub.aws["table_name"] == "JobsTable"
        assert sub.end_time  # closed when the answer came
    finally:
        segment.subsegments.clear()  # nothing to emit
        xray_recorder.clear_trace_entities()
