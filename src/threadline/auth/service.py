"""Turning the credentials of a request into a Principal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from threadline.auth import repository
from threadline.auth.keys import hash_key
from threadline.auth.principal import Principal
from threadline.kit.clock import utcnow
from threadline.models.enums import Scope

log = structlog.get_logger(__name__)

_SCHEMES = ("bearer", "api-key")


def presented_keys(headers: Mapping[str, str]) -> tuple[str, ...]:
    """Every key the request carries, in any of the forms some surface accepts (``X-API-Key: KEY``,
    ``Authorization: Bearer KEY``, ``Authorization: api-key KEY``); each surface then takes its own."""
    keys: list[str] = []
    x_api_key = (headers.get("x-api-key") or "").strip()
    if x_api_key:
        keys.append(x_api_key)
    scheme, _, value = (headers.get("authorization") or "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() in _SCHEMES and value and value not in keys:
        keys.append(value)
    return tuple(keys)


async def authenticate(session: AsyncSession, key: str) -> Principal | None:
    """The principal for ``key``, or None when it is unknown or revoked (checked on every request)."""
    row = await repository.live_key_by_hash(session, hash_key(key))
    if row is None:
        return None
    scopes = frozenset(Scope(s) for s in row.scopes if s in Scope._value2member_map_)
    return Principal(
        workspace_id=row.workspace_id,
        workspace_public_id=row.public_id,
        api_key_id=row.id,
        scopes=scopes,
    )


class LastUsedRecorder:
    """Writes ``api_keys.last_used_at`` at most once per interval per key, off the request's transaction.

    A read request must stay a read (on SQLite a write would take the database's write lock), so the
    update runs in its own short transaction in the background; losing one is harmless.
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], interval_s: float) -> None:
        self._sessionmaker = sessionmaker
        self._interval = interval_s
        self._last: dict[int, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def touch(self, api_key_id: int) -> None:
        now = time.monotonic()
        if now - self._last.get(api_key_id, -1e18) < self._interval:
            return
        self._last[api_key_id] = now
        task = asyncio.get_running_loop().create_task(self._write(api_key_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, api_key_id: int) -> None:
        try:
            async with self._sessionmaker() as session, session.begin():
                await repository.set_last_used(session, api_key_id, utcnow())
        except Exception as exc:  # a stat: never worth failing anything for (the database's failure, not the key's)
            log.warning("api_key.touch_failed", error=type(exc).__name__)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
