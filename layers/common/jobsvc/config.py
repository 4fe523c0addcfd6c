"""Configuration, read from the environment once into one typed object."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    table_name: str
    region: str
    endpoint_url: str | None
    #: allow http:// and private/loopback callback hosts (the local stack does).
    allow_private_callbacks: bool
    #: request bodies larger than this are refused with 413.
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

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        return cls(
            table_name=env.get("TABLE_NAME", "jobs"),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            endpoint_url=env.get("AWS_ENDPOINT_URL_DYNAMODB") or env.get("AWS_ENDPOINT_URL") or None,
            allow_private_callbacks=_bool(env.get("ALLOW_PRIVATE_CALLBACKS")),
            max_body_bytes=int(env.get("MAX_BODY_BYTES", 1024 * 1024)),
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
        )


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()
