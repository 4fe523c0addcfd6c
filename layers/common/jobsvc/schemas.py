"""Input and output models of the public API (kept apart from the storage models).

Inputs are strict (no type coercion) and refuse unknown members; the OpenAPI
document is generated from these classes.
"""
# No ``from __future__ import annotations`` here: pydantic would compile every annotation's text
# when the classes are made, a few ms more of the API function's import.

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel as _PydanticModel, ConfigDict, Field

from . import states

Status = Literal["created", "pending", "running", "completed", "failed", "cancelled", "expired"]
InitialStatus = Literal["created", "pending", "running"]
JobType = Literal["job", "run", "batch"]
CreatableJobType = Literal["job", "run"]
Role = Literal["user", "assistant", "system", "tool"]

assert set(Status.__args__) == set(states.STATUSES)  # type: ignore[attr-defined]
assert set(InitialStatus.__args__) == set(states.INITIAL)  # type: ignore[attr-defined]

_STRICT = ConfigDict(extra="forbid", strict=True)


class BaseModel(_PydanticModel):
    """Every model here is built (its validator and serializer made) when first used, not when
    its class is made: about 100 ms of the API function's import on this machine, paid instead
    by the first request that uses a model (a few ms each), or, in AWS, before the SnapStart
    snapshot is taken (``build``)."""

    model_config = ConfigDict(defer_build=True)


class JobCreate(BaseModel):
    """Body of ``POST /v1/jobs``; every member is optional."""

    model_config = _STRICT

    job_type: CreatableJobType = "job"
    status: InitialStatus = "created"
    metadata: dict[str, Any] = Field(default_factory=dict, description="JSON object, at most 64 KiB serialised")
    callback_url: Optional[str] = Field(None, max_length=2048)
    background: bool = False
    expires_in_seconds: int = Field(86400, ge=60, le=604800)
    heartbeat_timeout_seconds: Optional[int] = Field(None, ge=10, le=86400)


class JobUpdate(BaseModel):
    """Body of ``PATCH /v1/jobs/{job_id}``; every member is optional.

    ``metadata`` is merged key by key (a key set to ``null`` is removed).
    ``stop_reason``, ``ttft_ns``, ``total_duration_ns`` and ``callback_url``
    set to ``null`` are cleared.
    """

    model_config = _STRICT

    status: Optional[Status] = None
    metadata: Optional[dict[str, Any]] = None
    stop_reason: Optional[str] = Field(None, max_length=64)
    #: nanoseconds, at most 2**63 - 1 (292 years; a signed 64-bit integer, which any client can hold)
    ttft_ns: Optional[int] = Field(None, ge=0, le=2**63 - 1)
    total_duration_ns: Optional[int] = Field(None, ge=0, le=2**63 - 1)
    callback_url: Optional[str] = Field(None, max_length=2048)


class Job(BaseModel):
    id: str
    status: Status
    job_type: JobType
    created_at: str
    last_updated_at: str
    completed_at: Optional[str]
    user_id: str
    organization_id: str
    metadata: dict[str, Any]
    background: bool
    stop_reason: Optional[str]
    callback_url: Optional[str]
    callback_sent_at: Optional[str]
    callback_status_code: Optional[int]
    callback_error: Optional[str]
    ttft_ns: Optional[int]
    total_duration_ns: Optional[int]
    expires_at: str
    heartbeat_timeout_seconds: Optional[int]


class MessageCreate(BaseModel):
    model_config = _STRICT

    role: Role
    content: Union[str, dict[str, Any]]


class Message(BaseModel):
    id: str
    job_id: str
    role: Role
    content: Union[str, dict[str, Any]]
    created_at: str


class HistoryEntry(BaseModel):
    status: Status
    from_: Optional[Status] = Field(alias="from")
    at: str
    actor: str
    stop_reason: Optional[str]


ActiveStatus = Literal["created", "pending", "running"]


class BulkCancel(BaseModel):
    """Body of ``POST /v1/jobs/cancel``: at least one filter member."""

    model_config = _STRICT

    status: Optional[ActiveStatus] = None
    job_type: Optional[CreatableJobType] = None
    source_id: Optional[str] = Field(None, max_length=1024)
    created_before: Optional[str] = Field(None, max_length=64, description="RFC 3339 time")
    limit: int = Field(1000, ge=1, le=1000)


class BulkCancelResult(BaseModel):
    cancelled: list[str]
    more: bool


class Recover(BaseModel):
    """Body of ``POST /v1/callbacks/recover``."""

    model_config = _STRICT

    since: str = Field(max_length=64, description="RFC 3339 time")
    until: Optional[str] = Field(None, max_length=64, description="RFC 3339 time (default: now)")


class Queued(BaseModel):
    queued: int


class StatusCounts(BaseModel):
    created: int
    pending: int
    running: int
    completed: int
    failed: int
    cancelled: int
    expired: int


class CallbackStats(BaseModel):
    delivered: int
    failed: int
    avg_latency_ms: Optional[int]


class StatsWindow(BaseModel):
    since: str
    until: str
    created: int
    completed: int
    failed: int
    cancelled: int
    expired: int
    completion_rate: Optional[float]
    avg_processing_ms: Optional[int]
    callbacks: CallbackStats


class Stats(BaseModel):
    counts: StatusCounts
    window: StatsWindow


class Error(BaseModel):
    detail: Union[str, list[Any]]


class GatewayError(BaseModel):
    """API Gateway's own answer, before the service sees the request (a 401 for a request with
    no Authorization header at all, a 429 over the stage's throttle)."""

    message: str


#: a 401: the service's {detail}, or API Gateway's {message} when no Authorization header came
Unauthorized = Union[Error, GatewayError]


class TransitionError(Error):
    current_status: Status


class Health(BaseModel):
    status: Literal["ok"]


class CallbackAttempt(BaseModel):
    webhook_id: str
    event_type: str
    attempt: int
    sent_at: str
    status_code: Optional[int]
    error: Optional[str]
    duration_ms: int
    succeeded: bool


class Redelivery(BaseModel):
    webhook_id: str
    delivery_id: str


class WebhookSecret(BaseModel):
    secret: str


ProviderName = Literal["anthropic", "openai", "simulated"]


class BatchRequest(BaseModel):
    model_config = _STRICT

    custom_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    params: dict[str, Any]


class BatchCreate(BaseModel):
    """Body of ``POST /v1/batches``: ``requests`` to submit, or ``provider_batch_id`` to track."""

    model_config = _STRICT

    provider: ProviderName
    requests: Optional[list[BatchRequest]] = None
    provider_batch_id: Optional[str] = Field(None, pattern=r"^[A-Za-z0-9_-]{1,200}$")
    callback_url: Optional[str] = Field(None, max_length=2048)
    metadata: dict[str, Any] = Field(default_factory=dict)


class RequestCounts(BaseModel):
    processing: int = 0
    succeeded: int = 0
    errored: int = 0
    canceled: int = 0
    expired: int = 0


class Batch(Job):
    provider: ProviderName
    provider_batch_id: str
    request_counts: RequestCounts
    last_polled_at: Optional[str]
    last_poll_error: Optional[str]
    cancel_requested: bool


class BatchItem(BaseModel):
    custom_id: str
    status: Literal["completed", "failed", "cancelled", "expired"]
    result: Any
    truncated: bool = False


def build() -> None:
    """Build every model now (the API function does it before its SnapStart snapshot)."""
    for value in list(globals().values()):
        if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel:
            value.model_rebuild()
