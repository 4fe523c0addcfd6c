"""DynamoDB answers serialized at JSON speed.

moto turns every answer into its wire form with a generic serializer that walks the
service's shape model member by member: for an ``AttributeValue`` (a structure of ten
possible members) it asks each member of each value, through alias providers, whether it is
there. An item of a couple of KB with a history and a metadata map costs tens of
milliseconds that way, most of the emulator's time per request (it serves one request at a
time), and the time of every test and benchmark against it.

moto's DynamoDB models already hold an item's attribute values in their wire form (``{"S":
...}``, ``{"M": {...}}``, ...). Here an ``AttributeValue`` that is exactly that, plain JSON
with one known member (no binary: moto encodes those itself), is copied as it is; anything
else goes through moto's serializer as before. ``tests/integration/test_emulator.py``
compares the two on every kind of value.
"""
from __future__ import annotations

from typing import Any

_applied = False
#: off: every value through moto's serializer (the comparison test turns it off and on)
enabled = True

_SCALAR = {"S", "N"}
_SETS = {"SS", "NS"}
_FLAGS = {"BOOL", "NULL"}


def plain(value: Any, depth: int = 0) -> bool:
    """A wire-form AttributeValue made of plain JSON only (no binary, no model objects)."""
    if depth > 40 or type(value) is not dict or len(value) != 1:
        return False
    (kind, inner), = value.items()
    if kind in _SCALAR:
        return type(inner) is str
    if kind in _FLAGS:
        return type(inner) is bool
    if kind in _SETS:
        return type(inner) is list and all(type(v) is str for v in inner)
    if kind == "M":
        return type(inner) is dict and all(type(k) is str and plain(v, depth + 1) for k, v in inner.items())
    if kind == "L":
        return type(inner) is list and all(plain(v, depth + 1) for v in inner)
    return False


def apply() -> None:
    global _applied
    if _applied:
        return
    from moto.core.serialize import BaseJSONSerializer

    structure = BaseJSONSerializer._serialize_type_structure

    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if enabled and shape.name == "AttributeValue" and plain(value):
            if key:
                self._default_serialize(serialized, value, shape, key)
            else:
                serialized.update(value)
            return
        structure(self, serialized, value, shape, key)

    BaseJSONSerializer._serialize_type_structure = serialize_structure
    _applied = True
