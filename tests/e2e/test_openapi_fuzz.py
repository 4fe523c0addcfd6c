"""OpenAPI conformance fuzz: schemathesis against a local stack of this module's own.

The schema is the stack's own ``GET /v1/openapi.json``; every operation in it is run with a
bounded number of generated requests (positive and negative data, schemathesis's examples,
coverage and fuzzing phases; Hypothesis derandomized, so a run is reproducible), each answer
checked for

- ``not_a_server_error``: no 5xx (the stack runs without faults: the service's honest 503 for a
  busy database cannot legitimately happen here);
- ``status_code_conformance``: the status is one the document lists for the operation;
- ``content_type_conformance``: the answer's Content-Type is the documented one;
- ``response_schema_conformance``: the body matches the documented schema for that status.

Zero failures is the bar: each failure is a bug of the service or of its OpenAPI document.

Generated ids would only ever reach the 404 path, so the path's ``job_id`` is swapped, by a
deterministic function of the generated value, for a real one (jobs in every status, with a
webhook, with messages, batches running and ended; and for the routes that change or delete a
job, a fresh one made for that request); one value in six is kept as generated, for the 404 and
422 paths. Generated ``callback_url`` values are swapped for addresses on this machine (a
receiver of this module, a host that never resolves) so that no webhook leaves the machine; the
providers' base URLs point at a closed loopback port.

The stack gets organization alpha's key (``tests/e2e/conftest.py``'s ``KEYS``); its jobs are
bulk-cancelled, secrets rotated and batches cancelled at random, which is why it is a stack of
its own and not the session's.
"""
from __future__ import annotations

import json
import time
import zlib
from typing import Any, Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.conftest import KEYS
from tests.e2e.own_stack import free_port, own_stack
from tests.receiver import Receiver
from tests.waiting import wait_until

#: run by `make soak`, not by `make test`: thousands of generated requests
pytestmark = pytest.mark.soak

KEY = KEYS["a"][0]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
#: Hypothesis examples per operation in the fuzzing phase (the examples and coverage phases add theirs)
MAX_EXAMPLES = 25
#: one generated job_id in this many is sent as generated (404/422 paths); the rest name real jobs
KEEP_GENERATED = 6


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    yield rx
    rx.close()


@pytest.fixture(scope="module")
def fuzz_stack() -> Iterator[dict]:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there: provider calls fail fast, locally
    with own_stack(
        KEYS, JOBS_SCHEDULE_SECONDS="1", LOCAL_INDEX_LAG_MS="100",
        ANTHROPIC_BASE_URL=closed, OPENAI_BASE_URL=closed,
        ANTHROPIC_API_KEY="", OPENAI_API_KEY="",
    ) as stack:
        yield stack


