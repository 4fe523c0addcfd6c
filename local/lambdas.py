"""Run the real Lambda handlers in this process, as Lambda would: one event per instance at a time."""
from __future__ import annotations

import importlib.util
import itertools
import sys
import threading
import time
import uuid
from typing import Any, Callable

from .template import ACCOUNT, REGION, Function


class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    def __init__(self, function: Function) -> None:
        self.function_name = function.logical_id
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function.logical_id}"
        self.memory_limit_in_mb = function.memory
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.logical_id}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + function.timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalFunction:
    """A pool of instances of one function; each instance is a fresh import of its module.

    Like Lambda, an instance handles one event at a time and a new one is
    started (a cold start) when every instance is busy, up to ``max_instances``.
    """

    _serial = itertools.count()

    def __init__(self, function: Function, max_instances: int = 16) -> None:
        self.spec = function
        self.max_instances = max_instances
        self._idle: list[Callable[..., Any]] = []
        self._count = 0
        self._cond = threading.Condition()

    def _load(self) -> Callable[..., Any]:
        module_name, handler_name = self.spec.handler.rsplit(".", 1)
        path = self.spec.code_dir / f"{module_name}.py"
        unique = f"_lambda_{self.spec.logical_id}_{next(self._serial)}"
        spec = importlib.util.spec_from_file_location(unique, path)
        assert spec is not None and spec.loader is not None, path
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module
        spec.loader.exec_module(module)
        return getattr(module, handler_name)

    def _acquire(self) -> Callable[..., Any]:
        with self._cond:
            while not self._idle and self._count >= self.max_instances:
                self._cond.wait()
            if self._idle:
                return self._idle.pop()
            self._count += 1
        try:
            return self._load()
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def _release(self, handler: Callable[..., Any]) -> None:
        with self._cond:
            self._idle.append(handler)
            self._cond.notify()

    def warm(self) -> None:
        """Start one instance now (so the first request does not pay the import)."""
        self._release(self._acquire())

    def invoke(self, event: dict) -> Any:
        handler = self._acquire()
        try:
            return handler(event, LambdaContext(self.spec))
        finally:
            self._release(handler)
