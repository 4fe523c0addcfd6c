"""Eventually consistent reads (``LOCAL_INDEX_LAG_MS``).

In DynamoDB a read of a global secondary index is always eventually consistent, and so are
``GetItem``, ``Query`` and ``Scan`` of the table unless they ask for ``ConsistentRead``
(Developer Guide, "Read consistency" and "Global secondary indexes": "changes to the table data
are propagated to the global secondary indexes within a fraction of a second").

moto answers every read from the present. With a lag set, such a read here sees the table as it
was ``lag`` ago: items created since are absent, items changed since have their previous
version, items deleted since are still there. A strongly consistent read (``ConsistentRead``:
true; ``TransactGetItems``) and every write and condition see the present.

How: every write (PutItem, UpdateItem, DeleteItem, also inside transactions and batches) records
the item's previous version with the time; a lagged read swaps the table's items for a view in
which every item written within the lag has the version it had before its first such write. The
emulator runs one request at a time, so the swap is seen by that read only.
"""
from __future__ import annotations

import copy
import threading
import time
import weakref
from collections import deque
from contextlib import contextmanager
from typing import Any, Iterator

from . import query_index

#: marks "the item did not exist"
ABSENT = None


class WriteHistory:
    """Per table, (time, hash key, range key, previous version) of the recent writes."""

    def __init__(self) -> None:
        self._tables: "weakref.WeakKeyDictionary[Any, deque]" = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def record(self, table: Any, hash_key: Any, range_key: Any, previous: Any, keep_seconds: float) -> None:
        now = time.monotonic()
        with self._lock:
            log = self._tables.setdefault(table, deque())
            log.append((now, hash_key, range_key, previous))
            while log and log[0][0] < now - keep_seconds - 1.0:
                log.popleft()

    def view(self, table: Any, lag_seconds: float) -> tuple[dict, set] | None:
        """The table's items as they were ``lag_seconds`` ago, and the keys written since (None if
        nothing changed since)."""
        since = time.monotonic() - lag_seconds
        with self._lock:
            recent = [entry for entry in self._tables.get(table, ()) if entry[0] > since]
        if not recent:
            return None
        first: dict[tuple, Any] = {}
        for _, hash_key, range_key, previous in recent:
            first.setdefault((hash_key, range_key), previous)  # the earliest write after `since` wins
        items = copy.copy(table.items)  # shallow: partitions are copied below only where they change
        copied: set = set()
        for (hash_key, range_key), previous in first.items():
            if table.range_key_attr is None:
                if previous is ABSENT:
                    items.pop(hash_key, None)
                else:
                    items[hash_key] = previous
                continue
            if hash_key not in copied:
                items[hash_key] = dict(items.get(hash_key, {}))
                copied.add(hash_key)
            if previous is ABSENT:
                items[hash_key].pop(range_key, None)
            else:
                items[hash_key][range_key] = previous
            if not items[hash_key]:
                del items[hash_key]
        return items, set(first)


def _lag() -> tuple[Any, float] | None:
    from . import emulation

    request = emulation.current()
    if request is None or request.emulation.index_lag_seconds <= 0:
        return None
    return request.emulation.history, request.emulation.index_lag_seconds


@contextmanager
def _as_of_lag(backend: Any, table_names: list[str]) -> Iterator[None]:
    lag = _lag()
    swapped = []
    try:
        if lag is not None:
            history, seconds = lag
            for name in table_names:
                table = backend.get_table(name)
                view = history.view(table, seconds)
                if view is not None:
                    items, written = view
                    swapped.append((table, table.items))
                    # the live items and what differs, for the index partitions (query_index.py)
                    table.__dict__[query_index.VIEW] = (table.items, written)
                    table.items = items
        yield
    finally:
        for table, items in swapped:
            table.items = items
            table.__dict__.pop(query_index.VIEW, None)


def apply() -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.responses import DynamoHandler

    # ---- writes: remember the previous version --------------------------------------------

    def keys_of(table: Any, attrs_or_key: dict) -> tuple[Any, Any]:
        hash_key = DynamoType(attrs_or_key[table.hash_key_attr])
        range_key = DynamoType(attrs_or_key[table.range_key_attr]) if table.range_key_attr else None
        return hash_key, range_key

    def recorded(method: Any, key_arg: str, copy_previous: bool) -> Any:
        def wrapper(self: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
            lag = _lag()
            if lag is None:
                return method(self, table_name, *args, **kwargs)
            table = self.get_table(table_name)
            key = kwargs.get(key_arg) if key_arg in kwargs else args[0]
            hash_key, range_key = keys_of(table, key)
            previous = table.get_item(hash_key, range_key)
            if copy_previous and previous is not None:
                previous = copy.deepcopy(previous)  # UpdateItem changes the item in place
            result = method(self, table_name, *args, **kwargs)
            history, seconds = lag
            history.record(table, hash_key, range_key, previous, seconds)
            return result

        return wrapper

    DynamoDBBackend.put_item = recorded(DynamoDBBackend.put_item, "item_attrs", copy_previous=False)
    DynamoDBBackend.delete_item = recorded(DynamoDBBackend.delete_item, "key", copy_previous=False)
    DynamoDBBackend.update_item = recorded(DynamoDBBackend.update_item, "key", copy_previous=True)

    # ---- reads: eventually consistent ones see the past -----------------------------------

    def eventually(method: Any, tables: Any) -> Any:
        def wrapper(self: Any) -> Any:
            with _as_of_lag(self.dynamodb_backend, tables(self.body)):
                return method(self)

        return wrapper

    def single(body: dict) -> list[str]:
        lagged = body.get("IndexName") or not body.get("ConsistentRead")
        return [body["TableName"]] if lagged else []

    def batch(body: dict) -> list[str]:
        return [name for name, request in body.get("RequestItems", {}).items() if not request.get("ConsistentRead")]

    DynamoHandler.get_item = eventually(DynamoHandler.get_item, single)
    DynamoHandler.query = eventually(DynamoHandler.query, single)
    DynamoHandler.scan = eventually(DynamoHandler.scan, single)
    DynamoHandler.batch_get_item = eventually(DynamoHandler.batch_get_item, batch)
