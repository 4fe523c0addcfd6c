"""What DynamoDB would bill, computed from what was actually stored (the table's stream).

By DynamoDB's published rules (the developer guide's "Capacity unit consumption" pages):

- an item's size is the sum of its attribute names' and values' lengths (strings in UTF-8,
  numbers about one byte per two significant digits plus one, maps and lists 3 bytes plus
  one byte per element, booleans and nulls one byte);
- a write costs one write unit per 1 KB of the larger of the item's size before and after
  (at least one); a transactional write costs two per 1 KB;
- a global secondary index is written only when the item enters it, leaves it, or changes
  one of its keys or projected attributes (a key change is a delete plus a put); an index
  entry's size is its projected attributes plus 100 bytes;
- a read costs one read unit per 4 KB (of each item for GetItem and BatchGetItem, of all the
  items read for a Query), half that when eventually consistent.

The stream's images (``NEW_AND_OLD_IMAGES``) give the before and after of every write, so
these figures do not depend on what the service believes it wrote.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable


def value_size(av: dict[str, Any]) -> int:
    (kind, value), = av.items()
    if kind == "S":
        return len(value.encode())
    if kind == "N":
        digits = value.lstrip("-").replace(".", "").lstrip("0") or "0"
        digits = digits.split("e")[0].split("E")[0].rstrip("0") or "0"
        return 1 + math.ceil(len(digits) / 2)
    if kind == "B":
        return len(value) if isinstance(value, (bytes, bytearray)) else math.ceil(len(value) * 3 / 4)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in value.items())
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in value)
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: v}) for v in value)
    raise ValueError(kind)


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(av) for name, av in item.items())


def write_units(size: int, transactional: bool = False) -> int:
    return max(1, math.ceil(size / 1024)) * (2 if transactional else 1)


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / 4096))
    return units if consistent else units / 2


@dataclass(frozen=True)
class Index:
    name: str
    keys: tuple[str, ...]  # partition key attribute, sort key attribute
    projected: tuple[str, ...] | None  # None: ALL; () for KEYS_ONLY
    table_keys: tuple[str, str] = ("pk", "sk")

    def entry(self, image: dict[str, Any] | None) -> dict[str, Any] | None:
        """The index entry an item image has (None: not in the index)."""
        if not image or any(k not in image for k in self.keys):
            return None
        if self.projected is None:
            return dict(image)
        wanted = set(self.keys) | set(self.table_keys) | set(self.projected)
        return {k: v for k, v in image.items() if k in wanted}

    def partition(self, image: dict[str, Any] | None) -> str | None:
        entry = self.entry(image)
        return None if entry is None else next(iter(entry[self.keys[0]].values()))


def indexes_from_template(table: dict[str, Any]) -> list[Index]:
    """The GSIs of a CreateTable request (``local.template.Template().table_definitions()``)."""
    found = []
    for gsi in table.get("GlobalSecondaryIndexes", []):
        schema = {k["KeyType"]: k["AttributeName"] for k in gsi["KeySchema"]}
        projection = gsi["Projection"]
        kind = projection["ProjectionType"]
        projected = None if kind == "ALL" else tuple(projection.get("NonKeyAttributes", ())) if kind == "INCLUDE" else ()
        found.append(Index(gsi["IndexName"], (schema["HASH"], schema.get("RANGE", schema["HASH"])), projected))
    return found


@dataclass
class Write:
    """One stream record's cost: the table's write units and each index's, with the keys written."""

    table_units: int
    partition: str
    #: index -> [(partition key, write units)] of each entry written (a key change writes two)
    index_writes: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    sk: str = ""

    @property
    def index_units(self) -> dict[str, int]:
        return {name: sum(units for _, units in writes) for name, writes in self.index_writes.items()}

    @property
    def units(self) -> int:
        return self.table_units + sum(self.index_units.values())


def meter(record: dict[str, Any], indexes: Iterable[Index], transactional: bool = False) -> Write:
    """The write units a stream record stands for (the record as boto3's GetRecords gives it)."""
    data = record["dynamodb"]
    old, new = data.get("OldImage"), data.get("NewImage")
    keys = data["Keys"]
    size = max(item_size(old), item_size(new))
    cost = Write(write_units(size, transactional), next(iter(keys["pk"].values())), sk=next(iter(keys["sk"].values())))
    for index in indexes:
        before, after = index.entry(old), index.entry(new)
        written: list[tuple[str, int]] = []
        if before is not None and (after is None or any(before.get(k) != after.get(k) for k in index.keys)):
            # it leaves the index, or its key changes: a delete
            written.append((index.partition(old), write_units(item_size(before) + 100)))  # type: ignore[arg-type]
            before = None
        if after is not None and (before is None or before != after):
            # it enters the index, or a projected attribute changes: a put
            written.append((index.partition(new), write_units(item_size(after) + 100)))  # type: ignore[arg-type]
        if written:
            cost.index_writes[index.name] = written
    return cost
