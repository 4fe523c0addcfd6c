"""Where moto differs from DynamoDB in a way the service can notice, and what the emulator adds.

1. Transactions cost what they touch, not the table's size. moto backs up every table a transaction names with ``copy.deepcopy`` (stream
records included) so that it can roll back. The local stack's table keeps
growing while it runs, so every transaction got slower (about 80 ms after a
few hundred jobs, and climbing). The emulator handles one request at a time
(see emulator.py), so a transaction can instead check every condition first
and write only when all hold, keeping copies of just the items it writes in
case a write fails half way. The answers are the same as moto's.

2. No stream record for a write that changes nothing. moto writes one for every PutItem and
UpdateItem; DynamoDB writes none when the item is left identical ("If you perform a PutItem or
UpdateItem operation that does not change any data in an item, DynamoDB Streams does not write a
stream record for that operation": Developer Guide, "Change data capture for DynamoDB Streams").

3. A value in ``ExpressionAttributeValues`` that no expression uses is refused (moto checks
only the names).

4. Transaction conflicts (conflicts.py) and eventually consistent reads (consistency.py), which
moto does not have at all; both are off unless the emulator's settings turn them on.

5. A query reads one partition of the table or of an index, not the whole table (query_index.py),
an answer's items are serialized as the JSON they already are (fast_serialize.py), and an
expression is parsed once, not twice a request (fast_parse.py).
"""
from __future__ import annotations

import copy
import re
import threading
from typing import Any

_applied = False
#: the expressions of a request that may use ExpressionAttributeValues, and what a value's placeholder is
EXPRESSIONS = ("KeyConditionExpression", "FilterExpression", "ConditionExpression", "UpdateExpression", "ProjectionExpression")
PLACEHOLDER = re.compile(r":[A-Za-z0-9_]+")
#: DynamoDB's item size limit (400 KB; moto's own tests put the real one between 409 and 410 KB)
MAX_ITEM_BYTES = 400 * 1024


