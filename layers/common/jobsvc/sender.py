"""Send one webhook attempt: POST with one deadline for the whole exchange, no redirects,
and no internal addresses.

The deadline (5 s by default) runs from the moment the connection is made to the last
byte of the answer: a watchdog shuts the socket down when it passes, so a receiver that
trickles its answer byte by byte fails at 5 s like one that says nothing.

The SSRF guard checks the URL and every address its host resolves to before sending,
and again the address actually connected to (so a DNS answer that changes between the
check and the connection is caught too). Only an address refused as internal is final;
a name that does not resolve right now is a failed attempt, retried like any other.
"""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .errors import InvalidInput
from .urls import Unresolvable, check_callback_url, is_internal_address

USER_AGENT = "job-lifecycle-webhooks/1.0"
_attempt = threading.local()  # the deadline and guard of the attempt this thread is making


class InternalAddressRefused(OSError):
    pass


def _watch(sock: socket.socket) -> None:
    """Check the connected address, and shut the socket down when the attempt's deadline passes."""
    if getattr(_attempt, "guard", False):
        peer = sock.getpeername()[0]
        if is_internal_address(peer.split("%")[0]):
            sock.close()
            raise InternalAddressRefused(f"refused to connect to internal address {peer}")
    deadline = getattr(_attempt, "deadline", None)
    if deadline is not None:
        def expire() -> None:
            state["expired"] = True
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        state = _attempt.state
        timer = threading.Timer(max(0.0, deadline - time.monotonic()), expire)
        timer.daemon = True
        timer.start()
        _attempt.timers.append(timer)


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self):  # type: ignore[no-untyped-def]
        sock = super()._new_conn()
        _watch(sock)
        return sock


class _WatchedHTTPSConnection(HTTPSConnection):
    def _new_conn(self):  # type: ignore[no-untyped-def]
        sock = super()._new_conn()
        _watch(sock)
        return sock


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int
    succeeded: bool
    #: stop retrying: the receiver answered 410 Gone, or the URL is refused as internal.
    final: bool = False
    #: seconds the receiver asked us to wait (Retry-After on a 429 or 503)
    retry_after: float | None = None


def _session(allow_private: bool) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxies or netrc from the environment
    adapter = _WatchedAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    _attempt.guard = not allow_private
    return session


def post(url: str, body: str, headers: dict[str, str], timeout: float, allow_private: bool) -> Outcome:
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        check_callback_url(url, allow_private, resolve=not allow_private)
    except Unresolvable as exc:
        return Outcome(None, f"connection failed: {exc.detail}", took(), False)
    except InvalidInput as exc:
        return Outcome(None, f"refused: {exc.detail}", took(), False, final=True)
    session = _session(allow_private)
    _attempt.deadline = time.monotonic() + timeout
    _attempt.state = {"expired": False}
    _attempt.timers = []
    try:
        response = session.post(
            url, data=body.encode(), headers={**headers, "User-Agent": USER_AGENT},
            timeout=timeout, allow_redirects=False, stream=True,
        )
        response.content  # noqa: B018 - the whole answer, under the same deadline
        response.close()
    except (requests.Timeout, requests.ConnectionError, requests.RequestException) as exc:
        if _attempt.state["expired"] or isinstance(exc, requests.Timeout):
            return Outcome(None, f"timed out after {timeout:g} s", took(), False)
        if "internal address" in str(exc):
            return Outcome(None, "refused: connected to an internal address", took(), False, final=True)
        kind = "connection failed" if isinstance(exc, requests.ConnectionError) else "request failed"
        return Outcome(None, f"{kind}: {_short(exc)}", took(), False)
    finally:
        for timer in _attempt.timers:
            timer.cancel()
        _attempt.deadline = None
        session.close()
    code = response.status_code
    if _attempt.state["expired"] or took() > timeout * 1000:
        return Outcome(code, f"timed out after {timeout:g} s", took(), False)
    if 200 <= code < 300:
        return Outcome(code, None, took(), True)
    if 300 <= code < 400:
        return Outcome(code, f"HTTP {code}: redirects are not followed", took(), False)
    retry_after = _retry_after(response.headers.get("Retry-After")) if code in (429, 503) else None
    return Outcome(code, f"HTTP {code}", took(), False, final=code == 410, retry_after=retry_after)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 300 else text[:297] + "..."
