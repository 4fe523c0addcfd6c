"""The DynamoDB client, the item <-> AttributeValue conversion, and how a failed request is read.

Every request of the service goes through ``call`` (one place to count, retry and
map errors), sent by ``wire`` (DynamoDB's JSON protocol without the SDK's per-request
work). Throttling and DynamoDB's 5xx are retried there, as botocore's standard mode
retries them; ``TransactionConflict`` (a plain write meeting a transaction that holds
the item, or two transactions on one item), which neither retries, is
retried here with backoff and jitter. When the retries run out the caller gets
``errors.Unavailable`` (the API answers 503 with a ``detail``), never a 500.
"""
from __future__ import annotations

import functools
import math
import random
import threading
import time
from typing import Any

from .. import errors
from ..config import settings
from . import wire

#: our attempts for a transaction conflict
CONFLICT_ATTEMPTS = 6
CONFLICT_BASE_SECONDS = 0.02
BUSY = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "InternalServerError", "ServiceUnavailable", "LimitExceededException",
})

_lock = threading.Lock()
_client: Any = None


def client() -> wire.Client:
    """The one DynamoDB client (made on first use: it reads the credentials)."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                cfg = settings()
                _client = wire.Client(cfg.region, cfg.endpoint_url, connect_timeout=3, read_timeout=10, pool_size=32)
    return _client


def reset_client() -> None:
    """Forget the client (a restored SnapStart environment, or tests that swap endpoints)."""
    global _client
    with _lock:
        old, _client = _client, None
    if old is not None:
        old.close()


def table() -> str:
    return settings().table_name


# ---- JSON <-> AttributeValue ---------------------------------------------------------


def to_av(value: Any) -> dict[str, Any]:
    """A JSON-like Python value as a DynamoDB AttributeValue."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        return {"N": repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (list, tuple)):
        return {"L": [to_av(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {k: to_av(v) for k, v in value.items()}}
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def from_av(av: dict[str, Any]) -> Any:
    (kind, value), = av.items()
    if kind == "S":
        return value
    if kind == "N":
        return _number(value)
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: from_av(v) for k, v in value.items()}
    if kind == "L":
        return [from_av(v) for v in value]
    if kind == "SS":
        return set(value)
    raise TypeError(f"unsupported attribute type {kind}")


def _number(text: str) -> int | float:
    if "." not in text and "e" not in text.lower():
        return int(text)
    number = float(text)
    return int(number) if number.is_integer() and abs(number) < 2**53 and "e" not in text.lower() else number


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    """A record (plain dict) as a DynamoDB item; None members are left out."""
    return {k: to_av(v) for k, v in values.items() if v is not None}


def from_item(item: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if item is None else {k: from_av(v) for k, v in item.items()}


def check_json(value: Any, what: str, depth: int = 0) -> None:
    """Refuse JSON that DynamoDB cannot store faithfully (raises InvalidInput). ``value`` is
    level 1; objects and lists may nest to level 16 (DynamoDB allows 32 in all: the
    service keeps room for its own)."""
    if isinstance(value, (dict, list)) and depth >= 16:
        raise errors.InvalidInput(f"{what} is nested too deeply (at most 16 levels)")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if abs(value) >= 10**38:
            raise errors.InvalidInput(f"{what} holds an integer with more than 38 digits")
        return
    if isinstance(value, float):
        if not math.isfinite(value) or (value != 0 and not 1e-130 < abs(value) < 1e125):
            raise errors.InvalidInput(f"{what} holds a number out of range")
        return
    if isinstance(value, list):
        for v in value:
            check_json(v, what, depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not k:
                raise errors.InvalidInput(f"{what} has an empty key")
            check_json(v, what, depth + 1)
        return
    raise errors.InvalidInput(f"{what} is not JSON")


# ---- expressions -------------------------------------------------------------------


class Expr:
    """Placeholders for one request's expressions: ``n("status")`` -> ``#n0``, ``v(3)`` -> ``:v0``."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self._by_name: dict[str, str] = {}

    def n(self, name: str) -> str:
        if name not in self._by_name:
            placeholder = f"#n{len(self._by_name)}"
            self._by_name[name] = placeholder
            self.names[placeholder] = name
        return self._by_name[name]

    def path(self, *parts: str) -> str:
        return ".".join(self.n(p) for p in parts)

    def v(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _AV_KINDS else to_av(value)
        return placeholder

    def raw(self, av: dict[str, Any]) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = av
        return placeholder

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.names:
            out["ExpressionAttributeNames"] = self.names
        if self.values:
            out["ExpressionAttributeValues"] = self.values
        return out


_AV_KINDS = frozenset({"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"})


def update_expression(sets: list[str], removes: list[str] | None = None, adds: list[str] | None = None) -> str:
    parts = []
    if sets:
        parts.append("SET " + ", ".join(sets))
    if removes:
        parts.append("REMOVE " + ", ".join(removes))
    if adds:
        parts.append("ADD " + ", ".join(adds))
    return " ".join(parts)


# ---- calls and their failures ------------------------------------------------------


class Refused(Exception):
    """A conditional write whose condition failed; ``item`` is the item as it was (if asked for)."""

    def __init__(self, item: dict[str, Any] | None = None) -> None:
        super().__init__(item)
        self.item = item


class Cancelled(Exception):
    """A transaction cancelled by a failed condition; ``reasons[i]`` is ``(code, item)`` of part i."""

    def __init__(self, reasons: list[tuple[str | None, dict[str, Any] | None]]) -> None:
        super().__init__(reasons)
        self.reasons = reasons

    def refused(self, index: int) -> bool:
        return len(self.reasons) > index and self.reasons[index][0] == "ConditionalCheckFailed"

    def item(self, index: int) -> dict[str, Any] | None:
        return from_item(self.reasons[index][1]) if len(self.reasons) > index else None


def _code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def _conflicted(exc: Exception) -> bool:
    code = _code(exc)
    if code == "TransactionConflictException":
        return True
    if code == "TransactionCanceledException":
        reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]  # type: ignore[attr-defined]
        return "TransactionConflict" in reasons and "ConditionalCheckFailed" not in reasons
    return False


def call(operation: str, **kwargs: Any) -> dict[str, Any]:
    """One DynamoDB request (botocore operation name, e.g. ``"UpdateItem"``).

    Raises ``Refused`` for a failed condition, ``Cancelled`` for a transaction whose
    condition failed, ``errors.BodyTooLarge``/``errors.InvalidInput`` for an item
    DynamoDB will not store, ``errors.Unavailable`` when throttling, DynamoDB's own
    errors or transaction conflicts outlast the retries.
    """
    send = client().request
    if _traced():
        send = _traced_send(send)
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            return send(operation, kwargs)
        except wire.ServiceError as exc:
            code = _code(exc)
            if code == "ConditionalCheckFailedException":
                raise Refused(from_item(exc.response.get("Item"))) from None
            if _conflicted(exc):
                if attempt + 1 < CONFLICT_ATTEMPTS:
                    time.sleep(CONFLICT_BASE_SECONDS * 2**attempt * (0.5 + random.random()))
                    continue
                raise errors.Unavailable("another request was writing the same item; retry") from None
            if code == "TransactionCanceledException":
                reasons = [(r.get("Code") if r.get("Code") != "None" else None, r.get("Item"))
                           for r in exc.response.get("CancellationReasons", [])]
                if any(c == "ConditionalCheckFailed" for c, _ in reasons):
                    raise Cancelled(reasons) from None
                _input_error(" ".join(r.get("Message") or "" for r in exc.response.get("CancellationReasons", [])))
                raise
            if code == "ValidationException":
                _input_error(exc.response.get("Error", {}).get("Message", ""))
            if code in BUSY:
                raise errors.Unavailable(f"the database is busy ({code}); retry") from None
            raise
        except wire.ConnectionFailed:
            raise errors.Unavailable("the database could not be reached; retry") from None
    raise AssertionError("unreachable")


@functools.cache
def _traced() -> bool:
    """Is X-Ray tracing on (tracing.enabled(): in Lambda, unless switched off)? Read once."""
    from .. import tracing

    return tracing.enabled()


def _traced_send(send: Any) -> Any:
    """``send`` with each request in an X-Ray subsegment (Tracer's patching of botocore, which
    traced the requests when botocore sent them, does not see this client)."""
    from .. import tracing

    def traced(operation: str, params: dict[str, Any]) -> dict[str, Any]:
        table_name = params.get("TableName") or next(iter(params.get("RequestItems") or {}), "")
        with tracing.aws_call("DynamoDB", operation, {"table_name": table_name} if table_name else {}):
            return send(operation, params)

    return traced


def _input_error(message: str) -> None:
    """Raise the 4xx a ValidationException about the item means; return for anything else
    (a malformed request is our bug, and stays a 500 that shows in the logs)."""
    lowered = message.lower()
    if "item size" in lowered:
        raise errors.BodyTooLarge("the item would exceed DynamoDB's maximum item size (400 KB)")
    if "key" in lowered and ("size" in lowered or "bytes" in lowered):
        raise errors.InvalidInput(f"a value is too long to be indexed: {message[:200]}")


def query_all(max_items: int | None = None, **params: Any) -> list[dict[str, Any]]:
    """Every record a Query finds, page after page, or its first ``max_items`` (each page then
    asks for no more than are still wanted). Every page asks the same: DynamoDB refuses names
    or values an expression leaves unused, so placeholders are made once, by the caller."""
    found: list[dict[str, Any]] = []
    start: dict[str, Any] | None = None
    while max_items is None or len(found) < max_items:
        page = dict(params)
        if max_items is not None:
            page["Limit"] = max_items - len(found)
        if start:
            page["ExclusiveStartKey"] = start
        data = call("Query", **page)
        found += [r for r in map(from_item, data.get("Items", [])) if r]
        start = data.get("LastEvaluatedKey")
        if not start:
            break
    return found


def batch_get(keys: list[dict[str, Any]], consistent: bool = True) -> list[dict[str, Any]]:
    """Read up to 100 items by key in one BatchGetItem (unprocessed keys are asked again,
    a few times, then the read fails as busy). Items that do not exist are absent."""
    found: list[dict[str, Any]] = []
    pending = [{name: to_av(value) for name, value in key.items()} for key in keys]
    for attempt in range(5):
        if not pending:
            return found
        data = call("BatchGetItem", RequestItems={table(): {"Keys": pending, "ConsistentRead": consistent}})
        found += [from_item(item) for item in data.get("Responses", {}).get(table(), [])]  # type: ignore[misc]
        pending = data.get("UnprocessedKeys", {}).get(table(), {}).get("Keys", [])
        if pending:
            time.sleep(0.02 * 2**attempt * (0.5 + random.random()))
    if pending:
        raise errors.Unavailable("the database is busy (unprocessed keys); retry")
    return found


def batch_write(requests: list[dict[str, Any]], time_left: Any = None) -> int:
    """Send up to 25 put/delete requests in one BatchWriteItem, backing off on unprocessed
    items; returns how many were left unprocessed when ``time_left()`` said stop (0: all done)."""
    pending = requests
    attempt = 0
    while pending:
        data = call("BatchWriteItem", RequestItems={table(): pending})
        pending = data.get("UnprocessedItems", {}).get(table(), [])
        if not pending:
            return 0
        attempt += 1
        if attempt >= 8 or (time_left is not None and not time_left()):
            return len(pending)
        time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
    return 0
