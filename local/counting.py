"""Count the DynamoDB requests the service makes in this process (tests, benchmarks)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def count_dynamodb_requests() -> Iterator[list[str]]:
    """The DynamoDB operations (one entry per API call) made inside the block."""
    from jobsvc import storage

    calls: list[str] = []

    def listener(stage: str, operation: str, params: dict) -> None:
        if stage == "before":
            calls.append(operation)

    with storage.watching(listener):
        yield calls
