"""Test helpers shared by unit and integration tests."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from local.counting import count_dynamodb_requests  # noqa: F401  (re-exported for tests)
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"


def load_function(name: str) -> Any:
    """Import functions/<name>/app.py under a unique module name (every function's module is app.py)."""
    module_name = f"_test_fn_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "functions" / name / "app.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[module_name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def event(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


class LambdaContext:
    function_name = "test"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    memory_limit_in_mb = 512
    aws_request_id = "test-request"
    log_group_name = "/aws/lambda/test"
    log_stream_name = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000
