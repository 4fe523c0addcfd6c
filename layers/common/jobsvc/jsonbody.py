"""Request bodies: strict JSON objects (RFC 8259), whatever Python's json module would let through."""
from __future__ import annotations

import json
import math
from typing import Any

from .errors import BadRequest, BodyTooLarge, InvalidInput


class _OutOfRange(ValueError):
    pass


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
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("request body holds a lone surrogate (\\ud800-\\udfff), which is not Unicode") from None
    except RecursionError:
        raise BadRequest("request body is nested too deeply") from None
    return text