def apply() -> None:
    global _applied
    if _applied:
        return
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import StreamShard

    from . import conflicts, consistency, fast_parse, fast_serialize, query_index

    def item_key(table: Any, op_type: str, op: dict) -> dict:
        if op_type != "Put":
            return op["Key"]
        attrs = op["Item"]
        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = attrs[table.range_key_attr]
        return key

    def restore(table: Any, key: dict, snapshot: Any) -> None:
        hash_value = DynamoType(key[table.hash_key_attr])
        if table.range_key_attr is None:
            if snapshot is None:
                table.items.pop(hash_value, None)
            else:
                table.items[hash_value] = snapshot
            return
        range_value = DynamoType(key[table.range_key_attr])
        if snapshot is None:
            table.items.get(hash_value, {}).pop(range_value, None)
        else:
            table.items[hash_value][range_value] = snapshot

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        operations, seen = [], set()
        for item in transact_items:
            if len(item) > 1:
                raise TransactWriteSingleOpException
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table = self.get_table(op["TableName"])
            key = item_key(table, op_type, op)
            identity = (op["TableName"], str(dict(sorted(key.items()))))
            if identity in seen:
                raise MultipleTransactionsException()
            seen.add(identity)
            operations.append((op_type, op, table, key))
        conflicts.check_transaction(self, transact_items)  # another transaction holds one of its items

        planned, errors = [], []
        for op_type, op, table, key in operations:
            current = self.get_item(op["TableName"], key)
            error: tuple = (None, None, None)
            if op.get("ConditionExpression") is not None:
                condition = get_filter_expression(
                    op["ConditionExpression"], op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
                )
                if not condition.expr(current):
                    old = None
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        old = current.to_json()["Attributes"]
                    error = ("ConditionalCheckFailed", "The conditional request failed", old)
            errors.append(error)
            planned.append((op_type, op, table, key, current))
        conflicts.hold_transaction(self, transact_items)  # it ran: its items are in use for a while
        if any(code is not None for code, _, _ in errors):
            raise TransactionCanceledException(errors)

        shards = {id(t): (t.stream_shard, len(t.stream_shard.items)) for _, _, t, _, _ in planned if t.stream_shard}
        snapshots = [(table, key, copy.deepcopy(current)) for op_type, _, table, key, current in planned if op_type != "ConditionCheck"]
        try:
            for op_type, op, table, key, _ in planned:
                names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
                if op_type == "Put":
                    self.put_item(op["TableName"], op["Item"])
                elif op_type == "Delete":
                    self.delete_item(op["TableName"], key)
                elif op_type == "Update":
                    self.update_item(
                        op["TableName"], key, update_expression=op["UpdateExpression"],
                        expression_attribute_names=names, expression_attribute_values=values,
                    )
        except Exception:
            for table, key, snapshot in snapshots:
                restore(table, key, snapshot)
            for shard, length in shards.values():
                del shard.items[length:]
            raise

    DynamoDBBackend.transact_write_items = transact_write_items

    add_record = StreamShard.add

    def add_if_changed(self: Any, old: Any, new: Any) -> None:
        if old is not None and new is not None and old.to_json() == new.to_json():
            return
        add_record(self, old, new)

    StreamShard.add = add_if_changed

    # 3. An UpdateItem is one write, refused whole or applied whole. moto creates a new item
    #    in two steps (its keys, then the update), each with a stream record, and checks the
    #    400 KB limit only for some updates, leaving a half-applied item when it refuses (and
    #    some of its checks run after a first action is applied): here an update refused by
    #    anything but its condition (which moto checks before changing anything) is refused
    #    whole (the item as it was, none of its stream records), and an item the update
    #    creates has the one INSERT record DynamoDB writes. Since a refusal leaves nothing,
    #    moto's first check of an update that creates its item (the whole validation, against
    #    an empty item, before it makes the keys) is skipped: the second, against the keys it
    #    made, refuses the same updates (about 5 ms of the emulator's one-request-at-a-time CPU
    #    for each first webhook attempt).
    from moto.dynamodb.exceptions import ConditionalCheckFailed, ItemSizeToUpdateTooLarge

    update_item = DynamoDBBackend.update_item

    def whole_update_item(self: Any, table_name: str, key: dict, *args: Any, **kwargs: Any) -> Any:
        table = self.get_table(table_name)
        hash_value, range_value = self.get_keys_value(table, key)
        before = copy.deepcopy(table.get_item(hash_value, range_value))
        shard = table.stream_shard
        records = len(shard.items) if shard is not None else 0
        _creating.skip = before is None
        try:
            item = fast_parse.simple_update_item(update_item, self, table_name, key, *args, **kwargs)
            if item is None or item.size() <= MAX_ITEM_BYTES:
                if before is None and shard is not None and len(shard.items) > records + 1:
                    # the keys-only INSERT of moto's first step goes; moto numbers a record by its
                    # place in the shard (and reads by place): the records after it take the
                    # numbers of their new places, so that the next write's record gets a number
                    # of its own, and a reader already past this one sees it
                    drop_records_of(shard, records, table_key(table, key), first_only=True)
                return item
            refusal: Exception = ItemSizeToUpdateTooLarge()
        except ConditionalCheckFailed:
            raise  # checked before anything changed
        except Exception as exc:  # noqa: BLE001 - raised again below, once the item is as it was
            refusal = exc
        finally:
            _creating.skip = False
        restore(table, key, before)  # as a cancelled transaction's items (an item made: its keys go)
        if shard is not None:
            drop_records_of(shard, records, table_key(table, key))
        raise refusal

    def table_key(table: Any, key: dict) -> dict:
        """The item's key as its stream records give it (a request's Key may name more)."""
        return {name: key[name] for name in table.table_key_attrs if name in key}

    def drop_records_of(shard: Any, since: int, key: dict, first_only: bool = False) -> None:
        """Take this request's records (those of its key, from place ``since`` on; the first
        of them only, with ``first_only``) out of the shard, and number those after them by
        their new places. The embedded emulator serves one request at a time, so they are the
        last ones; the tests' in-process moto may have other threads' records after ``since``,
        which stay."""
        kept, dropped = [], False
        for record in shard.items[since:]:
            if record.record["dynamodb"].get("Keys") == key and not (first_only and dropped):
                dropped = True
                continue
            kept.append(record)
        if not dropped:
            return
        shard.items[since:] = kept
        for place in range(since, len(shard.items)):
            shard.items[place].record["dynamodb"]["SequenceNumber"] = str(shard.starting_sequence_number + place)

    DynamoDBBackend.update_item = whole_update_item

    # 4. A value no expression uses is refused, as DynamoDB refuses it ("Value provided in
    #    ExpressionAttributeValues unused in expressions"); moto checks only the names. (A
    #    paged query that made new placeholders for every page passed here, and failed in AWS
    #    on its second page.)
    from moto.dynamodb.exceptions import MockValidationException
    from moto.dynamodb.responses import DynamoHandler

    def values_used(op: dict) -> None:
        values = op.get("ExpressionAttributeValues")
        if not values:
            return
        text = " ".join(op.get(name) or "" for name in EXPRESSIONS)
        used = set(PLACEHOLDER.findall(text))
        unused = sorted(name for name in values if name not in used)
        if unused:
            raise MockValidationException(
                f"Value provided in ExpressionAttributeValues unused in expressions: keys: {{{', '.join(unused)}}}")

    def checked(method: Any, ops: Any) -> Any:
        def wrapper(self: Any) -> Any:
            for op in ops(self.body):
                values_used(op)
            return method(self)
        return wrapper

    for action in ("query", "scan", "get_item", "put_item", "update_item", "delete_item"):
        setattr(DynamoHandler, action, checked(getattr(DynamoHandler, action), lambda body: [body]))
    DynamoHandler.transact_write_items = checked(
        DynamoHandler.transact_write_items,
        lambda body: [op for part in body.get("TransactItems", []) for op in part.values() if isinstance(op, dict)])
    conflicts.apply()
    consistency.apply()
    query_index.apply()  # last: it marks the items every other UpdateItem wrapper may change
    fast_serialize.apply()
    fast_parse.apply()
    _skip_first_check_of_a_creating_update()  # outermost: fast_parse must not remember a skipped check
    _applied = True


#: .skip: the UpdateItem being served creates its item (see whole_update_item)
_creating = threading.local()
#: off: moto checks an update that creates its item twice, as it does by itself (a test compares)
skip_first_check = True


def _skip_first_check_of_a_creating_update() -> None:
    from moto.dynamodb.parsing.validators import UpdateExpressionValidator

    init, validate = UpdateExpressionValidator.__init__, UpdateExpressionValidator.validate

    def init_unless_skipped(self: Any, expression: Any, expression_attribute_names: Any,
                            expression_attribute_values: Any, item: Any, table: Any) -> None:
        # moto's check against the empty item it is about to create: its answer is thrown
        # away, and the check that follows (against the item's keys) refuses the same
        self._skipped = skip_first_check and bool(getattr(_creating, "skip", False)) and not item.attrs
        _creating.skip = False
        if not self._skipped:
            init(self, expression, expression_attribute_names, expression_attribute_values, item, table)

    def validate_once(self: Any) -> Any:
        return None if self._skipped else validate(self)

    UpdateExpressionValidator.__init__ = init_unless_skipped
    UpdateExpressionValidator.validate = validate_once
