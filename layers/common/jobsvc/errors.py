"""Domain errors with meaning; the API maps each to one HTTP status in one place."""
from __future__ import annotations


class DomainError(Exception):
    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def body(self) -> dict:
        return {"detail": self.detail}


class BadRequest(DomainError):
    status_code = 400


class NotFound(DomainError):
    status_code = 404


class JobNotFound(NotFound):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} not found")


class Unauthorized(DomainError):
    status_code = 401


class InvalidTransition(DomainError):
    """The job's current status does not allow the change (409)."""

    status_code = 409

    def __init__(self, detail: str, current_status: str) -> None:
        super().__init__(detail)
        self.current_status = current_status

    def body(self) -> dict:
        return {"detail": self.detail, "current_status": self.current_status}


class Conflict(DomainError):
    status_code = 409


class InvalidInput(DomainError):
    status_code = 422


class BodyTooLarge(DomainError):
    status_code = 413


class ProviderFailed(DomainError):
    """The LLM provider refused or could not take the request (502, with its message)."""

    status_code = 502


class Unavailable(DomainError):
    """DynamoDB stayed busy (throttling, transaction conflicts, its own 5xx) after our retries (503)."""

    status_code = 503
