"""Send one webhook attempt: POST with a timeout, no redirects, and no internal addresses.

The SSRF guard checks the URL and every address its host resolves to before
sending, and again the address actually connected to (so a DNS answer that
changes between the check and the connection is caught too).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .errors import InvalidInput
from .urls import check_callback_url, is_internal_address

USER_AGENT = "job-lifecycle-webhooks/1.0"


class InternalAddressRefused(OSError):
    pass


def _check_peer(sock) -> None:  # type: ignore[no-untyped-def]
    peer = sock.getpeername()[0]
    if is_internal_address(peer.split("%")[0]):
        sock.close()
        raise InternalAddressRefused(f"refused to connect to internal address {peer}")


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self):  # type: ignore[no-untyped-def]
        sock = super()._new_conn()
        _check_peer(sock)
        return sock


class _GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self):  # type: ignore[no-untyped-def]
        sock = super()._new_conn()
        _check_peer(sock)
        return sock


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int
    succeeded: bool
    #: stop retrying: the receiver answered 410 Gone, or the URL is refused.
    final: bool = False


def _session(allow_private: bool) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxies or netrc from the environment
    if not allow_private:
        adapter = _GuardedAdapter(max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
    return session


def post(url: str, body: str, headers: dict[str, str], timeout: float, allow_private: bool) -> Outcome:
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        check_callback_url(url, allow_private, resolve=not allow_private)
    except InvalidInput as exc:
        return Outcome(None, f"refused: {exc.detail}", took(), False, final=True)
    session = _session(allow_private)
    try:
        response = session.post(
            url, data=body.encode(), headers={**headers, "User-Agent": USER_AGENT},
            timeout=timeout, allow_redirects=False, stream=True,
        )
        response.close()
    except requests.Timeout:
        return Outcome(None, f"timed out after {timeout:g} s", took(), False)
    except requests.ConnectionError as exc:
        if "internal address" in str(exc):
            return Outcome(None, "refused: connected to an internal address", took(), False, final=True)
        return Outcome(None, f"connection failed: {_short(exc)}", took(), False)
    except requests.RequestException as exc:
        return Outcome(None, f"request failed: {_short(exc)}", took(), False)
    finally:
        session.close()
    code = response.status_code
    if took() > timeout * 1000:  # connect and read each had the timeout: the whole answer must too
        return Outcome(code, f"answered after {took() / 1000:.1f} s (more than {timeout:g} s)", took(), False)
    if 200 <= code < 300:
        return Outcome(code, None, took(), True)
    if 300 <= code < 400:
        return Outcome(code, f"HTTP {code}: redirects are not followed", took(), False)
    return Outcome(code, f"HTTP {code}", took(), False, final=code == 410)


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 300 else text[:297] + "..."
