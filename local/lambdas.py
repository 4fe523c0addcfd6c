"""Run the real Lambda handlers as Lambda does: each instance a process of its own, one event at a time.

A process per instance matters: libraries keep per-invocation state in globals
(Powertools' resolver keeps the current event in a class attribute), which is
safe in Lambda, where an execution environment handles one event at a time,
and would mix requests up if instances were threads of one process.

What Lambda enforces is enforced here too:

- the event and the answer travel as JSON, written as the python3.12+ runtime writes it
  (``ensure_ascii=False``), and each may be at most 6 MB (6,291,456 bytes) for a synchronous
  invocation ("For synchronous invocations, the maximum payload size is 6 MB":
  https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html). A larger event is refused
  before the function runs (``RequestTooLarge``: Lambda's 413 RequestTooLargeException); a
  larger answer is a function error (``Function.ResponseSizeTooLarge``);
- the function's ``Timeout`` (template.yaml): past it the instance is killed and the invocation
  fails with "Task timed out after N.NN seconds" (``LOCAL_TIMEOUT_SCALE`` stretches every Timeout
  on a machine too busy to keep AWS's pace; 1, the default, is AWS's);
- an instance that dies (crash, or a ``kill`` fault of LOCAL_FAULTS) fails its invocation with
  ``Runtime.ExitError`` and is replaced by a new one (a cold start) for the next event.

Every failure is a ``FunctionError`` (or ``RequestTooLarge``), which the callers treat as Lambda's
callers do: API Gateway answers 500, stream batches are retried and bisected, SQS messages come
back after their visibility timeout, scheduled (asynchronous) invocations are retried.
"""
from __future__ import annotations

import decimal
import importlib.util
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from multiprocessing.connection import Connection
from typing import Any

from .faults import FaultInjector
from .template import ACCOUNT, REGION, Function

#: Lambda's payload quota for a synchronous invocation, request and response alike
SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024


class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    def __init__(self, name: str, memory: int, timeout: int, request_id: str | None = None) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function_arn(name)
        self.memory_limit_in_mb = memory
        self.aws_request_id = request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


class InvocationError(Exception):
    """An invocation that did not give an answer: Lambda's errorType and errorMessage."""

    def __init__(self, function: str, error_type: str, message: str, trace: str = "") -> None:
        super().__init__(f"{function}: {error_type}: {message}" + (f"\n{trace}" if trace else ""))
        self.function = function
        self.error_type = error_type
        self.message = message


class FunctionError(InvocationError):
    """The function ran and failed (Lambda's ``X-Amz-Function-Error: Unhandled``): it raised, timed
    out, crashed or answered something too large or not JSON."""


class RequestTooLarge(InvocationError):
    """Lambda refused the event (over 6 MB); the function did not run."""


def to_json(value: Any) -> str:
    """JSON as the python3.12/3.13 runtime writes an answer (awslambdaric: ensure_ascii=False,
    Decimals as numbers)."""

    def number(obj: Any) -> Any:
        if isinstance(obj, decimal.Decimal):
            return int(obj) if obj == obj.to_integral_value() else float(obj)
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    return json.dumps(value, ensure_ascii=False, default=number)


def payload_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def name_process(name: str) -> None:
    """Name this process as ps and top show it (Linux; cut at 15 characters; elsewhere nothing)."""
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(name[:15])
    except OSError:
        pass


def _instance(conn: Connection, spec: dict, paths: list[str]) -> None:
    """An execution environment: import the handler once (the cold start), then serve events."""
    name_process(spec["name"].removesuffix("Function"))
    sys.path[:0] = paths
    module_name, handler_name = spec["handler"].rsplit(".", 1)
    loader = importlib.util.spec_from_file_location(f"{spec['name']}_{module_name}", f"{spec['code_dir']}/{module_name}.py")
    module = importlib.util.module_from_spec(loader)  # type: ignore[arg-type]
    loader.loader.exec_module(module)  # type: ignore[union-attr]
    handler = getattr(module, handler_name)
    conn.send(("ready", None))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        payload, kill_after, request_id = message
        if kill_after is not None:  # LOCAL_FAULTS kill: die in the middle of this invocation
            threading.Timer(kill_after, _die).start()
        started = time.process_time()
        reply = _run(handler, json.loads(payload), spec, request_id)
        if kill_after is not None:
            _die()  # a killed invocation never answers, even when the handler finished first
        conn.send((*reply, time.process_time() - started))


