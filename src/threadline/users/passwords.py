"""Operators' passwords: argon2id hashes (argon2-cffi, RFC 9106's low-memory profile), never the password.

Hashing costs about 0.1 s of CPU and 64 MiB by design, so it runs in a worker thread: the event loop goes on
serving other requests meanwhile.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from threadline.errors import ValidationFailed

MIN_LENGTH = 8
MAX_LENGTH = 1024  # argon2 takes any length; this only bounds the work one request can ask for

_hasher = PasswordHasher()
# Checked against when there is no user (or no password) to check against, so that "no such operator" takes
# as long as "wrong password" and the time of an answer does not tell which emails exist.
_DUMMY_HASH = _hasher.hash("threadline: nobody has this password")


def check_acceptable(password: str) -> None:
    """A 422 naming ``password`` when it is too short or too long (what else makes a password good is the
    operator's to choose; length is what counts)."""
    if len(password) < MIN_LENGTH:
        raise ValidationFailed(f"a password needs at least {MIN_LENGTH} characters", param="password")
    if len(password) > MAX_LENGTH:
        raise ValidationFailed(f"a password has at most {MAX_LENGTH} characters", param="password")
    if "\x00" in password:
        raise ValidationFailed("a password cannot contain NUL characters", param="password")


async def hash_password(password: str) -> str:
    check_acceptable(password)
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(stored: str | None, password: str) -> bool:
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches the ``stored`` hash; False for no hash (after the same work as a check)."""
    return await asyncio.to_thread(_verify, stored, password)


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with other parameters than today's (then it is replaced at sign-in)."""
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True
