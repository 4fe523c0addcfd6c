"""The local stack's settings, read from the environment once (README: "The local stack")."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from .faults import FaultSpec


def _number(env: dict[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    value = float(text)
    if value < 0:
        raise ValueError(f"{name} must not be negative, not {text}")
    return value


def parse_parameters(spec: str) -> dict[str, str]:
    """``Name=value`` entries, comma separated (template parameter overrides)."""
    out = {}
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, value = entry.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"LOCAL_PARAMETERS entry {entry!r} is not Name=value")
        out[name.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class LocalSettings:
    port: int = 3000
    #: LOCAL_API_KEYS, as given ("" when unset)
    api_keys: str = ""
    endpoint_url: str | None = None
    schedule_seconds: float = 5.0
    verbose: bool = False
    #: LOCAL_TRANSACTION_CONFLICT_MS, in seconds
    transaction_seconds: float = 0.02
    #: LOCAL_INDEX_LAG_MS, in seconds
    index_lag_seconds: float = 0.0
    faults: FaultSpec = field(default_factory=FaultSpec)
    #: LOCAL_PARAMETERS: template parameters set for the local stack
    parameters: dict[str, str] = field(default_factory=dict)
    #: LOCAL_TIMEOUT_SCALE: every function's Timeout is multiplied by it (1: as in AWS)
    timeout_scale: float = 1.0
    #: LOCAL_RETENTION_SECONDS: a terminal job is deleted this long after it ended (instead of the
    #: template's RetentionDays); None: as the template says
    retention_seconds: float | None = None
    #: LOCAL_TTL_SECONDS: how often expired items are deleted (DynamoDB's TTL, locally)
    ttl_seconds: float = 5.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "LocalSettings":
        env = dict(os.environ if env is None else env)
        return cls(
            port=int(env.get("PORT", "3000")),
            api_keys=env.get("LOCAL_API_KEYS", "").strip(),
            endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            schedule_seconds=_number(env, "JOBS_SCHEDULE_SECONDS", 5.0),
            verbose=env.get("LOCAL_VERBOSE", "") not in ("", "0", "false"),
            transaction_seconds=_number(env, "LOCAL_TRANSACTION_CONFLICT_MS", 20.0) / 1000,
            index_lag_seconds=_number(env, "LOCAL_INDEX_LAG_MS", 0.0) / 1000,
            faults=FaultSpec.parse(env.get("LOCAL_FAULTS", "")),
            parameters=parse_parameters(env.get("LOCAL_PARAMETERS", "")),
            timeout_scale=_number(env, "LOCAL_TIMEOUT_SCALE", 1.0) or 1.0,
            retention_seconds=_number(env, "LOCAL_RETENTION_SECONDS", 0.0) or None,
            ttl_seconds=_number(env, "LOCAL_TTL_SECONDS", 5.0) or 5.0,
        )
