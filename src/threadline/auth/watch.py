"""Open streams end when the key that opened them stops authenticating.

A request is authenticated when it begins; an event stream then lasts for hours. So each process keeps
the keys of its open streams under watch: one query for all of them every ``interval_s`` (while any is
open) finds those revoked (or whose workspace is gone), in whichever process that happened, and ends
their streams.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from threadline.auth.repository import key_public_ids, live_key_ids

log = structlog.get_logger(__name__)


class CredentialWatch:
    def __init__(self, read_maker: async_sessionmaker[AsyncSession], interval_s: float) -> None:
        self._read_maker = read_maker
        self._interval = interval_s
        self._watched: dict[int, dict[int, Callable[[], None]]] = {}
        self._next_token = 0
        self._task: asyncio.Task[None] | None = None

    def watch(self, api_key_id: int, on_revoked: Callable[[], None]) -> Callable[[], None]:
        """Call ``on_revoked`` once the key no longer authenticates; returns what stops the watch."""
        self._next_token += 1
        token = self._next_token
        self._watched.setdefault(api_key_id, {})[token] = on_revoked
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="threadline-credential-watch")

        def unwatch() -> None:
            callbacks = self._watched.get(api_key_id)
            if callbacks is not None:
                callbacks.pop(token, None)
                if not callbacks:
                    del self._watched[api_key_id]

        return unwatch

    @property
    def watched_keys(self) -> int:
        return len(self._watched)

    async def _run(self) -> None:
        while self._watched:
            await asyncio.sleep(self._interval)
            ids = list(self._watched)
            if not ids:
                break
            try:
                async with self._read_maker() as session:
                    live = await live_key_ids(session, ids)
                    gone = [i for i in ids if i not in live]
                    # Only when a key went (rare): the logs name it by its public id. A deleted workspace's are gone.
                    names = await key_public_ids(session, gone) if gone else {}
            except Exception as exc:  # the database is away: look again next round, never end streams for it
                log.warning("credentials.check_failed", error=type(exc).__name__)
                continue
            for api_key_id in gone:
                callbacks = self._watched.pop(api_key_id, {})
                if callbacks:
                    public_id = names.get(api_key_id)
                    log.info(
                        "credentials.revoked_streams_ended",
                        api_key_id=str(public_id) if public_id is not None else None,
                        streams=len(callbacks),
                    )
                for callback in callbacks.values():
                    callback()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
