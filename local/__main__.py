"""``python -m local``: run the whole service on http://127.0.0.1:${PORT:-3000} (contract section 8)."""
from __future__ import annotations

import os
import secrets
import signal
import sys
import threading

from .stack import ApiKey, LocalStack, parse_api_keys


def main() -> int:
    port = int(os.environ.get("PORT", "3000"))
    spec = os.environ.get("LOCAL_API_KEYS", "").strip()
    try:
        keys = parse_api_keys(spec) if spec else [ApiKey("jsk_local_" + secrets.token_urlsafe(24), "local-org", "local-user")]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stack = LocalStack(
        port=port,
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        api_keys=keys,
        schedule_seconds=float(os.environ.get("JOBS_SCHEDULE_SECONDS", "5")),
        verbose=os.environ.get("LOCAL_VERBOSE", "") not in ("", "0", "false"),
    )
    try:
        stack.start()
    except OSError as exc:
        print(f"error: cannot start the local stack: {exc}", file=sys.stderr)
        return 1

    print(f"emulator: {stack.emulator.endpoint_url}{'' if stack.emulator.embedded else ' (external)'}")
    for key in keys:
        shown = key.key if not spec else key.key[:6] + "..."
        print(f"api key: {shown}  (organization {key.organization_id}, user {key.user_id})")
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