def _run(handler: Any, event: Any, spec: dict, request_id: str | None = None) -> tuple[str, Any]:
    try:
        result = handler(event, LambdaContext(spec["name"], spec["memory"], spec["timeout"], request_id))
    except BaseException as exc:  # noqa: BLE001 - report it to the invoker, as Lambda would
        return "error", {"errorType": type(exc).__name__, "errorMessage": str(exc), "trace": traceback.format_exc()}
    try:
        text = to_json(result)
    except (TypeError, ValueError) as exc:
        return "error", {"errorType": "Runtime.MarshalError", "errorMessage": f"Unable to marshal response: {exc}"}
    if payload_size(text) > SYNC_PAYLOAD_BYTES:
        # Lambda's own words (its message names 6291556 bytes)
        return "error", {"errorType": "Function.ResponseSizeTooLarge",
                         "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes)."}
    return "ok", text


class LocalFunction:
    """A pool of instances of one function; a new instance (a cold start) is started when all are busy."""

    def __init__(
        self, function: Function, paths: list[str], max_instances: int = 4, faults: FaultInjector | None = None,
        timeout_scale: float = 1.0,
    ) -> None:
        self.spec = function
        self.paths = paths
        self.max_instances = max_instances
        self.faults = faults
        #: the function's Timeout, times LOCAL_TIMEOUT_SCALE (1: as in AWS)
        self.timeout = function.timeout * timeout_scale
        self._idle: list[tuple[Any, Connection]] = []
        self._all: list[tuple[Any, Connection]] = []
        self._cond = threading.Condition()
        self._context = multiprocessing.get_context("spawn")
        #: how many invocations reached an instance (tests, verbose logs)
        self.invocations = 0
        #: CPU seconds the instances spent in the handler (every thread of the instance), summed
        #: over the invocations that answered: what bench/cost.py prices an invocation from
        self.cpu_seconds = 0.0

    @property
    def name(self) -> str:
        return self.spec.logical_id

    def _start(self) -> tuple[Any, Connection]:
        parent, child = self._context.Pipe()
        spec = {
            "name": self.spec.logical_id, "handler": self.spec.handler, "code_dir": str(self.spec.code_dir),
            "memory": self.spec.memory, "timeout": self.timeout,
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
                instance[0].join(timeout=1)
                instance[1].close()
            else:
                self._idle.append(instance)
            self._cond.notify()

    def warm(self) -> None:
        """Start one instance now, so that the first event does not pay the import."""
        self._release(self._acquire())

    def invoke(self, event: Any, request_id: str | None = None) -> Any:
        """Invoke synchronously: the function's answer, or raises ``InvocationError``.
        ``request_id``: the context's ``aws_request_id`` (Lambda keeps it across the retries
        of an asynchronous invocation); a new one when None."""
        payload = to_json(event)
        size = payload_size(payload)
        if size > SYNC_PAYLOAD_BYTES:
            raise RequestTooLarge(
                self.name, "RequestTooLargeException",
                f"Request must be smaller than {SYNC_PAYLOAD_BYTES} bytes for the InvokeFunction operation ({size} bytes)",
            )
        instance = self._acquire()
        kill_after = self.faults.kill_after() if self.faults else None
        with self._cond:
            self.invocations += 1
        try:
            instance[1].send((payload, kill_after, request_id))
            if not instance[1].poll(self.timeout):
                self._release(instance, broken=True)  # Lambda stops the instance at its timeout
                raise FunctionError(self.name, "Sandbox.Timedout", f"Task timed out after {self.timeout:.2f} seconds")
            status, answer, cpu = instance[1].recv()
        except (EOFError, OSError):  # the instance died (crash, kill): discard it
            self._release(instance, broken=True)
            raise FunctionError(self.name, "Runtime.ExitError", "Runtime exited with error: signal: killed") from None
        self._release(instance)
        with self._cond:
            self.cpu_seconds += cpu
        if status == "error":
            raise FunctionError(self.name, answer["errorType"], answer["errorMessage"], answer.get("trace", ""))
        return json.loads(answer)

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
