"""DynamoDB transaction conflicts (``LOCAL_TRANSACTION_CONFLICT_MS``).

In DynamoDB a transaction takes a while, and for that while its items are in use:

- a ``PutItem``, ``UpdateItem`` or ``DeleteItem`` of such an item fails with
  ``TransactionConflictException`` (botocore does not retry it);
- a ``TransactWriteItems`` or ``TransactGetItems`` touching such an item is cancelled
  (``TransactionCanceledException``) with the reason ``TransactionConflict`` for that item.

(Developer Guide, "Transaction conflict handling in DynamoDB":
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-conflict-handling)

moto runs every request at once, under the emulator's lock, so none of this could happen. Here a
transaction that ran (committed, or cancelled by a condition) keeps its items in use for
``Emulation.transaction_seconds`` after it ran, and its own answer is held back until then (the
emulator sleeps outside its lock). So only requests that really overlap the transaction conflict
with it: a client that waits for the transaction's answer before its next write never sees a
conflict, exactly as in AWS. ``GetItem``, ``Query`` and ``Scan`` never conflict (as in AWS).
``BatchWriteItem`` is not checked.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Iterable

CONFLICT_MESSAGE = "Transaction is ongoing for the item"

#: identity of one item: (table name, its key as canonical JSON)
ItemId = tuple[str, str]


def item_id(table_name: str, key: dict[str, Any]) -> ItemId:
    return table_name, json.dumps(key, sort_keys=True)


class InUse:
    """The items transactions hold, each until a monotonic deadline."""

    def __init__(self) -> None:
        self._until: dict[ItemId, float] = {}
        self._lock = threading.Lock()
        self._released = threading.Condition()
        self._generation = 0

    @property
    def generation(self) -> int:
        """How many times ``release_all`` has run (a hold taken now ends at the next)."""
        with self._released:
            return self._generation

    def wait(self, until: float, generation: int) -> None:
        """Until the monotonic ``until`` (a transaction's answer, held back), or until
        ``release_all`` runs after the hold was taken (``generation``: ``self.generation`` then)."""
        with self._released:
            while self._generation == generation and (left := until - time.monotonic()) > 0:
                self._released.wait(left)

    def release_all(self) -> None:
        """End every hold now, and send the held answers (tests: a conflict window no longer
        than the checks made in it)."""
        with self._lock:
            self._until.clear()
        with self._released:
            self._generation += 1
            self._released.notify_all()

    def busy(self, item: ItemId, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            return self._until.get(item, 0.0) > now

    def hold(self, items: Iterable[ItemId], until: float) -> None:
        now = time.monotonic()
        with self._lock:
            for item in items:
                self._until[item] = max(until, self._until.get(item, 0.0))
            if len(self._until) > 1000:  # forget what has been released
                self._until = {k: v for k, v in self._until.items() if v > now}


def _key_of(table: Any, op_type: str, op: dict) -> dict:
    if op_type != "Put":
        return op["Key"]
    attrs = op["Item"]
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return key


def transaction_items(backend: Any, transact_items: list[dict]) -> list[ItemId]:
    """The items a TransactWriteItems or TransactGetItems names, in its order."""
    out = []
    for entry in transact_items:
        op_type, op = next(iter(entry.items()))
        table = backend.get_table(op["TableName"])
        out.append(item_id(op["TableName"], _key_of(table, op_type, op)))
    return out


def apply() -> None:
    """Patch moto's DynamoDB handlers; the backend's transact_write_items (moto_patches.py) calls
    ``check_transaction`` and ``hold_transaction`` itself."""
    from moto.dynamodb.exceptions import DynamodbException
    from moto.dynamodb.responses import DynamoHandler

    from . import emulation

    class TransactionConflictException(DynamodbException):
        def __init__(self) -> None:
            super().__init__("com.amazonaws.dynamodb.v20120810#TransactionConflictException", CONFLICT_MESSAGE)

    def plain_write(method: Any, op_type: str) -> Any:
        def wrapper(self: Any) -> Any:
            request = emulation.current()
            if request is not None and request.emulation.transaction_seconds > 0:
                body = self.body
                table = self.dynamodb_backend.get_table(body["TableName"])
                op = {"Item": body["Item"]} if op_type == "Put" else {"Key": body["Key"]}
                if request.emulation.in_use.busy(item_id(body["TableName"], _key_of(table, op_type, op))):
                    raise TransactionConflictException()
            return method(self)

        return wrapper

    def transact_get(method: Any) -> Any:
        def wrapper(self: Any) -> Any:
            check_transaction(self.dynamodb_backend, self.body["TransactItems"])
            return method(self)

        return wrapper

    DynamoHandler.put_item = plain_write(DynamoHandler.put_item, "Put")
    DynamoHandler.update_item = plain_write(DynamoHandler.update_item, "Update")
    DynamoHandler.delete_item = plain_write(DynamoHandler.delete_item, "Delete")
    DynamoHandler.transact_get_items = transact_get(DynamoHandler.transact_get_items)


def check_transaction(backend: Any, transact_items: list[dict]) -> None:
    """Cancel a transaction that touches an item another transaction holds (TransactionConflict)."""
    from moto.dynamodb.exceptions import TransactionCanceledException

    from . import emulation

    request = emulation.current()
    if request is None or request.emulation.transaction_seconds <= 0:
        return
    now = time.monotonic()
    busy = [request.emulation.in_use.busy(item, now) for item in transaction_items(backend, transact_items)]
    if any(busy):
        raise TransactionCanceledException(
            [("TransactionConflict", CONFLICT_MESSAGE, None) if b else (None, None, None) for b in busy]
        )


def hold_transaction(backend: Any, transact_items: list[dict]) -> None:
    """This transaction ran: its items are in use, and its answer waits, for the configured window."""
    from . import emulation

    request = emulation.current()
    if request is None or request.emulation.transaction_seconds <= 0:
        return
    until = time.monotonic() + request.emulation.transaction_seconds
    if request.hold_generation is None:
        request.hold_generation = request.emulation.in_use.generation
    request.emulation.in_use.hold(transaction_items(backend, transact_items), until)
    request.hold_until = max(request.hold_until, until)
