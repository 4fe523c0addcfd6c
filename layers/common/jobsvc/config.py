"""Configuration, read from the environment once into one typed object."""
from __future__ import annotations

import os
from functools import lru_cache
from typing import NamedTuple


#: Lambda's quota for a synchronous invocation: API Gateway's event, with the body in it, must fit.
LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024
#: room for the rest of an API event: HTTP API caps the request line and headers at 10 KiB, and the
#: event repeats some of them (rawPath, requestContext.http, queryStringParameters, cookies) and
#: JSON-escapes them
API_EVENT_OVERHEAD_BYTES = 64 * 1024
#: the largest body that always fits in an API event whatever API Gateway does to it: a text body
#: (JSON) is JSON-escaped, which doubles every " and \ (2x at worst); any other Content-Type is
#: base64-encoded (4/3). A body limit above this would let a body the service accepts be refused
#: by the platform with a 500 instead.
MAX_EVENT_BODY_BYTES = (LAMBDA_PAYLOAD_BYTES - API_EVENT_OVERHEAD_BYTES) // 2  # 3,112,960


def _body_limit(value: str | None, default: int) -> int:
    return min(int(value) if value else default, MAX_EVENT_BODY_BYTES)


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class Settings(NamedTuple):
    """Immutable. A NamedTuple: its class takes about a seventh of a frozen dataclass's time to
    make, and every function imports this module."""

    table_name: str
    region: str
    endpoint_url: str | None
    #: allow http:// and private/loopback callback hosts (the local stack does).
    allow_private_callbacks: bool
    #: request bodies larger than this are refused with 413 (never above MAX_EVENT_BODY_BYTES).
    max_body_bytes: int
    #: serialised metadata larger than this is refused with 422.
    max_metadata_bytes: int
    max_message_bytes: int
    idempotency_ttl_seconds: int
    default_expires_in_seconds: int
    #: webhooks (contract section 4)
    webhook_queue_url: str
    webhook_dlq_url: str
    webhook_timeout_seconds: float
    webhook_max_retries: int
    webhook_backoff_base_seconds: float
    webhook_backoff_cap_seconds: float
    #: how long a delivery attempt is owned by its sender (longer than the function timeout)
    webhook_lease_seconds: int
    #: webhook attempts one callbacks invocation makes at once
    webhook_concurrency: int
    #: batches (contract sections 5 and 6)
    anthropic_base_url: str
    anthropic_api_key: str | None
    anthropic_api_key_parameter: str | None  # SSM parameter holding the key (AWS)
    openai_base_url: str
    openai_api_key: str | None
    openai_api_key_parameter: str | None
    provider_timeout_seconds: float
    batch_max_body_bytes: int
    batch_max_requests: int
    simulated_polls_to_finish: int
    #: the in-service "simulated" provider (template parameter SimulatedProvider)
    simulated_provider: bool
    poll_concurrency: int
    #: at most this many polls of one provider's batches per scheduler run
    poll_max_per_provider: int
    scheduler_lease_seconds: int
    #: the scheduler stops taking new work when less than this is left before its timeout
    scheduler_reserve_seconds: float
    #: a terminal job is deleted this long after completed_at (0: kept); RETENTION_DAYS in AWS,
    #: RETENTION_SECONDS (the local stack's setting) overrides it
    retention_seconds: int

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        return cls(
            table_name=env.get("TABLE_NAME", "jobs"),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            endpoint_url=env.get("AWS_ENDPOINT_URL_DYNAMODB") or env.get("AWS_ENDPOINT_URL") or None,
            allow_private_callbacks=_bool(env.get("ALLOW_PRIVATE_CALLBACKS")),
            max_body_bytes=_body_limit(env.get("MAX_BODY_BYTES"), 1024 * 1024),
            max_metadata_bytes=int(env.get("MAX_METADATA_BYTES", 64 * 1024)),
            max_message_bytes=int(env.get("MAX_MESSAGE_BYTES", 256 * 1024)),
            idempotency_ttl_seconds=int(env.get("IDEMPOTENCY_TTL_SECONDS", 24 * 3600)),
            default_expires_in_seconds=int(env.get("DEFAULT_EXPIRES_IN_SECONDS", 86400)),
            webhook_queue_url=env.get("WEBHOOK_QUEUE_URL", ""),
            webhook_dlq_url=env.get("WEBHOOK_DLQ_URL", ""),
            webhook_timeout_seconds=float(env.get("WEBHOOK_TIMEOUT_SECONDS", 5)),
            webhook_max_retries=int(env.get("WEBHOOK_MAX_RETRIES", 5)),
            webhook_backoff_base_seconds=float(env.get("WEBHOOK_BACKOFF_BASE_SECONDS", 1)),
            webhook_backoff_cap_seconds=float(env.get("WEBHOOK_BACKOFF_CAP_SECONDS", 30)),
            webhook_lease_seconds=int(env.get("WEBHOOK_LEASE_SECONDS", 120)),
            webhook_concurrency=int(env.get("WEBHOOK_CONCURRENCY", 32)),
            anthropic_base_url=(env.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com").rstrip("/"),
            anthropic_api_key=env.get("ANTHROPIC_API_KEY") or None,
            anthropic_api_key_parameter=env.get("ANTHROPIC_API_KEY_PARAMETER") or None,
            openai_base_url=(env.get("OPENAI_BASE_URL") or "https://api.openai.com").rstrip("/"),
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            openai_api_key_parameter=env.get("OPENAI_API_KEY_PARAMETER") or None,
            provider_timeout_seconds=float(env.get("PROVIDER_TIMEOUT_SECONDS", 8)),
            batch_max_body_bytes=_body_limit(env.get("BATCH_MAX_BODY_BYTES"), 3_000_000),
            batch_max_requests=int(env.get("BATCH_MAX_REQUESTS", 10000)),
            simulated_polls_to_finish=int(env.get("SIMULATED_POLLS_TO_FINISH", 2)),
            simulated_provider=_bool(env.get("SIMULATED_PROVIDER"), default=True),
            poll_concurrency=int(env.get("POLL_CONCURRENCY", 16)),
            poll_max_per_provider=int(env.get("POLL_MAX_PER_PROVIDER", 600)),
            scheduler_lease_seconds=int(env.get("SCHEDULER_LEASE_SECONDS", 330)),
            scheduler_reserve_seconds=float(env.get("SCHEDULER_RESERVE_SECONDS", 30)),
            retention_seconds=int(env.get("RETENTION_SECONDS") or 0) or int(float(env.get("RETENTION_DAYS", 90)) * 86400),
        )


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()
