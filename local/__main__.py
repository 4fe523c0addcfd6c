"""``python -m local``: run the whole service on http://127.0.0.1:${PORT:-3000} (contract section 8)."""
from __future__ import annotations

import secrets
import signal
import sys
import threading

from .settings import LocalSettings
from .stack import ApiKey, LocalStack, parse_api_keys


def main() -> int:
    try:
        settings = LocalSettings.from_env()
        keys = parse_api_keys(settings.api_keys) if settings.api_keys else [
            ApiKey("jsk_local_" + secrets.token_urlsafe(24), "local-org", "local-user")
        ]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stack = LocalStack(
        port=settings.port,
        endpoint_url=settings.endpoint_url,
        api_keys=keys,
        schedule_seconds=settings.schedule_seconds,
        verbose=settings.verbose,
        transaction_seconds=settings.transaction_seconds,
        index_lag_seconds=settings.index_lag_seconds,
        faults=settings.faults,
        parameters=settings.parameters,
        timeout_scale=settings.timeout_scale,
        retention_seconds=settings.retention_seconds,
        ttl_seconds=settings.ttl_seconds,
    )
    try:
        stack.start()
    except OSError as exc:
        print(f"error: cannot start the local stack: {exc}", file=sys.stderr)
        return 1

    print(f"emulator: {stack.emulator.endpoint_url}{'' if stack.emulator.embedded else ' (external)'}")
    for key in keys:
        shown = key.key if not settings.api_keys else key.key[:6] + "..."
        print(f"api key: {shown}  (organization {key.organization_id}, user {key.user_id})")
    if stack.emulator.embedded:
        print(
            f"emulating: transactions hold their items {1000 * settings.transaction_seconds:g} ms"
            f" (LOCAL_TRANSACTION_CONFLICT_MS), eventually consistent reads lag {1000 * settings.index_lag_seconds:g} ms"
            f" (LOCAL_INDEX_LAG_MS), faults: {settings.faults if settings.faults.active else 'none'} (LOCAL_FAULTS)"
        )
    if settings.retention_seconds:
        print(f"note: a terminal job is deleted {settings.retention_seconds:g} s after it ends (LOCAL_RETENTION_SECONDS)")
    if settings.timeout_scale != 1:
        print(f"note: every function's Timeout is {settings.timeout_scale:g} times the template's (LOCAL_TIMEOUT_SCALE)")
    for trigger in stack.unfed_triggers:
        print(f"note: trigger {trigger} is not fed locally yet")
    print(f"ready: {stack.url}  (docs: {stack.url}/v1/docs)", flush=True)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
