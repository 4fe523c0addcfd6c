"""API keys (by the SHA-256 of the key) and the scheduler's lease."""
from __future__ import annotations

from typing import Any

from . import layout
from .db import Expr, Refused, call, from_item, table, to_item


def get_api_key(key_hash: str) -> dict[str, Any] | None:
    """Read consistently: a key revoked a moment ago is not found."""
    data = call("GetItem", TableName=table(), Key=to_item(layout.api_key_key(key_hash)), ConsistentRead=True)
    return from_item(data.get("Item"))


def put_api_key(key_hash: str, record: dict[str, Any]) -> None:
    call("PutItem", TableName=table(), Item=to_item({**layout.api_key_key(key_hash), **record}))


def delete_api_key(key_hash: str) -> bool:
    try:
        call("DeleteItem", TableName=table(), Key=to_item(layout.api_key_key(key_hash)),
             ConditionExpression="attribute_exists(pk)")
    except Refused:
        return False
    return True


def take_lease(name: str, holder: str, now_epoch: int, until: int) -> dict[str, Any] | None:
    """Take the named lease if it is free, expired, or already this holder's (an asynchronous
    invocation retried after a crash keeps its request id, so a crashed run's retry takes its
    lease over at once); None on success, else the holder's lease."""
    e = Expr()
    try:
        call(
            "PutItem", TableName=table(), Item=to_item({**layout.lease_key(name), "holder": holder, "until": until}),
            ConditionExpression=f"attribute_not_exists(pk) OR {e.n('until')} < {e.v(now_epoch)} OR {e.n('holder')} = {e.v(holder)}",
            ReturnValuesOnConditionCheckFailure="ALL_OLD", **e.kwargs(),
        )
    except Refused as refused:
        return refused.item or {"holder": "?", "until": now_epoch}
    return None


def release_lease(name: str, holder: str) -> None:
    e = Expr()
    try:
        call("DeleteItem", TableName=table(), Key=to_item(layout.lease_key(name)),
             ConditionExpression=f"{e.n('holder')} = {e.v(holder)}", **e.kwargs())
    except Refused:
        pass
