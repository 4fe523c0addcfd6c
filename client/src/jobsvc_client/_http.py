"""HTTP helpers with no state: ``Link`` headers, ``Retry-After``, backoff, timestamps."""
from __future__ import annotations

import email.utils
import random
from datetime import datetime, timezone
from typing import Dict, List, Optional, Tuple, Union

__all__ = ["parse_link_header", "next_link", "retry_after_seconds", "backoff_delay", "format_time"]

Link = Tuple[str, Dict[str, str]]


def parse_link_header(value: str) -> List[Link]:
    """Parse an RFC 8288 ``Link`` header into ``[(uri, {param: value})]``.

    Handles several links in one header (and several headers joined with commas), commas and
    semicolons inside ``<...>`` and inside quoted strings, backslash escapes in quoted strings,
    parameters without a value, and any case of parameter names (lowered here). Malformed
    pieces are skipped rather than guessed at.
    """
    links: List[Link] = []
    i, n = 0, len(value)
    while i < n:
        # skip separators between links
        while i < n and value[i] in " \t,":
            i += 1
        if i >= n:
            break
        if value[i] != "<":
            # not a link: skip to the next top-level comma
            i = _skip_to_comma(value, i)
            continue
        end = value.find(">", i + 1)
        if end < 0:
            break
        uri = value[i + 1:end].strip()
        i = end + 1
        params: Dict[str, str] = {}
        while i < n:
            while i < n and value[i] in " \t":
                i += 1
            if i >= n or value[i] == ",":
                break
            if value[i] != ";":
                i = _skip_to_comma(value, i)
                break
            i += 1
            while i < n and value[i] in " \t":
                i += 1
            start = i
            while i < n and value[i] not in "=;, \t":
                i += 1
            name = value[start:i].lower()
            while i < n and value[i] in " \t":
                i += 1
            param_value = ""
            if i < n and value[i] == "=":
                i += 1
                while i < n and value[i] in " \t":
                    i += 1
                if i < n and value[i] == '"':
                    i += 1
                    chars = []
                    while i < n and value[i] != '"':
                        if value[i] == "\\" and i + 1 < n:
                            i += 1
                        chars.append(value[i])
                        i += 1
                    i += 1  # the closing quote
                    param_value = "".join(chars)
                else:
                    start = i
                    while i < n and value[i] not in ";,":
                        i += 1
                    param_value = value[start:i].strip()
            if name and name not in params:  # RFC 8288: only the first occurrence of rel counts
                params[name] = param_value
        links.append((uri, params))
    return links


def _skip_to_comma(value: str, i: int) -> int:
    quoted = False
    while i < len(value):
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == ",":
            return i + 1
        i += 1
    return i


def next_link(value: Optional[str]) -> Optional[str]:
    """The target of the first link whose ``rel`` (a space-separated list, any case) holds
    ``next``; ``None`` when there is none."""
    if not value:
        return None
    for uri, params in parse_link_header(value):
        rels = params.get("rel", "").lower().split()
        if "next" in rels:
            return uri
    return None


def retry_after_seconds(value: Optional[str], now: Optional[datetime] = None) -> Optional[float]:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); ``None`` if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def backoff_delay(retry: int, base: float, cap: float, rng: Optional[random.Random] = None) -> float:
    """Exponential backoff with full jitter: uniform in ``[0, min(cap, base * 2**retry)]``
    (``retry`` counts from 0)."""
    ceiling = min(cap, base * (2 ** min(retry, 62)))
    return (rng or random).uniform(0, ceiling)


def format_time(value: Union[datetime, str]) -> str:
    """An RFC 3339 UTC timestamp for the API. Strings are passed as they are; an aware
    ``datetime`` is converted to UTC; a naive one is taken as local time (as Python's
    ``datetime.astimezone`` does)."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    raise TypeError(f"expected a datetime or an RFC 3339 string, not {type(value).__name__}")


def parse_time(value: Optional[str]) -> Optional[datetime]:
    """An RFC 3339 timestamp from the API as an aware ``datetime`` (``None`` stays ``None``)."""
    if not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python < 3.11 fromisoformat takes exactly 3 or 6 fraction digits
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{(digits + '000000')[:6]}{rest}"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed
