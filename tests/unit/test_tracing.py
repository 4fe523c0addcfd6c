"""Every function is traced by Powertools' Tracer in Lambda, and imports nothing for it elsewhere."""
from __future__ import annotations

import subprocess
import sys

import pytest

from jobsvc import tracing

FUNCTIONS = ["api", "authorizer", "callbacks", "projector", "scheduler"]


def test_tracing_is_on_in_lambda_only():
    assert tracing.enabled({"AWS_LAMBDA_FUNCTION_NAME": "f"})
    assert not tracing.enabled({})
    assert not tracing.enabled({"AWS_LAMBDA_FUNCTION_NAME": "f", "POWERTOOLS_TRACE_DISABLED": "true"})
    assert not tracing.enabled({"AWS_LAMBDA_FUNCTION_NAME": "f", "AWS_SAM_LOCAL": "true"})


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_function_is_traced_in_lambda(name):
    probe = (
        "import importlib.util, sys; sys.path[:0] = ['layers/common']\n"
        f"spec = importlib.util.spec_from_file_location('app', 'functions/{name}/app.py')\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "print('aws_xray_sdk.core' in sys.modules, m.lambda_handler.__qualname__)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1", "AWS_LAMBDA_FUNCTION_NAME": name,
           "POWERTOOLS_SERVICE_NAME": "jobs", "TABLE_NAME": "t"}
    traced = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=".")
    assert traced.returncode == 0, traced.stderr
    assert traced.stdout.split()[0] == "True", traced.stdout  # the X-Ray SDK is loaded and the handler wrapped
    env.pop("AWS_LAMBDA_FUNCTION_NAME")
    plain = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=".")
    assert plain.returncode == 0 and plain.stdout.split()[0] == "False", plain.stdout + plain.stderr
