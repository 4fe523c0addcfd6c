"""Run the real Lambda handlers as Lambda does: each instance a process of its own, one event at a time.

A process per instance matters: libraries keep per-invocation state in globals
(Powertools' resolver keeps the current event in a class attribute), which is
safe in Lambda, where an execution environment handles one event at a time,
and would mix requests up if instances were threads of one process.
"""
from __future__ import annotations

import importlib.util
import multiprocessing
import sys
import threading
import time
import traceback
import uuid
from multiprocessing.connection import Connection
from typing import Any

from .template import ACCOUNT, REGION, Function


class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    def __init__(self, name: str, memory: int, timeout: int) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        self.memory_limit_in_mb = memory
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class FunctionError(Exception):
    """The handler raised (the traceback is the instance's)."""


def _instance(conn: Connection, spec: dict, paths: list[str]) -> None:
    """An execution environment: import the handler once (the cold start), then serve events."""
    sys.path[:0] = paths
    module_name, handler_name = spec["handler"].rsplit(".", 1)
    loader = importlib.util.spec_from_file_location(f"{spec['name']}_{module_name}", f"{spec['code_dir']}/{module_name}.py")
    module = importlib.util.module_from_spec(loader)  # type: ignore[arg-type]
    loader.loader.exec_module(module)  # type: ignore[union-attr]
    handler = getattr(module, handler_name)
    conn.send(("ready", None))
    while True:
        try:
            event = conn.recv()
        except EOFError:
            return
        if event is None:
            return
        try:
            conn.send(("ok", handler(event, LambdaContext(spec["name"], spec["memory"], spec["timeout"]))))
        except BaseException:  # noqa: BLE001 - report it to the invoker, as Lambda would
            conn.send(("error", traceback.format_exc()))


class LocalFunction:
    """A pool of instances of one function; a new instance (a cold start) is started when all are busy."""

    def __init__(self, function: Function, paths: list[str], max_instances: int = 4) -> None:
        self.spec = function
        self.paths = paths
        self.max_instances = max_instances
        self._idle: list[tuple[Any, Connection]] = []
        self._all: list[tuple[Any, Connection]] = []
        self._cond = threading.Condition()
        self._context = multiprocessing.get_context("spawn")

    def _start(self) -> tuple[Any, Connection]:
        parent, child = self._context.Pipe()
        spec = {
            "name": self.spec.logical_id, "handler": self.spec.handler, "code_dir": str(self.spec.code_dir),
            "memory": self.spec.memory, "timeout": self.spec.timeout,
        }
        process = self._context.Process(target=_instance, args=(child, spec, self.paths), daemon=True,
                                        name=f"lambda-{self.spec.logical_id}")
        process.start()
        child.close()
        status, _ = parent.recv()  # raises EOFError if the import failed
        assert status == "ready"
        return process, parent

    def _acquire(self) -> tuple[Any, Connection]:
        with self._cond:
            while not self._idle and len(self._all) >= self.max_instances:
                self._cond.wait()
            if self._idle:
                return self._idle.pop()
            placeholder: tuple[Any, Connection] = (None, None)  # type: ignore[assignment]
            self._all.append(placeholder)
        try:
            instance = self._start()
        except BaseException:
            with self._cond:
                self._all.remove(placeholder)
                self._cond.notify()
            raise
        with self._cond:
            self._all[self._all.index(placeholder)] = instance
        return instance

    def _release(self, instance: tuple[Any, Connection], broken: bool = False) -> None:
        with self._cond:
            if broken:
                self._all.remove(instance)
                instance[0].kill()
            else:
                self._idle.append(instance)
            self._cond.notify()

    def warm(self) -> None:
        """Start one instance now, so that the first event does not pay the import."""
        self._release(self._acquire())

    def invoke(self, event: dict) -> Any:
        instance = self._acquire()
        try:
            instance[1].send(event)
            status, payload = instance[1].recv()
        except (EOFError, OSError) as exc:  # the instance died (crash, kill): discard it
            self._release(instance, broken=True)
            raise FunctionError(f"{self.spec.logical_id}: the instance died: {exc!r}") from None
        self._release(instance)
        if status == "error":
            raise FunctionError(f"{self.spec.logical_id} raised:\n{payload}")
        return payload

    def stop(self) -> None:
        with self._cond:
            for process, conn in self._all:
                if process is None:
                    continue
                try:
                    conn.send(None)
                except OSError:
                    pass
                process.join(timeout=2)
                if process.is_alive():
                    process.kill()
            self._all.clear()
            self._idle.clear()
