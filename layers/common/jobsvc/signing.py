"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``,
keyed with the base64-decoded part of a ``whsec_`` secret; one ``v1,``
signature per valid secret, separated by spaces (both secrets sign for 24
hours after a rotation).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

PREFIX = "whsec_"


def generate_secret() -> str:
    return PREFIX + base64.b64encode(os.urandom(24)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret[len(PREFIX):] if secret.startswith(PREFIX) else secret)


def sign(secrets: list[str], webhook_id: str, timestamp: int, body: str) -> str:
    message = f"{webhook_id}.{timestamp}.{body}".encode()
    return " ".join(
        "v1," + base64.b64encode(hmac.new(_key(secret), message, hashlib.sha256).digest()).decode()
        for secret in secrets
    )
