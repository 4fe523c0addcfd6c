"""End-to-end fixtures: the local stack started the way the README starts it, spoken to over HTTP."""
from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))  # test modules may import e2e_support as before
from tests.contract import JobVerbs, unique  # noqa: E402
from tests.e2e.own_stack import own_stack  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
KEYS = {
    "a": ("jsk_test_alpha_0123456789abcdef", "org-alpha", "user-a"),
    "b": ("jsk_test_bravo_0123456789abcdef", "org-bravo", "user-b"),
    # a second user of organization alpha (jobs belong to the organization, not the user)
    "c": ("jsk_test_alpha_colleague_0123456789", "org-alpha", "user-c"),
    # test_local_fidelity.py's: the first is revoked there
    "fidelity": ("jsk_fidelity_revoked_0123456789", "org-fidelity", "user-f"),
    "fidelity-other": ("jsk_fidelity_other_0123456789ab", "org-fidelity", "user-g"),
}


class Api(JobVerbs):
    """A small HTTP client for one API key (the job-level verbs come from ``JobVerbs``)."""

    def __init__(self, base: str, key: str | None) -> None:
        self.base = base
        self.key = key
        self.session = requests.Session()
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.base + path, **kwargs)

    def race(self, calls: list[tuple]) -> list[tuple[int, dict]]:
        """Send every ``(method, path, json body or None[, api[, delay[, headers]]])`` at once;
        [(status, body)], each an ``Answer`` that also has the response's ``headers``.

        A call with a fourth member is sent with that client's key instead of this one's (None: no
        key); a fifth is a delay in seconds after the common start; a sixth, more headers.

        Each call gets its own connection, opened and used once before the start (so that
        connection set-up does not spread the requests out); then a barrier releases every
        thread at once to send its request.
        """
        url = urlsplit(self.base)
        connections = []
        for _ in calls:
            connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
            # a first exchange makes sure the gateway has accepted this connection (connecting
            # faster than it accepts overflows its listen backlog of 5: a 1 s SYN retry) and has
            # a thread waiting for the next request on it
            connection.request("HEAD", "/v1/health")
            connection.getresponse().read()
            connections.append(connection)
        barrier = threading.Barrier(len(calls))
        results: list[Any] = [None] * len(calls)

        def run(i: int) -> None:
            method, path, body = calls[i][:3]
            client = calls[i][3] if len(calls[i]) > 3 else self
            key = client.key if client is not None else None
            delay = calls[i][4] if len(calls[i]) > 4 else 0.0
            headers = {"Content-Type": "application/json", **(calls[i][5] if len(calls[i]) > 5 else {})}
            if key:
                headers["Authorization"] = f"Bearer {key}"
            data = None if body is None else json.dumps(body).encode()
            try:
                barrier.wait(timeout=30)
                if delay:
                    time.sleep(delay)
                connections[i].request(method, path, body=data, headers=headers)
                response = connections[i].getresponse()
                results[i] = Answer(response.status, json.loads(response.read() or b"null"), dict(response.getheaders()))
            except Exception as exc:  # recorded: the test reports it as a failed request
                results[i] = Answer(None, {"error": repr(exc)}, {})
            finally:
                connections[i].close()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        return results


class Answer(tuple):
    """One raced request's answer: unpacks as ``(status, body)``; ``.headers`` has its headers."""

    def __new__(cls, status, body, headers):
        answer = super().__new__(cls, (status, body))
        answer.headers = {k.lower(): v for k, v in headers.items()}
        return answer


@pytest.fixture(scope="session")
def stack() -> Iterator[dict]:
    """``python -m local`` (what ``make run`` runs) on a free port, until the session ends."""
    with own_stack(
        KEYS,
        # the schedule (a minute in AWS) every 2 s: a sweep or a poll is never far, and an idle
        # stack leaves the machine to the tests (each run is about 40 index queries)
        JOBS_SCHEDULE_SECONDS="2",
        # retries wait at most 4 s (the template's WebhookMaxRetryDelaySeconds, 30 by default): six
        # attempts take 1 + 2 + 4 + 4 + 4 s of backoff instead of 31 s (the schedule itself, doubling
        # up to the cap, is unit-tested with the defaults)
        LOCAL_PARAMETERS="WebhookMaxRetryDelaySeconds=4",
        # index queries and default reads lag writes a little, as in DynamoDB (README: LOCAL_INDEX_LAG_MS)
        LOCAL_INDEX_LAG_MS="100",
        # the functions' timeouts, scaled for a CI machine whose two cores run the stack, the tests
        # and their receivers at once (a 5 s authorizer timing out there is the machine, not the
        # code); tests of the timeouts themselves run stacks of their own at scale 1
        LOCAL_TIMEOUT_SCALE="3",
    ) as started:
        try:
            yield started
        finally:
            # what the stack printed (the gateway's 5xx reasons, functions' errors), for a failed run
            artifacts = ROOT / "tests" / "artifacts"
            artifacts.mkdir(exist_ok=True)
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            (artifacts / f"e2e-stack-{worker}.log").write_text("".join(started["output"]))


@pytest.fixture(scope="session")
def api(stack) -> Api:
    """Organization alpha."""
    return Api(stack["base"], KEYS["a"][0])


@pytest.fixture(scope="session")
def other(stack) -> Api:
    """Organization bravo (tenant isolation)."""
    return Api(stack["base"], KEYS["b"][0])


@pytest.fixture(scope="session")
def colleague(stack) -> Api:
    """Another user of organization alpha."""
    return Api(stack["base"], KEYS["c"][0])


@pytest.fixture(scope="session")
def anonymous(stack) -> Api:
    return Api(stack["base"], None)


@pytest.fixture(scope="session")
def keys() -> dict[str, tuple[str, str, str]]:
    """name -> (api key, organization, user)."""
    return KEYS


@pytest.fixture
def tag(request) -> str:
    """A value unique to this test (for metadata.source_id)."""
    return unique(request.node.name[:40])
