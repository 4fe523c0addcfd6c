"""RFC 3339 timestamps in UTC with microseconds (sortable as strings)."""
from __future__ import annotations

import time
from datetime import datetime, timezone

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(FORMAT)


def now_iso() -> str:
    return iso(now())


def epoch() -> int:
    return int(time.time())
