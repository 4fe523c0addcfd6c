"""API keys: generation, hashing and lookup. Only a SHA-256 hash of a key is stored."""
from __future__ import annotations

import hashlib
import re
import secrets
from typing import NamedTuple

from .storage import access
from .timeutil import now_iso

KEY_PREFIX = "jsk_"
#: RFC 6750: the scheme name is case-insensitive
_BEARER = re.compile(r"^bearer ([A-Za-z0-9_\-.~+/=]{16,256})$", re.IGNORECASE)
#: organization and user ids: printable, and never the key separator ``#`` (an organization
#: ``a`` must not reach ``a#...``'s keys) nor ``|``; at most 128 characters
_ACTOR_ID = re.compile(r"^[^#|\s][^#|]{0,126}[^#|\s]$|^[^#|\s]$")


class Actor(NamedTuple):
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
    item = access.get_api_key(hash_key(key))
    if item is None:
        return None
    return Actor(item["organization_id"], item["user_id"])


def check_actor_id(value: str, what: str) -> None:
    if not isinstance(value, str) or not _ACTOR_ID.match(value) or not value.isprintable():
        raise ValueError(f"{what} must be 1 to 128 printable characters without '#' or '|' (got {value!r})")


def create_key(organization_id: str, user_id: str, name: str | None = None, key: str | None = None) -> str:
    """Store a new key (or the given one) for an actor; returns the key, shown once."""
    key = key or generate_key()
    if parse_bearer(f"Bearer {key}") is None:
        raise ValueError("an API key is 16 to 256 characters of [A-Za-z0-9_-.~+/=]")
    check_actor_id(organization_id, "an organization id")
    check_actor_id(user_id, "a user id")
    access.put_api_key(hash_key(key), {
        "organization_id": organization_id, "user_id": user_id, "created_at": now_iso(), "name": name,
    })
    return key


def revoke_key(key_or_hash: str) -> bool:
    key_hash = key_or_hash if re.fullmatch(r"[0-9a-f]{64}", key_or_hash) else hash_key(key_or_hash)
    return access.delete_api_key(key_hash)
