"""The exceptions of the client. Every one derives from :class:`JobsError`."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

import requests

__all__ = [
    "JobsError",
    "ConfigurationError",
    "ApiError",
    "ApiConnectionError",
    "JobEnded",
    "JobCancelled",
    "WebhookVerificationError",
]


class JobsError(Exception):
    """Base class of every exception raised by ``jobsvc_client``."""


class ConfigurationError(JobsError, ValueError):
    """The client is missing its base URL or API key (arguments or environment)."""


class ApiError(JobsError):
    """The API answered with an error (any status the client does not retry, or the last
    answer once its retries are spent).

    ``status_code``: the HTTP status. ``detail``: the server's ``detail`` member (a message, or
    a list of validation problems), or the body (or the reason phrase) when the answer is not
    JSON. ``response``: the :class:`requests.Response`. ``current_status`` is the job's status
    given with a ``409`` (``None`` otherwise).
    """

    def __init__(self, status_code: int, detail: Union[str, List[Any], Any], response: Optional[requests.Response] = None) -> None:
        self.status_code = status_code
        self.detail = detail
        self.response = response
        super().__init__(status_code, detail)

    @property
    def current_status(self) -> Optional[str]:
        body = self.body
        value = body.get("current_status") if isinstance(body, dict) else None
        return value if isinstance(value, str) else None

    @property
    def body(self) -> Any:
        """The answer's JSON body, or ``None`` when it is not JSON."""
        if self.response is None:
            return None
        try:
            return self.response.json()
        except ValueError:
            return None

    def __str__(self) -> str:
        return f"{self.status_code} {format_detail(self.detail)}"

    @classmethod
    def from_response(cls, response: requests.Response) -> "ApiError":
        detail: Any
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "detail" in body:
            detail = body["detail"]
        else:
            text = response.text.strip()
            detail = text or response.reason or ""
        return cls(response.status_code, detail, response)


class ApiConnectionError(JobsError):
    """The API could not be reached (connection refused or dropped, DNS, timeout) and the
    client's retries are spent. The last ``requests`` exception is ``__cause__``."""


class JobEnded(JobsError):
    """Raised by :meth:`Tracker.check` / :meth:`Tracker.update` when the tracked job has ended
    outside this worker (for example failed by the heartbeat sweep, or deleted).

    ``job_id`` is the job, ``status`` its status (``None`` if the job was deleted), ``job``
    the last job seen.
    """

    def __init__(self, message: str, job_id: str, status: Optional[str] = None, job: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.status = status
        self.job = job


class JobCancelled(JobEnded):
    """The tracked job was cancelled from outside: stop working (raised by
    :meth:`Tracker.check` and :meth:`Tracker.update`)."""


class WebhookVerificationError(JobsError):
    """A webhook delivery failed verification (signature, timestamp, headers or body)."""


def format_detail(detail: Any) -> str:
    """A one-line rendering of a ``detail`` member: validation problems as ``loc: msg; ...``."""
    if isinstance(detail, list):
        parts = []
        for problem in detail:
            if isinstance(problem, dict) and "msg" in problem:
                loc = ".".join(str(p) for p in problem.get("loc") or [] if p != "body")
                parts.append(f"{loc}: {problem['msg']}" if loc else str(problem["msg"]))
            else:
                parts.append(str(problem))
        return "; ".join(parts)
    return str(detail)
