"""``jobsvc.sender.post`` (one webhook attempt) and its SSRF guard at send time (README "SSRF"):
a callback host *name* that resolves to an internal address is refused when private callbacks are
not allowed, and so is a connection that lands on one (DNS rebinding).

The resolver is patched (``socket.getaddrinfo``), and so is urllib3's connect where a test must
not reach the address it names: nothing here sends a packet anywhere but to 127.0.0.1.
"""
from __future__ import annotations

import socket

import pytest
import urllib3.util.connection

from jobsvc import sender
from tests.receiver import Receiver

PUBLIC = "93.184.215.14"
INTERNAL = ["10.0.0.7", "172.16.3.4", "192.168.1.1", "127.0.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
            "224.0.0.1", "::1", "fd00::1", "fe80::1", "::ffff:10.0.0.1", "::ffff:169.254.169.254"]


@pytest.fixture
def resolver(monkeypatch):
    """``answers[host]``: a list of address lists, one per lookup of that host (the last repeats)."""
    answers: dict[str, list[list[str]]] = {}
    lookups: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002
        if host not in answers:
            return real(host, port, family, type, proto, flags)
        lookups.append(host)
        queue = answers[host]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        out = []
        for address in addresses:
            if ":" in address:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return out

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    answers["lookups"] = lookups  # type: ignore[assignment]
    return answers


@pytest.fixture
def no_connections(monkeypatch):
    """urllib3's connect, recorded and refused: the test never reaches the address."""
    attempts: list[tuple] = []

    def create_connection(address, *args, **kwargs):
        attempts.append(address)
        raise ConnectionRefusedError(f"test: no connection to {address}")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)
    return attempts


def post(url: str, allow_private: bool) -> sender.Outcome:
    return sender.post(url, '{"type": "job.completed"}', {"content-type": "application/json"}, 2.0, allow_private)


@pytest.mark.parametrize("address", INTERNAL)
def test_a_host_name_resolving_to_an_internal_address_is_refused_at_send_time(resolver, no_connections, address):
    resolver["hooks.example.com"] = [[address]]
    outcome = post("https://hooks.example.com/hook", allow_private=False)
    assert outcome.succeeded is False and outcome.status_code is None
    assert outcome.final is True, "refused for good: never retried"
    assert outcome.error and outcome.error.startswith("refused"), outcome.error
    assert no_connections == [], "nothing was sent to it"
    assert resolver["lookups"], "the host name was looked up at send time"


def test_one_internal_address_among_public_ones_is_enough_to_refuse(resolver, no_connections):
    resolver["hooks.example.com"] = [[PUBLIC, "10.1.2.3"]]
    outcome = post("https://hooks.example.com/hook", allow_private=False)
    assert (outcome.succeeded, outcome.final) == (False, True) and outcome.error.startswith("refused")
    assert no_connections == []


def test_a_host_name_resolving_to_a_public_address_is_attempted(resolver, no_connections):
    """The control: the same URL with a public answer goes as far as connecting (refused here,
    by the test): an ordinary failed attempt, retried, not an SSRF refusal."""
    resolver["hooks.example.com"] = [[PUBLIC]]
    outcome = post("https://hooks.example.com/hook", allow_private=False)
    assert no_connections and no_connections[0][0] in (PUBLIC, "hooks.example.com")
    assert outcome.succeeded is False and outcome.final is False
    assert not outcome.error.startswith("refused"), outcome.error


def test_a_host_that_does_not_resolve_is_a_failed_attempt(resolver, no_connections):
    outcome = post("https://no-such-host.invalid/hook", allow_private=False)
    assert outcome.succeeded is False and outcome.status_code is None and outcome.error
    assert no_connections == []


def test_a_connection_that_lands_on_an_internal_address_is_refused(resolver):
    """DNS rebinding: public when checked, 127.0.0.1 when connected to. The connected address is
    checked before anything is sent."""
    receiver = Receiver()
    try:
        port = receiver.server.server_address[1]
        resolver["rebind.example.com"] = [[PUBLIC], ["127.0.0.1"]]
        outcome = post(f"https://rebind.example.com:{port}/hook", allow_private=False)
        assert (outcome.succeeded, outcome.final, outcome.status_code) == (False, True, None)
        assert outcome.error.startswith("refused"), outcome.error
        assert receiver.requests == [], "no request reached the internal address"
    finally:
        receiver.close()


def test_private_callbacks_allowed_deliver_to_a_name_resolving_to_loopback(resolver):
    receiver = Receiver()
    try:
        port = receiver.server.server_address[1]
        resolver["hooks.example.com"] = [["127.0.0.1"]]
        outcome = post(f"http://hooks.example.com:{port}/hook", allow_private=True)
        assert (outcome.succeeded, outcome.status_code, outcome.error, outcome.final) == (True, 200, None, False)
        (received,) = receiver.requests
        assert received.path == "/hook" and received.json() == {"type": "job.completed"}
    finally:
        receiver.close()


@pytest.mark.parametrize("answer, succeeded, final", [
    (200, True, False), (201, True, False), (204, True, False), (299, True, False),
    (301, False, False), (404, False, False), (410, False, True), (500, False, False), ("close", False, False),
])
def test_what_counts_as_a_delivery(answer, succeeded, final):
    """Any 2xx is a delivery; a redirect is not followed; 410 is final; no answer has no status."""
    receiver = Receiver(behaviour=lambda path, n: answer)
    try:
        outcome = post(receiver.url("/hook"), allow_private=True)
        assert (outcome.succeeded, outcome.final) == (succeeded, final), outcome
        assert outcome.status_code == (None if answer == "close" else answer)
        assert (outcome.error is None) == succeeded, outcome
        assert len(receiver.requests) == 1, "one attempt, no redirect followed"
    finally:
        receiver.close()