class Setup:
    """The requests this module makes itself (not the fuzz): each must succeed."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {KEY}"

    def call(self, method: str, path: str, expect: int, body: Any = None) -> Any:
        response = self.session.request(method, self.base + path, json=body, timeout=60)
        assert response.status_code == expect, f"set-up {method} {path}: {response.status_code} {response.text[:500]}"
        return response.json()

    def job(self, status: str, callback_url: str | None = None) -> str:
        """A fresh job brought to ``status`` along the state machine."""
        initial, steps = {
            "created": ("created", []), "pending": ("pending", []), "running": ("running", []),
            "completed": ("running", ["completed"]), "failed": ("running", ["failed"]),
            "cancelled": ("pending", ["cancelled"]), "expired": ("created", ["expired"]),
        }[status]
        job = self.call("POST", "/v1/jobs", 201, {"status": initial, "callback_url": callback_url,
                                                 "metadata": {"source_id": "fuzz", "n": 1}})
        for step in steps:
            self.call("PATCH", f"/v1/jobs/{job['id']}", 200, {"status": step})
        return job["id"]

    def batch(self) -> str:
        return self.call("POST", "/v1/batches", 201, {"provider": "simulated", "requests": [
            {"custom_id": "a", "params": {}}, {"custom_id": "b", "params": {"simulate": "errored"}},
        ]})["id"]


STATUSES = ("created", "pending", "running", "completed", "failed", "cancelled", "expired")


@pytest.fixture(scope="module")
def pool(fuzz_stack, receiver) -> dict[str, Any]:
    """Real ids for the path parameters."""
    setup = Setup(fuzz_stack["base"])
    hook = receiver.url("/fuzz")
    jobs = {status: setup.job(status, callback_url=hook) for status in STATUSES}
    for role in ("user", "assistant", "tool"):
        setup.call("POST", f"/v1/jobs/{jobs['running']}/messages", 201, {"role": role, "content": {"text": role}})
    ended = setup.batch()
    wait_until(lambda: setup.call("GET", f"/v1/batches/{ended}", 200)["status"], done=lambda s: s != "running",
               what=f"batch {ended} to end")
    return {"setup": setup, "jobs": jobs, "batch_ended": ended, "batch_other": setup.batch(), "hook": hook}


@pytest.fixture(scope="module")
def api_schema(fuzz_stack, pool):
    schema = schemathesis.openapi.from_url(fuzz_stack["base"] + "/v1/openapi.json", timeout=60)
    schema.config.update(base_url=fuzz_stack["base"], headers={"Authorization": f"Bearer {KEY}"}, request_timeout=60)
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


def _choose(value: Any, choices: list) -> Any:
    """``value`` one time in KEEP_GENERATED, otherwise one of ``choices``: both chosen by a
    checksum of the generated value (a derandomized run makes the same choices)."""
    digest = zlib.crc32(repr(value).encode())
    if digest % KEEP_GENERATED == 0:
        return value
    return choices[(digest // KEEP_GENERATED) % len(choices)]


def _real_job_id(case, pool: dict, receiver: Receiver) -> None:
    if "job_id" not in (case.path_parameters or {}):
        return
    generated = case.path_parameters["job_id"]
    setup: Setup = pool["setup"]
    method, path = case.operation.method.upper(), case.operation.path
    jobs = pool["jobs"]
    if path.startswith("/v1/batches/"):
        if method == "PATCH":  # cancel: a running batch (202), an ended one (409), a plain job (404)
            choice = _choose(generated, ["fresh", pool["batch_ended"], jobs["running"]])
            choice = setup.batch() if choice == "fresh" else choice
        else:
            choice = _choose(generated, [pool["batch_ended"], pool["batch_other"], jobs["completed"]])
    elif method in ("PATCH", "DELETE") and path in ("/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel"):
        # a job in a status chosen by the generated value: made for this request when the request
        # is meant to be valid (it may change or delete it), else the pool's
        status = _choose(generated, list(STATUSES))
        if status not in STATUSES:
            choice = generated
        elif case._meta is not None and case._meta.generation.mode.is_positive:
            choice = setup.job(status, callback_url=pool["hook"])
        else:
            choice = jobs[status]
    else:
        choice = _choose(generated, [*jobs.values(), pool["batch_ended"]])
    case.path_parameters = {**case.path_parameters, "job_id": choice}


def _safe_url(value: str, receiver: Receiver) -> str:
    """A callback URL that never leaves this machine, chosen by the generated one."""
    if ":" not in value:  # not an absolute URL: refused by the service, and sent nowhere
        return value
    choices = [
        receiver.url("/fuzz"), receiver.url("/fuzz-other?q=1"), Receiver.unresolvable_url(),
        "ftp://127.0.0.1/x", "https://user:pw@127.0.0.1/x", "http://[::1]:1/x", "https://127.0.0.1:99999/x",
    ]
    return choices[zlib.crc32(value.encode()) % len(choices)]


def _safe_body(body: Any, receiver: Receiver) -> Any:
    if isinstance(body, dict):
        return {
            k: _safe_url(v, receiver) if k == "callback_url" and isinstance(v, str) else _safe_body(v, receiver)
            for k, v in body.items()
        }
    if isinstance(body, list):
        return [_safe_body(v, receiver) for v in body]
    return body


#: every distinct failure: (operation, failure kind, status) -> {"count", "first": what to reproduce it}
FAILURES: dict[tuple[str, str, int], dict[str, Any]] = {}
#: operation -> {"requests", "seconds", "statuses": {status: count}}: what the run exercised
EXERCISED: dict[str, dict[str, Any]] = {}


def _record(case, response, group: FailureGroup) -> None:
    for failure in group.exceptions:
        key = (case.operation.label, f"{failure.code} {failure.title}", response.status_code)
        seen = FAILURES.setdefault(key, {"count": 0})
        seen["count"] += 1
        if seen["count"] == 1:
            meta = case._meta
            seen["first"] = {
                "phase": f"{meta.phase.name.value} {meta.generation.mode.value}" if meta else "?",
                "curl": case.as_curl_command(),
                "answer": f"{response.status_code} {(response.headers.get('content-type') or ['-'])[0]} {response.text[:400]}",
                "message": failure.message[:1500],
            }


@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@schema.parametrize()
def test_every_operation_conforms_to_the_openapi_document(case, pool, receiver):
    """One line per operation; each generated request is checked and every failure recorded
    (not raised: a raise would end the operation's run at its first failure, and the failures
    behind it would go unseen). ``test_zero_failures`` below is the verdict."""
    _real_job_id(case, pool, receiver)
    if isinstance(case.body, (dict, list)):
        case.body = _safe_body(case.body, receiver)
    started = time.monotonic()
    response = case.call()
    seen = EXERCISED.setdefault(case.operation.label, {"requests": 0, "seconds": 0.0, "statuses": {}, "phases": {}})
    seen["requests"] += 1
    seen["seconds"] += time.monotonic() - started
    seen["statuses"][response.status_code] = seen["statuses"].get(response.status_code, 0) + 1
    phase = case._meta.phase.name.value if case._meta else "?"
    if case.method.upper() != case.operation.method.upper():
        phase += f" ({case.method.upper()})"
    seen["phases"][phase] = seen["phases"].get(phase, 0) + 1
    try:
        case.validate_response(response, checks=CHECKS)
    except FailureGroup as group:
        _record(case, response, group)
    _check_json(case, response)


class NotJson(Failure):
    """The answer is not a JSON document (contract section 1: every answer is JSON, even to a
    method no route has: the local gateway answers those as API Gateway does, never with an HTML
    501); the schema checks above skip the answers of requests outside the document."""

    code = "JSON"
    kind_title = "Answer is not JSON"


def _check_json(case, response) -> None:
    content_type = (response.headers.get("content-type") or [""])[0]
    try:
        json.loads(response.content or b"")
        problem = None if content_type.startswith("application/json") else f"Content-Type is {content_type!r}"
    except ValueError as exc:
        problem = f"the body does not parse as JSON: {exc}"
    if problem is not None:
        _record(case, response, FailureGroup([NotJson(operation=case.operation.label, message=problem)]))


def test_zero_failures():
    """Every distinct failure the operations above met, with a request that reproduces it."""
    for operation, seen in sorted(EXERCISED.items()):  # shown with -rP, or when this fails
        statuses = " ".join(f"{code}x{n}" for code, n in sorted(seen["statuses"].items()))
        print(f"{operation}: {seen['requests']} requests in {seen['seconds']:.1f} s ({seen['phases']}): {statuses}")
    report = []
    for (operation, kind, status), seen in sorted(FAILURES.items()):
        first = seen["first"]
        report.append(
            f"{operation}: {kind}, answer {status} ({seen['count']} requests; first in the {first['phase']} phase)\n"
            f"    request: {first['curl']}\n    answer:  {first['answer']}\n"
            + "".join(f"    | {line}\n" for line in first["message"].splitlines()[:12])
        )
    assert not report, f"{len(report)} distinct failures:\n" + "\n".join(report)
