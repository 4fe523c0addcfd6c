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


def parse_iso(value: str) -> datetime:
    """An RFC 3339 time (``Z`` or an offset; seconds with or without a fraction), in UTC.
    Raises ValueError for anything else, including a time without an offset."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None or "T" not in text.upper():
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    try:
        return moment.astimezone(timezone.utc)
    except (OverflowError, OSError):  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise ValueError(f"out of range: {value!r}") from None
