"""The one package that talks to DynamoDB (one table; template.yaml declares it).

- ``layout``: where every item and index entry lives (keys, shards).
- ``db``: the client, conversions, and how failed requests are read and retried.
- ``wire``: DynamoDB's JSON protocol (signing, connections, the SDK's retry mode).
- ``jobs``: jobs (one write per operation), lists, idempotency records, messages.
- ``webhooks``: a job's webhook state (deliveries, attempts), the signing secrets.
- ``batches``: provider batch ownership, the poller's index, results, simulated batches.
- ``access``: API keys and the scheduler's lease.
- ``stats``: counters kept from the table's stream.

Each is imported by what uses it (a function loads only the families it stores).

Records are plain dicts of the item's attributes. The few small classes here that describe a
read's question or a write's outcome (``ListQuery``, ``Page``, ``Outcome``, ``Claim``) are
NamedTuples rather than dataclasses: a dataclass compiles its methods when its module is imported
(about 1 ms each on the benchmark machine), which every cold start pays. ``Write``, built up field
by field with list and dict defaults, stays a dataclass.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from . import wire


@contextmanager
def watching(listener: Callable[[str, str, dict], None]) -> Iterator[None]:
    """Inside the block, ``listener(stage, operation, params)`` hears of every DynamoDB request
    this process makes: stage "before" as it is sent, "after" once it is answered or has failed
    (tests and benchmarks count requests with it)."""
    wire.listeners.append(listener)
    try:
        yield
    finally:
        wire.listeners.remove(listener)
