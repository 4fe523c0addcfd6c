"""Verifying webhook deliveries (Standard Webhooks), with the standard library only."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ._errors import WebhookVerificationError

__all__ = ["verify_webhook", "sign_webhook", "WebhookVerificationError"]

Headers = Union[Mapping[str, str], Iterable[Tuple[str, str]]]
PREFIX = "whsec_"


def _key(secret: str) -> bytes:
    if not isinstance(secret, str) or not secret:
        raise WebhookVerificationError("the webhook secret is empty")
    encoded = (secret[len(PREFIX):] if secret.startswith(PREFIX) else secret).strip().rstrip("=")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)  # padding optional
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the webhook secret is not whsec_<base64>") from None
    if not key:
        raise WebhookVerificationError("the webhook secret is empty")
    return key


def _lower_headers(headers: Any) -> Dict[str, str]:
    items = headers.items() if hasattr(headers, "items") else headers
    out: Dict[str, str] = {}
    for name, value in items:
        out.setdefault(str(name).lower(), value)
    return out


def _signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign_webhook(secret: str, msg_id: str, timestamp: int, raw_body: Union[bytes, str]) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) for a delivery: for tests and tools."""
    body = raw_body.encode() if isinstance(raw_body, str) else raw_body
    return "v1," + base64.b64encode(_signature(_key(secret), msg_id, str(timestamp), body)).decode()


def verify_webhook(
    secret: Union[str, Sequence[str]],
    raw_body: Union[bytes, str],
    headers: Headers,
    *,
    tolerance: int = 300,
    now: Optional[float] = None,
) -> Dict[str, Any]:
    """Verify a webhook delivery and return its event (the parsed JSON body).

    ``secret``: your ``whsec_...`` secret (``GET /v1/webhook-secret``), or several (old and new,
    while you switch after a rotation). ``raw_body``: the body exactly as received (bytes, or
    the decoded string). ``headers``: any mapping or list of pairs; names are matched without
    regard to case. Checks, as Standard Webhooks specifies:

    - ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` are present;
    - the timestamp is within ``tolerance`` seconds (default 5 minutes) of ``now`` (default:
      the current time), in either direction: an old delivery replayed is refused;
    - one of the space-separated ``v1,<base64>`` signatures (a rotation sends two) is the
      HMAC-SHA256 of ``"{id}.{timestamp}.{body}"`` keyed with a secret; compared in constant
      time. Other signature versions are ignored.

    Raises :class:`WebhookVerificationError` otherwise. Deduplicate on ``webhook-id``: it is
    the same on every retry and redelivery of one event.
    """
    secrets: List[str] = [secret] if isinstance(secret, str) else list(secret)
    if not secrets:
        raise WebhookVerificationError("no webhook secret given")
    keys = [_key(s) for s in secrets]
    body = raw_body.encode() if isinstance(raw_body, str) else bytes(raw_body)
    lowered = _lower_headers(headers)
    msg_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        sent = int(timestamp.strip())
    except ValueError:
        raise WebhookVerificationError(f"webhook-timestamp is not a number: {timestamp!r}") from None
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance:
        raise WebhookVerificationError(
            f"webhook-timestamp {sent} is {'older' if sent < current else 'newer'} than {tolerance} s from now"
        )
    expected = [_signature(key, msg_id, timestamp.strip(), body) for key in keys]
    matched = False
    for candidate in signatures.split():
        version, _, encoded = candidate.partition(",")
        if version != "v1" or not encoded:
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        for signature in expected:
            # compare every pair (no early exit): the time taken says nothing about a match
            matched |= hmac.compare_digest(given, signature)
    if not matched:
        raise WebhookVerificationError("no signature matches")
    try:
        event = json.loads(body)
    except ValueError:
        raise WebhookVerificationError("the body is not JSON") from None
    if not isinstance(event, dict):
        raise WebhookVerificationError("the body is not a JSON object")
    return event
