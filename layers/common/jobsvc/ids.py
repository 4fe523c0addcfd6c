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
#: the next low-3-bit value dealt to a spread id (starts anywhere, then round-robin)
_deal = int.from_bytes(os.urandom(1), "big")


def uuid7(spread: bool = False) -> uuid.UUID:
    """A UUIDv7 (RFC 9562), monotonic within this process.

    The 12 ``rand_a`` bits carry a counter seeded at random each millisecond,
    so two ids made in the same millisecond by one process still sort in order.
    With ``spread``, the three lowest (random) bits are dealt round-robin instead:
    storage derives a job's shard from them, so one process's jobs spread
    evenly over the shards rather than by chance.
    """
    global _last_ms, _seq, _deal
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms, _seq = ms, int.from_bytes(os.urandom(2), "big") & 0x7FF
        else:
            _seq += 1
            if _seq > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms, _seq = _last_ms + 1, 0
            ms = _last_ms
        low = _deal & 7
        if spread:
            _deal += 1
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    if spread:
        rand_b = (rand_b & ~7) | low
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | _seq << 64 | 0b10 << 62 | rand_b
    return uuid.UUID(int=value)


def new_id(prefix: str, spread: bool = False) -> str:
    return f"{prefix}-{uuid7(spread)}"


def reseed() -> None:
    """Start the round-robin anywhere again (a restored SnapStart environment)."""
    global _deal
    with _lock:
        _deal = int.from_bytes(os.urandom(1), "big")


def first_at(prefix: str, ms: int) -> str:
    """The smallest id of this form made at ``ms`` (Unix milliseconds): every id made
    before it sorts lower."""
    return f"{prefix}-{uuid.UUID(int=(max(0, ms) & ((1 << 48) - 1)) << 80)}"


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
