"""Fault injection (``LOCAL_FAULTS``): make a fraction of DynamoDB and SQS requests fail as AWS
fails them, and kill a fraction of Lambda instances in the middle of an invocation.

``LOCAL_FAULTS="dynamodb=0.05,sqs=0.05,kill=0.02,seed=7"``: each member is optional (a missing
rate is 0; ``seed`` defaults to 0). Every decision is drawn from a random stream of its own
(one per service, one for kills) seeded from ``seed``, so the same traffic in the same order gets
the same faults, and traffic to one service never shifts the faults of another.

A faulted AWS request never reaches the emulator (no side effect) and is answered, half of the
time each, with

- throttling, HTTP 400: DynamoDB ``ProvisionedThroughputExceededException``, SQS
  ``ThrottlingException`` (the common error every AWS API may answer);
- a server error, HTTP 500: DynamoDB ``InternalServerError``, SQS ``InternalFailure``.

The SDKs retry both (botocore's standard and legacy modes), as they do against AWS. The local
stack's own requests (set-up, the stream and queue pollers, which in AWS are Lambda's own and
retry by themselves) are never faulted; see ``INTERNAL_HEADER``.
"""
from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable

#: header the local stack's own AWS clients send (Emulator.client); such requests are never faulted
INTERNAL_HEADER = "x-local-stack-internal"

#: the JSON protocol's X-Amz-Target prefix -> the service name used in LOCAL_FAULTS
_TARGETS = {"DynamoDB_20120810": "dynamodb", "AmazonSQS": "sqs"}

#: (HTTP status, error code, message) per service and kind; the messages are AWS's own
_ERRORS = {
    ("dynamodb", "throttle"): (
        400, "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API.",
    ),
    ("dynamodb", "server"): (500, "com.amazonaws.dynamodb.v20120810#InternalServerError", "Internal server error"),
    ("sqs", "throttle"): (400, "ThrottlingException", "Rate exceeded"),
    ("sqs", "server"): (500, "InternalFailure", "The request processing has failed because of an unknown error, exception or failure."),
}


@dataclass(frozen=True)
class FaultSpec:
    dynamodb: float = 0.0
    sqs: float = 0.0
    kill: float = 0.0
    seed: int = 0

    @classmethod
    def parse(cls, text: str) -> "FaultSpec":
        """``"dynamodb=0.05,sqs=0.05,kill=0.02,seed=7"``; raises ValueError on anything else."""
        values: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in (text or "").split(","))):
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep or name not in ("dynamodb", "sqs", "kill", "seed"):
                raise ValueError(f"LOCAL_FAULTS: {part!r} is not one of dynamodb=, sqs=, kill=, seed=")
            if name == "seed":
                values[name] = int(value)
                continue
            rate = float(value)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"LOCAL_FAULTS: {name} must be a fraction between 0 and 1, not {value}")
            values[name] = rate
        return cls(**values)

    @property
    def active(self) -> bool:
        return any((self.dynamodb, self.sqs, self.kill))

    def __str__(self) -> str:
        return f"dynamodb={self.dynamodb},sqs={self.sqs},kill={self.kill},seed={self.seed}"


class FaultInjector:
    """The decisions of one local stack (one per process: the emulator and the invokers share it)."""

    #: a killed instance dies this long after the event reaches it at most (or as soon as the
    #: handler returns, whichever comes first): "in the middle" of short invocations too
    KILL_WITHIN_SECONDS = 0.05

    def __init__(self, spec: FaultSpec) -> None:
        self.spec = spec
        self._lock = threading.Lock()
        self._streams: dict[str, random.Random] = {}
        #: while False (during the stack's set-up) nothing is faulted
        self.armed = False

    def _stream(self, name: str) -> random.Random:
        if name not in self._streams:
            self._streams[name] = random.Random(f"{self.spec.seed}:{name}")
        return self._streams[name]

    def aws_fault(self, service: str) -> tuple[int, str, str] | None:
        """For one request to ``service`` ("dynamodb" or "sqs"): None, or (status, code, message)."""
        rate = getattr(self.spec, service, 0.0)
        if not self.armed or not rate:
            return None
        with self._lock:
            stream = self._stream(service)
            if stream.random() >= rate:
                return None
            kind = "throttle" if stream.random() < 0.5 else "server"
        return _ERRORS[(service, kind)]

    def kill_after(self) -> float | None:
        """For one Lambda invocation: None, or how long after the event arrives to kill the instance."""
        if not self.armed or not self.spec.kill:
            return None
        with self._lock:
            stream = self._stream("kill")
            if stream.random() >= self.spec.kill:
                return None
            return stream.uniform(0.0, self.KILL_WITHIN_SECONDS)


def service_of(environ: dict) -> str | None:
    """The LOCAL_FAULTS service a WSGI request is for (JSON protocol), None if none applies."""
    if environ.get("HTTP_" + INTERNAL_HEADER.upper().replace("-", "_")):
        return None
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    return _TARGETS.get(target.split(".", 1)[0])


def faulting(app: Callable, injector: FaultInjector) -> Callable:
    """WSGI middleware: answer the requests the injector picks with AWS's error, without running them."""

    def middleware(environ: dict, start_response: Callable) -> Iterable[bytes]:
        service = service_of(environ)
        fault = injector.aws_fault(service) if service else None
        if fault is None:
            return app(environ, start_response)
        status, code, message = fault
        body = json.dumps({"__type": code, "message": message}).encode()
        reason = {400: "Bad Request", 500: "Internal Server Error"}[status]
        headers = [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(body))),
                   ("x-amzn-RequestId", "local-fault")]
        if service == "sqs":
            # SQS speaks the JSON protocol in query-compatible mode: botocore reads the code from here
            headers.append(("x-amzn-query-error", f"{code};{'Sender' if status < 500 else 'Receiver'}"))
        start_response(f"{status} {reason}", headers)
        return [body]

    return middleware
