"""What every provider adapter offers, and the HTTP plumbing they share."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol

PROCESSING, ENDED, FAILED = "processing", "ended", "failed"
COUNT_NAMES = ("processing", "succeeded", "errored", "canceled", "expired")
#: the provider's request outcome -> the item status of contract section 6
ITEM_STATUS = {"succeeded": "completed", "errored": "failed", "canceled": "cancelled", "expired": "expired"}


class ProviderError(Exception):
    """The provider could not be used: timeout, 5xx, malformed answer (retry later)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProviderRefused(ProviderError):
    """The provider answered and said no (a 4xx): its message is shown to the user."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ProviderNotConfigured(Exception):
    """No key (or an unknown provider): the request is invalid here (422)."""


@dataclass(frozen=True)
class ProviderBatch:
    id: str
    state: str  # PROCESSING, ENDED or FAILED (the provider failed the batch as a whole)
    counts: dict[str, int]
    raw_status: str
    #: what results() needs later (a results URL, file ids); stored with the job
    state_data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Result:
    custom_id: str
    status: str  # completed, failed, cancelled, expired
    result: Any


def counts(**values: int) -> dict[str, int]:
    return {name: int(values.get(name, 0) or 0) for name in COUNT_NAMES}


class HttpProvider:
    """What the HTTP adapters share: a session with the provider's auth headers, built from settings."""

    name = ""

    def __init__(self, base_url: str, api_key: str, timeout: float) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.session = new_session(self.headers(api_key))

    def headers(self, api_key: str) -> dict[str, str]:
        raise NotImplementedError

    @classmethod
    def from_settings(cls) -> "HttpProvider":
        from ..config import settings
        from . import keys

        cfg = settings()
        key = keys.resolve(
            cls.name, getattr(cfg, f"{cls.name}_api_key"), getattr(cfg, f"{cls.name}_api_key_parameter"),
            f"{cls.name.upper()}_API_KEY",
        )
        return cls(getattr(cfg, f"{cls.name}_base_url"), key, cfg.provider_timeout_seconds)


#: what reading an answer of an unexpected shape raises
MALFORMED = (TypeError, ValueError, KeyError, AttributeError)


class Guarded:
    """An adapter whose every failure is a ProviderError: an answer of an unexpected shape is
    the provider's fault, like a timeout, never a crash of the API or the poller."""

    def __init__(self, inner: "Provider") -> None:
        self.inner = inner
        self.name = inner.name

    def _malformed(self, exc: Exception) -> ProviderError:
        return ProviderError(f"{self.name}: a malformed answer ({exc.__class__.__name__}: {str(exc)[:200]})")

    def submit(self, requests: list[dict[str, Any]]) -> ProviderBatch:
        try:
            return self.inner.submit(requests)
        except MALFORMED as exc:
            raise self._malformed(exc) from None

    def retrieve(self, batch_id: str) -> ProviderBatch:
        try:
            return self.inner.retrieve(batch_id)
        except MALFORMED as exc:
            raise self._malformed(exc) from None

    def cancel(self, batch_id: str) -> ProviderBatch:
        try:
            return self.inner.cancel(batch_id)
        except MALFORMED as exc:
            raise self._malformed(exc) from None

    def results(self, batch: ProviderBatch) -> Iterator[Result]:
        try:
            yield from self.inner.results(batch)
        except MALFORMED as exc:
            raise self._malformed(exc) from None


class Provider(Protocol):
    name: str

    def submit(self, requests: list[dict[str, Any]]) -> ProviderBatch: ...

    def retrieve(self, batch_id: str) -> ProviderBatch: ...

    def cancel(self, batch_id: str) -> ProviderBatch: ...

    def results(self, batch: ProviderBatch) -> Iterator[Result]: ...


def new_session(headers: dict[str, str]) -> Any:
    """A session for one provider, shared by the poller's threads (one pool connection each)."""
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.trust_env = False
    session.headers.update(headers)
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=64, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _timeouts(timeout: float) -> tuple[float, float]:
    return (min(3.05, timeout), timeout)  # (connect, read)


def call(session: Any, method: str, url: str, timeout: float, **kwargs: Any) -> Any:
    """One HTTP request to a provider; the parsed JSON answer, or ProviderError/ProviderRefused."""
    import requests

    try:
        response = session.request(method, url, timeout=_timeouts(timeout), allow_redirects=False, **kwargs)
    except requests.Timeout:
        raise ProviderError(f"{method} {url}: timed out after {timeout:g} s") from None
    except requests.RequestException as exc:
        raise ProviderError(f"{method} {url}: {exc.__class__.__name__}: {str(exc)[:200]}") from None
    if response.status_code >= 500 or response.status_code == 429:
        raise ProviderError(f"{method} {url}: HTTP {response.status_code}: {_message(response)}")
    if response.status_code >= 400:
        raise ProviderRefused(f"HTTP {response.status_code}: {_message(response)}", response.status_code)
    try:
        data = response.json()
    except ValueError:
        raise ProviderError(f"{method} {url}: the answer is not JSON") from None
    if not isinstance(data, dict):
        raise ProviderError(f"{method} {url}: the answer is not a JSON object")
    return data


def _message(response: Any) -> str:
    try:
        error = response.json().get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
    except ValueError:
        pass
    return (response.text or "")[:200]


def json_lines(response: Any, where: str) -> Iterator[dict[str, Any]]:
    """Parse a streamed JSON-lines body line by line (never loaded whole)."""
    for number, line in enumerate(response.iter_lines(), start=1):
        if not line or not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            raise ProviderError(f"{where}: line {number} is not JSON") from None
        if not isinstance(value, dict) or not isinstance(value.get("custom_id"), str):
            raise ProviderError(f"{where}: line {number} has no custom_id")
        yield value


def stream(session: Any, url: str, timeout: float) -> Any:
    """GET a results body to read line by line. Redirects are followed by hand: the
    provider's key goes only to the provider's own host, never to where it redirects."""
    import requests
    from urllib.parse import urljoin, urlsplit

    target, get = url, session.get
    for _ in range(4):
        try:
            response = get(target, timeout=_timeouts(timeout), stream=True, allow_redirects=False)
        except requests.RequestException as exc:
            raise ProviderError(f"GET {target}: {exc.__class__.__name__}: {str(exc)[:200]}") from None
        if not response.is_redirect:
            break
        location = urljoin(target, response.headers.get("location", ""))
        response.close()
        if urlsplit(location).netloc != urlsplit(url).netloc:
            get = requests.get  # no session: no key
        target = location
    else:
        raise ProviderError(f"GET {url}: too many redirects")
    if response.status_code >= 400:
        response.close()
        raise ProviderError(f"GET {target}: HTTP {response.status_code}")
    return response
