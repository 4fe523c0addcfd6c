"""Powertools Tracer (X-Ray) for every function, created only where it traces.

Tracing is on in the template (``Tracing: Active``); Powertools' Tracer imports the X-Ray SDK
when it is created, which is most of a function's import time. Where it would be disabled
anyway (outside Lambda: the local stack, the tests, the benchmarks; or with
POWERTOOLS_TRACE_DISABLED) nothing is imported and the handler is left as it is.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Callable, Iterator


def enabled(env: dict[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    disabled = env.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() in ("1", "true", "yes", "on")
    return bool(env.get("AWS_LAMBDA_FUNCTION_NAME")) and not disabled and not env.get("AWS_SAM_LOCAL")


def capture(handler: Callable[..., Any]) -> Callable[..., Any]:
    """The handler, traced by Powertools' Tracer (patching botocore and requests) when tracing is on."""
    if not enabled():
        return handler
    from aws_lambda_powertools import Tracer

    return Tracer().capture_lambda_handler(handler)


@contextmanager
def aws_call(service: str, operation: str, resource: dict[str, str]) -> Iterator[None]:
    """One AWS request the service sends without botocore (its DynamoDB client, storage/wire.py),
    as an X-Ray subsegment named as the X-Ray SDK names botocore's: the service's name, namespace
    ``aws``, the operation and the resource (e.g. ``table_name``) in its ``aws`` block, and the
    failure if it failed. Call it only when ``enabled()``."""
    from aws_xray_sdk.core import xray_recorder

    with xray_recorder.in_subsegment(service) as subsegment:
        if subsegment is not None:
            subsegment.namespace = "aws"
            subsegment.put_annotation("operation", operation)
            subsegment.set_aws({"operation": operation, "region": os.environ.get("AWS_REGION", ""), **resource})
        yield
