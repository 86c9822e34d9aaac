"""Secrets at rest (webhook signing secrets now, integration tokens later), encrypted with Fernet.

Keys come from the ``secret_keys`` setting: comma-separated Fernet keys, the first of which encrypts
while every one of them decrypts, so a key is rotated by putting a new one first, re-encrypting
(``SecretBox.rotate``) and later dropping the old one. Unset, the key is ``<data_dir>/secret.key``,
generated on first use with mode 0600: fine for one machine; processes on several machines must share
``THREADLINE_SECRET_KEYS``. Plaintexts never leave this module except to the caller that asked.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

KEY_FILE_NAME = "secret.key"


class SecretDecryptionError(Exception):
    """A ciphertext that none of the configured keys opens (a key was dropped or replaced)."""


class SecretBox:
    """Encrypts with the first key, decrypts with any of them."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a SecretBox needs at least one key")
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken:
            raise SecretDecryptionError(
                "none of the configured secret keys decrypts this secret (was a key removed from secret_keys?)"
            ) from None

    def encrypt_bytes(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def decrypt_bytes(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise SecretDecryptionError("none of the configured secret keys decrypts this value") from None

    def encrypt_json(self, value: Any) -> bytes:
        return self.encrypt(json.dumps(value, separators=(",", ":")))

    def decrypt_json(self, token: bytes) -> Any:
        return json.loads(self.decrypt(token))

    def rotate(self, token: bytes) -> bytes:
        """The same plaintext, encrypted with the current first key."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken:
            raise SecretDecryptionError("none of the configured secret keys decrypts this secret") from None


def parse_keys(raw: str) -> list[bytes]:
    """The Fernet keys in a comma-separated setting; ValueError naming the one that is not a key."""
    keys = [k.strip().encode() for k in raw.split(",") if k.strip()]
    if not keys:
        raise ValueError("secret_keys is set but holds no key")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ValueError(
                f"secret_keys: entry {position} is not a Fernet key (32 url-safe base64-encoded bytes; make one "
                "with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
            ) from None
    return keys


def load_or_create_key_file(path: Path) -> bytes:
    """The key in ``path``, created (mode 0600) if absent. Processes racing to create it end with one key:
    each writes a private temporary file and hard-links it into place, and only the first link wins."""
    with contextlib.suppress(FileNotFoundError):
        return _read_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_bytes().strip()
    try:
        Fernet(key)
    except ValueError:
        raise ValueError(f"{path} does not hold a Fernet key") from None
    return key


@functools.lru_cache(maxsize=8)
def _box(raw_keys: str | None, key_file: str) -> SecretBox:
    if raw_keys:
        return SecretBox(parse_keys(raw_keys))
    return SecretBox([load_or_create_key_file(Path(key_file))])


def secret_box(settings: Any) -> SecretBox:
    """The box for ``settings`` (its ``secret_keys``, else the key file in its ``data_dir``); cached."""
    raw = settings.database.secret_keys.get_secret_value() if settings.database.secret_keys is not None else None
    return _box(raw, str((Path(settings.database.data_dir) / KEY_FILE_NAME).resolve()))
