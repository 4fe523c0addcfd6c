"""A query reads what it asks for, not the whole table.

moto answers every ``Query`` by listing and sorting every item of the table
(``Table.all_items``) and keeping those whose keys match, for the table and for an index
alike. DynamoDB reads one partition. The local stack's table only grows while it runs, so
every query got slower with it: after a few thousand jobs the scheduler's 40 index queries a
run took most of a core, and every list page, claim and sweep paid for the whole table.

Here a query of the table starts from its one partition (``Table.items[hash key]``), and a
query of an index from that index's partition, kept up to date as items are written: every
write marks its item's key, and the next index query re-files only the marked items. A
query without ``Limit`` also drops the candidates outside its sort key condition (see
``_in_range``). moto then does everything else as before (the range condition, the order,
the filter, the limits, the pages), on those candidates only, so its answers are unchanged.

Under ``LOCAL_INDEX_LAG_MS`` a read may see a view of the table as it was a moment ago
(consistency.py): the index's partition is then completed with the items written within the
lag, in their earlier versions.
"""
from __future__ import annotations

import inspect
import threading
from typing import Any

_applied = False
#: the emulator's server serves one request at a time, but moto in-process (the tests'
#: mock_aws) is called from several threads at once (a list page queries its shards in
#: parallel): the partitions and the marks are guarded by this, and the candidates of the
#: query a thread is answering are that thread's own
_lock = threading.RLock()
_answering = threading.local()  # .query: (table, candidates) while a query runs, else None

#: the attribute on a moto Table that holds its index partitions (see _State)
STATE = "_local_query_index"
#: set on a Table by consistency.py while a read sees a past view: (live items, keys written since)
VIEW = "_local_view"


class _State:
    """One table's index partitions: index name -> partition key values -> item keys."""

    def __init__(self) -> None:
        self.dirty: set | None = None  # None: file every item (the first query)
        self.indexes: tuple = ()  # the index names it was filed for (UpdateTable may add one)
        self.partitions: dict[str, dict[tuple, set]] = {}
        self.filed: dict[tuple, list[tuple[str, tuple]]] = {}  # item key -> where it is filed


def _state(table: Any) -> _State:
    state = table.__dict__.get(STATE)
    if state is None:
        state = _State()
        table.__dict__[STATE] = state
    return state


def mark(table: Any, hash_value: Any, range_value: Any) -> None:
    """An item was (or may have been) written: file it again before the next index query."""
    with _lock:
        state = table.__dict__.get(STATE)
        if state is not None and state.dirty is not None:
            state.dirty.add((hash_value, range_value if table.range_key_attr else None))


def _live_items(table: Any) -> dict:
    view = table.__dict__.get(VIEW)
    return view[0] if view is not None else table.items


def _lookup(table: Any, items: dict, key: tuple) -> Any:
    hash_value, range_value = key
    if table.range_key_attr is None:
        return items.get(hash_value)
    return items.get(hash_value, {}).get(range_value)


def _hash_attributes(index: Any) -> list[str]:
    return [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]


def _file(table: Any, state: _State, key: tuple, item: Any) -> None:
    for where in state.filed.pop(key, ()):
        name, partition = where
        members = state.partitions.get(name, {}).get(partition)
        if members is not None:
            members.discard(key)
            if not members:
                del state.partitions[name][partition]
    if item is None:
        return
    places = []
    for index in table.all_indexes():
        values = tuple(item.attrs.get(attribute) for attribute in _hash_attributes(index))
        if not values or any(not value for value in values):
            continue  # not in this index (DynamoDB indexes only items with its key attributes)
        state.partitions.setdefault(index.name, {}).setdefault(values, set()).add(key)
        places.append((index.name, values))
    if places:
        state.filed[key] = places


def _refresh(table: Any) -> _State:
    state = _state(table)
    live = _live_items(table)
    indexes = tuple(index.name for index in table.all_indexes())
    if indexes != state.indexes:
        state.dirty, state.indexes = None, indexes
    if state.dirty is None:
        state.partitions, state.filed = {}, {}
        for hash_value, partition in live.items():
            if table.range_key_attr is None:
                _file(table, state, (hash_value, None), partition)
            else:
                for range_value, item in partition.items():
                    _file(table, state, (hash_value, range_value), item)
    else:
        for key in state.dirty:
            _file(table, state, key, _lookup(table, live, key))
    state.dirty = set()
    return state


def _index(table: Any, name: str) -> Any:
    return next((i for i in table.all_indexes() if i.name == name), None)


