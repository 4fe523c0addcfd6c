"""Count the DynamoDB requests the service makes, with botocore's event hooks (tests, benchmarks)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def count_dynamodb_requests() -> Iterator[list[str]]:
    """The DynamoDB operations (one entry per API call) made inside the block."""
    from jobsvc import storage

    calls: list[str] = []

    def hook(model: Any, **_: Any) -> None:
        calls.append(model.name)

    clients = storage.botocore_clients()
    for client in clients:
        client.meta.events.register("before-call.dynamodb", hook)
    try:
        yield calls
    finally:
        for client in clients:
            client.meta.events.unregister("before-call.dynamodb", hook)
