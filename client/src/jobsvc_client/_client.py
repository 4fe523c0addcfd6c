"""The :class:`Client`: one method per route of the API, retries, pagination."""
from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Mapping, Optional, Set, Tuple, Union, cast
from urllib.parse import quote, urljoin, urlsplit

import requests

from ._errors import ApiConnectionError, ApiError, ConfigurationError
from ._http import backoff_delay, format_time, next_link, retry_after_seconds
from ._version import __version__

if TYPE_CHECKING:
    from ._track import Tracker

__all__ = ["Client", "NOT_GIVEN", "NotGiven"]

Json = Dict[str, Any]
TimeArg = Union[datetime, str]


class NotGiven:
    """The type of :data:`NOT_GIVEN`: "leave this member out" where ``None`` means ``null``."""

    _instance: Optional["NotGiven"] = None

    def __new__(cls) -> "NotGiven":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


#: the default of :meth:`Client.update_job` members: not sent (``None`` sends ``null``, which clears).
NOT_GIVEN = NotGiven()

# Which failures may be retried for a request:
#   ALWAYS:  connection errors (also after the request was sent), 429 and 5xx. For reads, for the
#            state machine's writes (repeating a transition is harmless: the contract makes
#            "same status again" a no-op) and for creates carrying an Idempotency-Key.
#   UNSENT:  only when the server provably did not act: the connection could not be made, or
#            429. For operations that are not safe to repeat (appending a message, rotating the
#            webhook secret, submitting a provider batch).
ALWAYS = "always"
UNSENT = "unsent"
_CONNECTION_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


