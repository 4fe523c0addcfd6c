"""What every list shares: a page's size bound and where the next page starts.

A list answers a JSON array; when more may follow, the API adds a ``Link`` header
(``rel="next"``) built from ``Listing.next``. A page stops at ``limit`` items, at
the storage bound of the request (a fixed number of DynamoDB requests), or when
the answer would pass ``RESPONSE_BUDGET`` bytes, whichever comes first.
"""
from __future__ import annotations

import json
from typing import Any, Callable, NamedTuple

#: the bytes of one answer, as Lambda carries it (the body is JSON inside Lambda's JSON
#: response, so its quotes and backslashes count twice): well under Lambda's 6 MB, and
#: the body itself under the contract's 5 MB
RESPONSE_BUDGET = 4_500_000


def carried_size(value: Any) -> int:
    """The bytes ``value`` takes in the Lambda response that carries it."""
    return len(json.dumps(json.dumps(value, separators=(",", ":"))))


class Listing(NamedTuple):
    items: list[dict[str, Any]]
    #: query parameters that fetch the next page (e.g. ``{"before": "job-..."}``), None if complete
    next: dict[str, str] | None = None


def bounded(
    items: list[Any], shape: Callable[[Any], dict[str, Any]], cursor: Callable[[Any], dict[str, str]],
    resume: dict[str, str] | None, budget: int = RESPONSE_BUDGET,
) -> Listing:
    """Shape ``items`` into a page that fits the budget. If it had to stop early, the next
    page resumes after the last item kept (``cursor(item)``); otherwise at ``resume``."""
    out: list[dict[str, Any]] = []
    used = 2
    for item in items:
        public = shape(item)
        size = carried_size(public) + 1
        if out and used + size > budget:
            return Listing(out, cursor(items[len(out) - 1]))
        out.append(public)
        used += size
    return Listing(out, resume)
