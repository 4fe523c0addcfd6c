"""The test receiver's behaviours (tests/receiver.py) that tests of webhook delivery build on."""
from __future__ import annotations

import errno
import http.client
import socket
from urllib.parse import urlsplit

import pytest

from tests.receiver import Receiver


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


def post(receiver: Receiver, path: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", receiver.server.server_address[1], timeout=30)
    connection.request("POST", path, body=b"{}", headers={"Content-Type": "application/json"})
    return connection.getresponse()


def test_trickle_sends_the_headers_then_the_body_a_byte_at_a_time(receiver):
    receiver.behaviour = lambda path, n: ("trickle", 0.05, 200, 6)
    response = post(receiver, "/slow")
    assert response.status == 200 and response.getheader("Content-Length") == "6"
    chunks = [response.read(1) for _ in range(6)]
    assert chunks == [b"."] * 6
    assert receiver.to("/slow")[0].answer == ("trickle", 0.05, 200, 6)


def test_reset_aborts_the_connection(receiver):
    receiver.behaviour = lambda path, n: "reset" if n == 1 else 200
    with pytest.raises(ConnectionResetError) as raised:
        post(receiver, "/rst").read()
    # a TCP reset, not a connection closed in order (http.client's RemoteDisconnected)
    assert not isinstance(raised.value, http.client.RemoteDisconnected) and raised.value.errno == errno.ECONNRESET
    assert post(receiver, "/rst").status == 200  # the receiver itself lives on
    assert [r.answer for r in receiver.to("/rst")] == ["reset", 200]


def test_the_current_behaviours_still_work(receiver):
    answers = {1: 500, 2: ("sleep", 0.01, 201), 3: 410}
    receiver.behaviour = lambda path, n: answers[n]
    assert [post(receiver, "/x").status for _ in range(3)] == [500, 201, 410]
    assert [r.json() for r in receiver.to("/x")] == [{}] * 3


def test_an_unresolvable_callback_host():
    url = Receiver.unresolvable_url("/hook")
    host = urlsplit(url).hostname
    assert host.endswith(".invalid") and url.endswith("/hook")
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(host, 443)