def _not_sent(exc: BaseException) -> bool:
    """Whether a ``requests`` exception means the request never reached the server."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    try:
        from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
    except ImportError:  # pragma: no cover - urllib3 comes with requests
        return False
    seen: Set[int] = set()
    stack: List[BaseException] = [exc]
    while stack:
        error = stack.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, (NewConnectionError, ConnectTimeoutError)):
            return True
        for nested in (*error.args, getattr(error, "reason", None), error.__cause__, error.__context__):
            if isinstance(nested, BaseException):
                stack.append(nested)
    return False


def _origin(url: str) -> Tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


def _query(params: Mapping[str, Any]) -> Dict[str, str]:
    """Query parameters as the API reads them: ``None`` left out, booleans as ``true``/``false``,
    datetimes as RFC 3339."""
    out: Dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, datetime):
            out[name] = format_time(value)
        else:
            out[name] = str(value)
    return out


def _body(**members: Any) -> Json:
    """A request body without the members that were not given (``None`` for creates)."""
    return {k: v for k, v in members.items() if v is not None and v is not NOT_GIVEN}


def _path_id(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected an id, got {value!r}")
    return quote(value, safe="")


class Client:
    """A client of the job lifecycle service API.

    ``Client(base_url, api_key)``; either may be left out to read ``JOBS_API_URL`` /
    ``JOBS_API_KEY`` from the environment (a :class:`ConfigurationError` if neither gives one).
    ``base_url`` is the API's root (``http://127.0.0.1:3000``; a trailing ``/v1`` is accepted).

    Every method returns the API's JSON as plain dicts and lists. Errors raise
    :class:`ApiError` (``status_code``, ``detail``, ``response``); an API that cannot be
    reached raises :class:`ApiConnectionError` once the retries are spent.

    Retries: connection errors, ``429`` and ``5xx`` are retried up to ``max_retries`` times
    with exponential backoff and full jitter (``backoff_base * 2**n``, at most ``backoff_max``
    seconds), or after the answer's ``Retry-After`` (at most ``max_retry_after`` seconds).
    :meth:`create_job` sends an ``Idempotency-Key`` (a fresh UUID4 per call unless you pass
    one) and reuses it on its retries, so a retried create never makes two jobs. Operations
    that are not safe to repeat (:meth:`add_message`, :meth:`rotate_webhook_secret`,
    :meth:`create_batch` with ``requests``) are retried only when the server provably did not
    act on them (the connection could not be made, or ``429``).

    List methods (``list_*``) return an iterator over every item of every page: ``limit`` is
    the page size, and the next page is fetched through the ``Link: <...>; rel="next"`` header
    when the current one is used up, until an answer carries none.

    ``session``: a :class:`requests.Session` to use (for proxies, adapters, certificates); the
    client sets its ``Authorization`` and ``User-Agent`` headers. Usable as a context manager
    (closes the session it created).
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        max_retry_after: float = 60.0,
        session: Optional[requests.Session] = None,
    ) -> None:
        base_url = base_url or os.environ.get("JOBS_API_URL")
        api_key = api_key or os.environ.get("JOBS_API_KEY")
        if not base_url:
            raise ConfigurationError("no API URL: pass base_url or set JOBS_API_URL (for example http://127.0.0.1:3000)")
        if not api_key:
            raise ConfigurationError("no API key: pass api_key or set JOBS_API_KEY")
        base_url = base_url.strip().rstrip("/")
        if base_url.endswith("/v1"):
            base_url = base_url[: -len("/v1")]
        if urlsplit(base_url).scheme not in ("http", "https"):
            raise ConfigurationError(f"the API URL must start with http:// or https://, not {base_url!r}")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.base_url = base_url
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self._own_session = session is None
        self.session = session if session is not None else requests.Session()
        self.session.headers["Authorization"] = f"Bearer {api_key}"
        self.session.headers["User-Agent"] = f"jobsvc-client/{__version__} {requests.utils.default_user_agent()}"
        self._sleep: Callable[[float], None] = time.sleep  # tests replace it

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- transport ---------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        json: Any = NOT_GIVEN,
        headers: Optional[Mapping[str, Optional[str]]] = None,
        retry: str = ALWAYS,
        stop: Optional[threading.Event] = None,
        retry_conflict: bool = False,
        timeout: Optional[float] = None,
        retries: Optional[int] = None,
    ) -> "tuple[requests.Response, bool]":
        """One call with its retries: ``(the last answer, whether an earlier attempt may have
        been acted on)``. Raises :class:`ApiConnectionError` when no answer came.

        ``retry_conflict``: also retry a ``409`` that is not about a job's status (no
        ``current_status``) once an earlier attempt may have reached the server: for a create,
        that is this call's own earlier attempt still holding its ``Idempotency-Key``; the
        retry gets the replay."""
        kwargs: Dict[str, Any] = {"timeout": self.timeout if timeout is None else timeout}
        max_retries = self.max_retries if retries is None else retries
        if params:
            kwargs["params"] = _query(params)
        if json is not NOT_GIVEN:
            kwargs["json"] = json
        if headers:
            kwargs["headers"] = dict(headers)
        ambiguous = False
        attempt = 0
        while True:
            delay: Optional[float] = None
            try:
                response = self.session.request(method, url, **kwargs)
            except _CONNECTION_ERRORS as exc:
                unsent = _not_sent(exc)
                if not unsent:
                    ambiguous = True
                if attempt >= max_retries or not (retry == ALWAYS or unsent):
                    raise ApiConnectionError(f"{method} {url}: {exc}") from exc
                last_error: BaseException = exc
            else:
                status = response.status_code
                retryable = status == 429 or (status >= 500 and retry == ALWAYS)
                if status == 409 and retry_conflict and ambiguous:
                    retryable = ApiError.from_response(response).current_status is None
                if not retryable or attempt >= max_retries:
                    return response, ambiguous
                if status >= 500:
                    ambiguous = True
                after = retry_after_seconds(response.headers.get("Retry-After"))
                if after is not None:
                    delay = min(after, self.max_retry_after)
                response.close()
                last_error = ApiError.from_response(response)
            if delay is None:
                delay = backoff_delay(attempt, self.backoff_base, self.backoff_max)
            attempt += 1
            if stop is not None:
                if stop.wait(delay):
                    raise ApiConnectionError(f"{method} {url}: given up (stopping)") from last_error
            else:
                self._sleep(delay)

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        json: Any = NOT_GIVEN,
        headers: Optional[Mapping[str, Optional[str]]] = None,
        retry: str = ALWAYS,
        stop: Optional[threading.Event] = None,
        timeout: Optional[float] = None,
        retries: Optional[int] = None,
    ) -> Any:
        response, _ = self._send(method, self._url(path), params=params, json=json, headers=headers, retry=retry,
                                 stop=stop, timeout=timeout, retries=retries)
        return self._result(response)

    def _obj(self, method: str, path: str, **kwargs: Any) -> Json:
        """:meth:`_call` for routes that answer a JSON object."""
        return cast(Json, self._call(method, path, **kwargs))

    @staticmethod
    def _result(response: requests.Response) -> Any:
        if not 200 <= response.status_code < 300:
            raise ApiError.from_response(response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(response.status_code, f"the answer is not JSON: {response.text[:200]!r}", response) from None

    def _pages(self, path: str, params: Mapping[str, Any]) -> Iterator[Any]:
        """Every item of every page of a list, following ``Link: <...>; rel="next"``."""
        url: Optional[str] = self._url(path)
        query: Optional[Mapping[str, Any]] = params
        base_origin = _origin(self.base_url)
        seen: Set[str] = set()
        while url is not None:
            # never send the API key to another origin than the one it was given for
            headers = None if _origin(url) == base_origin else {"Authorization": None}
            response, _ = self._send("GET", url, params=query, headers=headers)
            page = self._result(response)
            if not isinstance(page, list):
                raise ApiError(response.status_code, "the answer to a list is not a JSON array", response)
            yield from page
            target = next_link(response.headers.get("Link"))
            if target is None:
                return
            url = urljoin(response.url, target)
            query = None
            if url in seen:  # a server that links a page to itself would loop forever
                return
            seen.add(url)

    # ---- jobs --------------------------------------------------------------------------

    def create_job(
        self,
        *,
        job_type: Optional[str] = None,
        status: Optional[str] = None,
        metadata: Optional[Json] = None,
        callback_url: Optional[str] = None,
        background: Optional[bool] = None,
        expires_in_seconds: Optional[int] = None,
        heartbeat_timeout_seconds: Optional[int] = None,
        idempotency_key: Optional[str] = None,
    ) -> Json:
        """``POST /v1/jobs``: create a job (``201``); members left ``None`` take the API's
        defaults. ``idempotency_key`` defaults to a fresh UUID4, sent with every retry of this
        call: repeating a create with the same key and body returns the same job. A retry that
        meets this call's own earlier attempt still in progress (``409``) is retried again."""
        body = _body(
            job_type=job_type, status=status, metadata=metadata, callback_url=callback_url, background=background,
            expires_in_seconds=expires_in_seconds, heartbeat_timeout_seconds=heartbeat_timeout_seconds,
        )
        key = idempotency_key if idempotency_key is not None else str(uuid.uuid4())
        response, _ = self._send("POST", self._url("/v1/jobs"), json=body, headers={"Idempotency-Key": key}, retry_conflict=True)
        return cast(Json, self._result(response))

    def get_job(self, job_id: str) -> Json:
        """``GET /v1/jobs/{job_id}``."""
        return self._obj("GET", f"/v1/jobs/{_path_id(job_id)}")

    def update_job(
        self,
        job_id: str,
        *,
        status: Union[str, None, NotGiven] = NOT_GIVEN,
        metadata: Union[Json, None, NotGiven] = NOT_GIVEN,
        stop_reason: Union[str, None, NotGiven] = NOT_GIVEN,
        ttft_ns: Union[int, None, NotGiven] = NOT_GIVEN,
        total_duration_ns: Union[int, None, NotGiven] = NOT_GIVEN,
        callback_url: Union[str, None, NotGiven] = NOT_GIVEN,
    ) -> Json:
        """``PATCH /v1/jobs/{job_id}``: a transition and/or an update; every successful call is
        a heartbeat. Members left out are not sent; ``None`` sends ``null`` (clears
        ``stop_reason``, ``ttft_ns``, ``total_duration_ns``, ``callback_url``). ``metadata`` is
        merged key by key (a key set to ``None`` is removed). A transition the state machine
        refuses raises :class:`ApiError` ``409`` (``current_status`` on the exception)."""
        members = {
            "status": status, "metadata": metadata, "stop_reason": stop_reason, "ttft_ns": ttft_ns,
            "total_duration_ns": total_duration_ns, "callback_url": callback_url,
        }
        body = {k: v for k, v in members.items() if v is not NOT_GIVEN}
        return self._obj("PATCH", f"/v1/jobs/{_path_id(job_id)}", json=body)

    def cancel_job(self, job_id: str) -> Json:
        """``PATCH /v1/jobs/{job_id}/cancel``: a non-terminal job becomes ``cancelled`` (stop_reason
        ``cancelled``); a terminal one raises ``409``. If an earlier attempt of this call may have
        gone through (its answer was lost and it was retried), a ``409`` saying the job is
        ``cancelled`` is taken as this call's success and the job is returned."""
        path = f"/v1/jobs/{_path_id(job_id)}/cancel"
        response, ambiguous = self._send("PATCH", self._url(path))
        if response.status_code == 409 and ambiguous:
            error = ApiError.from_response(response)
            if error.current_status == "cancelled":
                return self.get_job(job_id)
        return cast(Json, self._result(response))

    def delete_job(self, job_id: str) -> Json:
        """``DELETE /v1/jobs/{job_id}``: the deleted job; afterwards the job is ``404``."""
        return self._obj("DELETE", f"/v1/jobs/{_path_id(job_id)}")

    def list_jobs(
        self,
        *,
        status: Optional[str] = None,
        active: Optional[bool] = None,
        job_type: Optional[str] = None,
        source_id: Optional[str] = None,
        updated_before: Optional[TimeArg] = None,
        before: Optional[str] = None,
        after: Optional[str] = None,
        order: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> Iterator[Json]:
        """``GET /v1/jobs``: an iterator over every matching job, all pages (``limit`` is the
        page size, 1 to 1000). ``order``: ``desc`` (newest first, the default) or ``asc``;
        ``before``/``after``: exclusive job-id bounds; ``updated_before``: a ``datetime`` or an
        RFC 3339 string (only jobs whose ``last_updated_at`` is earlier)."""
        params = {
            "status": status, "active": active, "job_type": job_type, "source_id": source_id,
            "updated_before": updated_before, "before": before, "after": after, "order": order, "limit": limit,
        }
        return self._pages("/v1/jobs", params)

    def history(self, job_id: str) -> List[Json]:
        """``GET /v1/jobs/{job_id}/history``: every status the job entered, oldest first
        (``[{"status", "from", "at", "actor", "stop_reason"}]``), all pages."""
        return list(self._pages(f"/v1/jobs/{_path_id(job_id)}/history", {}))

    def bulk_cancel(
        self,
        *,
        status: Optional[str] = None,
        job_type: Optional[str] = None,
        source_id: Optional[str] = None,
        created_before: Optional[TimeArg] = None,
        limit: Optional[int] = None,
    ) -> Json:
        """``POST /v1/jobs/cancel``: cancel the active jobs matching a filter (at least one of
        ``status``, ``job_type``, ``source_id``, ``created_before``), at most ``limit`` (1 to
        1000) per call. Answers ``{"cancelled": [ids], "more": bool}``; call again while
        ``more`` is true. Safe to retry: a job already cancelled no longer matches."""
        if status is None and job_type is None and source_id is None and created_before is None:
            raise ValueError("bulk_cancel needs a filter: status, job_type, source_id or created_before")
        body = _body(
            status=status, job_type=job_type, source_id=source_id,
            created_before=None if created_before is None else format_time(created_before), limit=limit,
        )
        return self._obj("POST", "/v1/jobs/cancel", json=body)

    def stats(self, hours: Optional[int] = None, job_type: Optional[str] = None) -> Json:
        """``GET /v1/stats``: ``{"counts": {status: n}, "window": {...}}`` over the last ``hours``
        (1 to 720; the API's default is 24), optionally for one ``job_type``."""
        return self._obj("GET", "/v1/stats", params={"hours": hours, "job_type": job_type})

    # ---- messages ----------------------------------------------------------------------

    def add_message(self, job_id: str, *, role: str, content: Union[str, Json]) -> Json:
        """``POST /v1/jobs/{job_id}/messages``: append a message (``role``: ``user``,
        ``assistant``, ``system`` or ``tool``; ``content``: a string or a JSON object). Not
        repeated after an ambiguous failure (it would append twice)."""
        return self._obj("POST", f"/v1/jobs/{_path_id(job_id)}/messages", json={"role": role, "content": content}, retry=UNSENT)

    def list_messages(
        self,
        job_id: str,
        *,
        role: Optional[str] = None,
        before: Optional[str] = None,
        after: Optional[str] = None,
        order: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> Iterator[Json]:
        """``GET /v1/jobs/{job_id}/messages``: every message (oldest first by default), all pages."""
        params = {"role": role, "before": before, "after": after, "order": order, "limit": limit}
        return self._pages(f"/v1/jobs/{_path_id(job_id)}/messages", params)

    # ---- webhooks ----------------------------------------------------------------------

    def list_callbacks(self, job_id: str, *, limit: Optional[int] = None) -> Iterator[Json]:
        """``GET /v1/jobs/{job_id}/callbacks``: every webhook delivery attempt of the job."""
        return self._pages(f"/v1/jobs/{_path_id(job_id)}/callbacks", {"limit": limit})

    def redeliver(self, job_id: str) -> Json:
        """``POST /v1/jobs/{job_id}/callbacks/redeliver``: send the terminal webhook again
        (``202``; ``409`` if the job is not terminal or has no ``callback_url``). A repeat is
        one more delivery with the same ``webhook-id``, which receivers deduplicate."""
        return self._obj("POST", f"/v1/jobs/{_path_id(job_id)}/callbacks/redeliver")

    def recover_callbacks(self, since: TimeArg, until: Optional[TimeArg] = None) -> Json:
        """``POST /v1/callbacks/recover``: re-send every terminal event of the organization whose
        delivery ended failed between ``since`` and ``until`` (``202 {"queued": n}``)."""
        body: Json = {"since": format_time(since)}
        if until is not None:
            body["until"] = format_time(until)
        return self._obj("POST", "/v1/callbacks/recover", json=body)

    def webhook_secret(self) -> Json:
        """``GET /v1/webhook-secret``: ``{"secret": "whsec_..."}``."""
        return self._obj("GET", "/v1/webhook-secret")

    def rotate_webhook_secret(self) -> Json:
        """``POST /v1/webhook-secret/rotate``: a new secret (``{"secret": ...}``); the old one
        keeps signing too for 24 hours. Not repeated after an ambiguous failure (a second
        rotation would drop the old secret)."""
        return self._obj("POST", "/v1/webhook-secret/rotate", retry=UNSENT)

    # ---- batches -----------------------------------------------------------------------

    def create_batch(
        self,
        *,
        provider: str,
        requests: Optional[List[Json]] = None,
        provider_batch_id: Optional[str] = None,
        callback_url: Optional[str] = None,
        metadata: Optional[Json] = None,
    ) -> Json:
        """``POST /v1/batches``: submit ``requests`` (``[{"custom_id", "params"}]``) to
        ``provider`` (``anthropic``, ``openai``, ``simulated``), or track an existing
        ``provider_batch_id``. A submission is not repeated after an ambiguous failure (it
        could submit twice to the provider); a registration is (it is idempotent)."""
        body = _body(
            provider=provider, requests=requests, provider_batch_id=provider_batch_id,
            callback_url=callback_url, metadata=metadata,
        )
        return self._obj("POST", "/v1/batches", json=body, retry=UNSENT if requests is not None else ALWAYS)

    def get_batch(self, job_id: str) -> Json:
        """``GET /v1/batches/{job_id}``."""
        return self._obj("GET", f"/v1/batches/{_path_id(job_id)}")

    def list_batches(
        self,
        *,
        status: Optional[str] = None,
        active: Optional[bool] = None,
        source_id: Optional[str] = None,
        updated_before: Optional[TimeArg] = None,
        before: Optional[str] = None,
        after: Optional[str] = None,
        order: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> Iterator[Json]:
        """``GET /v1/batches``: every matching batch, all pages (the query of :meth:`list_jobs`)."""
        params = {
            "status": status, "active": active, "source_id": source_id, "updated_before": updated_before,
            "before": before, "after": after, "order": order, "limit": limit,
        }
        return self._pages("/v1/batches", params)

    def list_batch_items(self, job_id: str, *, after: Optional[str] = None, limit: Optional[int] = None) -> Iterator[Json]:
        """``GET /v1/batches/{job_id}/items``: every per-request result
        (``{"custom_id", "status", "result", ...}``), all pages."""
        return self._pages(f"/v1/batches/{_path_id(job_id)}/items", {"after": after, "limit": limit})

    def cancel_batch(self, job_id: str) -> Json:
        """``PATCH /v1/batches/{job_id}/cancel``: ask the provider to cancel (``202``); the job
        ends ``cancelled`` when the provider has stopped."""
        return self._obj("PATCH", f"/v1/batches/{_path_id(job_id)}/cancel")

    # ---- service -----------------------------------------------------------------------

    def health(self) -> Json:
        """``GET /v1/health``: ``{"status": "ok"}``."""
        return self._obj("GET", "/v1/health")

    # ---- workers -----------------------------------------------------------------------

    def track(
        self,
        *,
        job_type: str = "run",
        heartbeat_timeout_seconds: Optional[int] = 30,
        metadata: Optional[Json] = None,
        job_id: Optional[str] = None,
        callback_url: Optional[str] = None,
        expires_in_seconds: Optional[int] = None,
        idempotency_key: Optional[str] = None,
        heartbeat_interval: Optional[float] = None,
        check_interval: float = 2.0,
    ) -> "Tracker":
        """A context manager that runs a block of work as a job; see :class:`Tracker`."""
        from ._track import Tracker

        return Tracker(
            self, job_type=job_type, heartbeat_timeout_seconds=heartbeat_timeout_seconds, metadata=metadata,
            job_id=job_id, callback_url=callback_url, expires_in_seconds=expires_in_seconds,
            idempotency_key=idempotency_key, heartbeat_interval=heartbeat_interval, check_interval=check_interval,
        )
