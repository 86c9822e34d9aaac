"""One PostgreSQL connection that LISTENs on some channels for as long as the process runs.

It reconnects after any failure and calls ``on_connect`` every time it is (again) listening, so that its
owner can catch up on what it may have missed meanwhile: notifications are only wake-ups, and whatever
they announce is always read from the tables.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class PgListener:
    def __init__(
        self,
        dsn: str,
        channels: dict[str, Callable[[str], None]],
        *,
        name: str,
        on_connect: Callable[[], None] | None = None,
        reconnect_delay_s: float = 1.0,
    ) -> None:
        self.dsn = dsn
        self.channels = channels
        self.name = name  # the connection's application_name, for operators (pg_stat_activity)
        self.on_connect = on_connect
        self.reconnect_delay_s = reconnect_delay_s
        self.connection: Any = None  # the live asyncpg connection, when there is one
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closing = False

    async def start(self, wait_s: float = 5) -> None:
        """Start listening; returns once the first LISTEN is in place, or failed (then it retries)."""
        if self._closing:
            return
        if self._task is None or self._task.done():
            self._ready.clear()
            self._task = asyncio.create_task(self._run(), name=f"{self.name}-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), wait_s)

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._task = None

    async def _run(self) -> None:
        import asyncpg

        while not self._closing:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self.dsn, server_settings={"application_name": self.name})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("pglisten.connect_failed", listener=self.name, error=type(exc).__name__)
                self._ready.set()  # nobody waits for us: polling covers until we are back
                await asyncio.sleep(self.reconnect_delay_s)
                continue
            try:
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                for channel, callback in self.channels.items():
                    await conn.add_listener(channel, _adapter(callback))
                self.connection = conn
                self._ready.set()
                if self.on_connect is not None:
                    self.on_connect()
                await lost.wait()
                log.warning("pglisten.lost", listener=self.name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("pglisten.failed", listener=self.name, error=type(exc).__name__)
            finally:
                self.connection = None
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)
            await asyncio.sleep(self.reconnect_delay_s)


def _adapter(callback: Callable[[str], None]) -> Callable[[Any, int, str, str], None]:
    def on_notification(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        callback(payload)

    return on_notification


def libpq_dsn(url: Any) -> str:
    """A SQLAlchemy URL (asyncpg driver) as the plain postgresql:// DSN asyncpg.connect takes."""
    return str(url.set(drivername="postgresql").render_as_string(hide_password=False))
