"""API key material: generation and hashing. Keys have ~240 bits of entropy, so a plain SHA-256 suffices."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "tl_"
DISPLAY_PREFIX_LEN = 10


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(30)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LEN]
