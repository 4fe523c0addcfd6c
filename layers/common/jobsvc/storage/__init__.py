"""The one package that talks to DynamoDB (one table; template.yaml declares it).

- ``layout``: where every item and index entry lives (keys, shards).
- ``db``: the client, conversions, and how failed requests are read and retried.
- ``jobs``: jobs (one write per operation), lists, idempotency records, messages.
- ``webhooks``: a job's webhook state (deliveries, attempts), the signing secrets.
- ``batches``: provider batch ownership, the poller's index, results, simulated batches.
- ``access``: API keys and the scheduler's lease.
- ``stats``: counters kept from the table's stream.

Records are plain dicts of the item's attributes.
"""
from __future__ import annotations

from typing import Any

from . import access, batches, db, jobs, layout, webhooks  # noqa: F401


def botocore_clients() -> list[Any]:
    """Every botocore client the service uses for DynamoDB (tests count requests on them)."""
    return [db.client()]
