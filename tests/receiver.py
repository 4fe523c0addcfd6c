"""A webhook receiver on 127.0.0.1 for tests: records every request, answers as told.

A callback host that does not resolve: use ``Receiver.unresolvable_url()`` (a random name under
``.invalid``, which RFC 6761 reserves so that it never resolves), or any ``*.invalid`` URL.
"""
from __future__ import annotations

import json
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Union

# What to do with the n-th request (1-based) to a path: an HTTP status, or one of
# "close" (drop the connection), "garbage" (answer something that is not HTTP),
# "reset" (abort the connection with a TCP RST, as a crashed or firewalled host does),
# ("sleep", seconds, status),
# ("trickle", seconds, status[, size]) (send the status line and headers at once, then the
# body of ``size`` bytes, default 10, one byte every ``seconds``: a receiver that answers but
# never finishes in time).
Action = Union[int, str, tuple]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str
    at: float
    answer: Action = None  # what the receiver did
    trickled: int = 0  # body bytes a "trickle" answer got out before the sender hung up


    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    behaviour: Callable[[str, int], Action] = lambda path, n: 200
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                with receiver._lock:
                    n = receiver._counts[self.path] = receiver._counts.get(self.path, 0) + 1
                    action = receiver.behaviour(self.path, n)
                    received = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time(), action)
                    receiver.requests.append(received)
                if isinstance(action, tuple) and action[0] == "sleep":
                    time.sleep(action[1])
                    action = action[2]
                if action == "close":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if action == "garbage":
                    self.wfile.write(b"this is not HTTP\r\n\r\n")
                    self.close_connection = True
                    return
                if action == "reset":
                    # SO_LINGER with a zero timeout: close() sends RST instead of FIN
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                if isinstance(action, tuple) and action[0] == "trickle":
                    self._trickle(received, *action[1:])
                    return
                try:
                    status = int(action)
                    self.send_response(status)
                    if 300 <= status < 400:
                        self.send_header("Location", "https://example.com/elsewhere")
                    if status in (204, 304):  # no body, as HTTP requires
                        self.end_headers()
                        return
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the sender gave up (timeout) and closed the connection
                    self.close_connection = True

            def _trickle(self, received: Received, interval: float, status: int, size: int = 10) -> None:
                try:
                    self.send_response(int(status))
                    self.send_header("Content-Length", str(size))
                    self.end_headers()
                    self.wfile.flush()
                    for _ in range(size):
                        time.sleep(interval)
                        self.wfile.write(b".")
                        self.wfile.flush()
                        received.trickled += 1
                except OSError:  # the sender gave up waiting and closed the connection
                    pass
                self.close_connection = True

            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:  # noqa: ANN001
                pass  # senders that time out or close kept-alive connections are part of the tests

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    @staticmethod
    def unresolvable_url(path: str = "/hook") -> str:
        """A URL whose host never resolves (RFC 6761 reserves ``.invalid``): a delivery to it fails
        on DNS, before any connection."""
        return f"https://receiver-{uuid.uuid4().hex[:12]}.invalid{path}"

    def to(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """(Kept for older tests: new ones wait on progress with ``tests.waiting.wait_until``.)"""
        deadline = time.monotonic() + timeout
        interval = 0.05
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
            interval = min(interval * 2, 0.5)
        return predicate()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