def _candidates(table: Any, hash_key: Any, index_name: str | None, hash_key_conditions: Any) -> list | None:
    """The items a query can match, or None when they cannot be narrowed (moto then reads all)."""
    if not index_name:
        if hash_key is None:
            return None
        partition = table.items.get(hash_key)
        if partition is None:
            return []
        return list(partition.values()) if table.range_key_attr else [partition]
    index = _index(table, index_name)
    if index is None or not hash_key_conditions:
        return None  # moto answers the error, or an unusual query, as it always did
    conditions = dict(hash_key_conditions)
    attributes = _hash_attributes(index)
    if not attributes or any(attribute not in conditions for attribute in attributes):
        return None
    state = _refresh(table)
    keys = set(state.partitions.get(index.name, {}).get(tuple(conditions[a] for a in attributes), ()))
    view = table.__dict__.get(VIEW)
    if view is not None:
        keys |= view[1]  # written within the lag: the view may hold another version of them
    found = (_lookup(table, table.items, key) for key in keys)
    return [item for item in found if item is not None]


def _in_range(table: Any, candidates: list, given: dict) -> list:
    """The candidates whose sort key meets the query's sort key condition, tested as moto tests
    it (``DynamoType.compare``): moto weighs every candidate (its size, against the 1 MB page)
    before it tests the condition, so a partition's other items cost every query their size.
    Only for a query without ``Limit``: with one, moto answers a ``LastEvaluatedKey`` when an
    item (in the range or not) follows the page's last, as DynamoDB stops after ``Limit``
    items and answers one; narrowed, that item would be gone."""
    comparison, operands = given["range_comparison"], given.get("range_objs") or []
    conditions = given.get("range_key_conditions") or []
    if len(conditions) > 1:
        return candidates  # a sort key of several attributes: left to moto
    index_name = given.get("index_name")
    if index_name:
        index = _index(table, index_name)
        ranges = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"] if index else []
        if len(ranges) != 1:
            return candidates
        attribute = ranges[0]
        return [item for item in candidates
                if item.attrs.get(attribute) and item.attrs[attribute].compare(comparison, operands)]
    return [item for item in candidates if item.range_key is not None and item.range_key.compare(comparison, operands)]


def apply() -> None:
    global _applied
    if _applied:
        return
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    all_items = Table.all_items

    def narrowed_all_items(self: Any) -> list:
        """The items moto's query considers: the candidates of the query this thread is
        answering on this table; everything otherwise (a scan, an unusual query)."""
        table, candidates = getattr(_answering, "query", None) or (None, None)
        if table is not self or candidates is None:
            return all_items(self)
        return sorted(candidates, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)

    query = Table.query
    signature = inspect.signature(query)

    def narrowed_query(self: Any, *args: Any, **kwargs: Any) -> Any:
        given = signature.bind(self, *args, **kwargs).arguments
        with _lock:
            candidates = _candidates(self, given.get("hash_key"), given.get("index_name"), given.get("hash_key_conditions"))
        if candidates is not None and given.get("range_comparison") and given.get("limit") is None:
            candidates = _in_range(self, candidates, given)
        _answering.query = (self, candidates)
        try:
            return query(self, *args, **kwargs)
        finally:
            _answering.query = None

    put_item = Table.put_item

    def marked_put_item(self: Any, item_attrs: dict, *args: Any, **kwargs: Any) -> Any:
        try:
            return put_item(self, item_attrs, *args, **kwargs)
        finally:
            _mark_attrs(self, item_attrs)

    delete_item = Table.delete_item

    def marked_delete_item(self: Any, hash_key: Any, range_key: Any = None) -> Any:
        try:
            return delete_item(self, hash_key, range_key)
        finally:
            mark(self, hash_key, range_key)

    Table.all_items = narrowed_all_items
    Table.query = narrowed_query
    Table.put_item = marked_put_item
    Table.delete_item = marked_delete_item
    _wrap_backend_update(DynamoDBBackend)
    _applied = True


def _mark_attrs(table: Any, attrs: dict) -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    try:
        hash_value = DynamoType(attrs[table.hash_key_attr])
        range_value = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
    except (KeyError, TypeError):
        with _lock:
            _state(table).dirty = None  # an item moto refused, or an unexpected shape: file everything again
        return
    mark(table, hash_value, range_value)


def _wrap_backend_update(backend_class: Any) -> None:
    """UpdateItem changes an item in place (and may restore it on a refusal): mark its key
    whatever happens. Wraps the outermost UpdateItem, so call after the other patches."""
    update_item = backend_class.update_item

    def marked_update_item(self: Any, table_name: str, key: dict, *args: Any, **kwargs: Any) -> Any:
        try:
            return update_item(self, table_name, key, *args, **kwargs)
        finally:
            try:
                table = self.get_table(table_name)
            except Exception:
                table = None
            if table is not None:
                _mark_attrs(table, key)

    backend_class.update_item = marked_update_item
