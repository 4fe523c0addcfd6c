"""Time-ordered ids: ``<prefix>-<UUIDv7>``; sorting them as strings sorts by creation time."""
from __future__ import annotations

import os
import re
import threading
import time
import uuid

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_MAX = (1 << 128) - 1

_lock = threading.Lock()
_last_ms = 0
_seq = 0


def uuid7() -> uuid.UUID:
    """A UUIDv7 (RFC 9562), monotonic within this process.

    The 12 ``rand_a`` bits carry a counter seeded at random each millisecond,
    so two ids made in the same millisecond by one process still sort in order.
    """
    global _last_ms, _seq
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms, _seq = ms, int.from_bytes(os.urandom(2), "big") & 0x7FF
        else:
            _seq += 1
            if _seq > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms, _seq = _last_ms + 1, 0
            ms = _last_ms
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | _seq << 64 | 0b10 << 62 | rand_b
    return uuid.UUID(int=value)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid7()}"


def parse_id(value: str, prefix: str) -> str | None:
    """The canonical (lower-case) form of ``<prefix>-<uuid>``, or None if malformed."""
    if not isinstance(value, str) or not value.startswith(prefix + "-"):
        return None
    body = value[len(prefix) + 1:].lower()
    if not _UUID_RE.match(body):
        return None
    return f"{prefix}-{body}"


def _shift(value: str, prefix: str, delta: int) -> str | None:
    number = uuid.UUID(value[len(prefix) + 1:]).int + delta
    if number < 0 or number > _MAX:
        return None
    return f"{prefix}-{uuid.UUID(int=number)}"


def successor(value: str, prefix: str) -> str | None:
    """The smallest id of this form greater than ``value`` (None past the last)."""
    return _shift(value, prefix, +1)


def predecessor(value: str, prefix: str) -> str | None:
    """The greatest id of this form smaller than ``value`` (None before the first)."""
    return _shift(value, prefix, -1)
