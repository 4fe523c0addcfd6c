"""API keys: generation, hashing and lookup. Only a SHA-256 hash of a key is stored."""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from . import storage
from .timeutil import now_iso

KEY_PREFIX = "jsk_"
_BEARER = re.compile(r"^Bearer ([A-Za-z0-9_\-.~+/=]{16,256})$")


@dataclass(frozen=True)
class Actor:
    organization_id: str
    user_id: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def parse_bearer(header: str | None) -> str | None:
    if not header:
        return None
    match = _BEARER.match(header.strip())
    return match.group(1) if match else None


def authenticate(header: str | None) -> Actor | None:
    """The actor owning the key in an ``Authorization`` header, or None (one GetItem)."""
    key = parse_bearer(header)
    if key is None:
        return None
    item = storage.get_api_key(hash_key(key))
    if item is None:
        return None
    return Actor(item.organization_id, item.user_id)


def create_key(organization_id: str, user_id: str, name: str | None = None, key: str | None = None) -> str:
    """Store a new key (or the given one) for an actor; returns the key, shown once."""
    key = key or generate_key()
    if parse_bearer(f"Bearer {key}") is None:
        raise ValueError("an API key is 16 to 256 characters of [A-Za-z0-9_-.~+/=]")
    storage.put_api_key(
        storage.ApiKeyItem(
            storage.api_key_pk(hash_key(key)), "APIKEY",
            organization_id=organization_id, user_id=user_id, created_at=now_iso(), name=name,
        )
    )
    return key


def revoke_key(key_or_hash: str) -> bool:
    key_hash = key_or_hash if re.fullmatch(r"[0-9a-f]{64}", key_or_hash) else hash_key(key_or_hash)
    return storage.delete_api_key(key_hash)
