"""Request bodies: strict JSON objects (RFC 8259), whatever Python's json module would let through."""
from __future__ import annotations

import json
import math
from typing import Any

from .errors import BadRequest, BodyTooLarge, InvalidInput


#: deeper bodies are 400. Python 3.13 (Lambda's runtime) parses JSON nested thousands deep, but
#: pydantic cannot serialise past ~255 levels (a 500), and Python 3.11 stopped near 1000: one bound
#: for every runtime, well inside both.
MAX_DEPTH = 128


class _OutOfRange(ValueError):
    pass


def _depth(value: Any) -> int:
    """How deeply ``value`` nests arrays and objects (iteratively: no recursion limit to hit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _reject_constant(name: str) -> Any:
    raise BadRequest(f"request body is not valid JSON: {name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _OutOfRange(text)
    return value


def check(raw: bytes, limit: int) -> str:
    """The body as text if it is a JSON object within ``limit`` bytes; raises a 4xx error otherwise."""
    if len(raw) > limit:
        raise BodyTooLarge(f"request body is larger than {limit} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("request body is not UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
    except _OutOfRange as exc:
        raise InvalidInput(f"request body holds a number out of range: {str(exc)[:40]}") from None
    except RecursionError:
        raise BadRequest("request body is nested too deeply") from None
    except ValueError:
        raise BadRequest("request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidInput("request body must be a JSON object")
    if _depth(value) > MAX_DEPTH:
        raise BadRequest(f"request body is nested too deeply (more than {MAX_DEPTH} levels)")
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("request body holds a lone surrogate (\\ud800-\\udfff), which is not Unicode") from None
    except RecursionError:
        raise BadRequest("request body is nested too deeply") from None
    return text
