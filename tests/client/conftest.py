"""Unit tests of the Python client (client/src), against stub HTTP servers on 127.0.0.1."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

CLIENT_SRC = Path(__file__).resolve().parents[2] / "client" / "src"
if str(CLIENT_SRC) not in sys.path:
    sys.path.insert(0, str(CLIENT_SRC))

from tests.client.support import FakeJobs, StubServer  # noqa: E402


@pytest.fixture
def stub():
    server = StubServer()
    yield server
    server.close()


@pytest.fixture
def fake_jobs():
    """A stub that keeps jobs and applies the contract's state machine (for track())."""
    fake = FakeJobs()
    server = StubServer(fake.handle)
    fake.server = server
    yield fake
    server.close()


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("JOBS_API_URL", raising=False)
    monkeypatch.delenv("JOBS_API_KEY", raising=False)
