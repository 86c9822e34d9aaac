"""The request owns the transaction: one session per request, committed just before the response starts.

Committing before the first byte goes out means a client that sees 201 can rely on the row being
there, and a handler that fails (4xx or 5xx) leaves nothing behind. Writes on SQLite begin with
BEGIN IMMEDIATE (see db.engine) so concurrent writers queue instead of failing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadline.web.errors import send_error
from threadline.web.surfaces import ErrorInfo

log = structlog.get_logger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SessionHolder:
    """Creates the request's session on first use, so requests that never touch the database pay nothing."""

    __slots__ = ("_maker", "_release", "_session")

    def __init__(self, maker: async_sessionmaker[AsyncSession], release: Callable[[], None] | None = None) -> None:
        self._maker = maker
        self._session: AsyncSession | None = None
        self._release = release

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = self._maker()
        return self._session

    @property
    def started(self) -> bool:
        return self._session is not None

    async def commit(self) -> None:
        if self._session is not None:
            await self._session.commit()

    async def commit_early(self) -> None:
        """Commit now, before the response (a handler that then waits for work its commit starts, e.g. an
        agent's reply), and let this process's other writers go (SQLite's per-process write queue)."""
        await self.commit()
        if self._release is not None:
            self._release()

    async def rollback(self) -> None:
        if self._session is not None:
            await self._session.rollback()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class DatabaseSessionMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        read_maker: async_sessionmaker[AsyncSession],
        write_maker: async_sessionmaker[AsyncSession],
        serialize_writes: bool = False,
    ) -> None:
        self.app = app
        self.read_maker = read_maker
        self.write_maker = write_maker
        # SQLite has one writer at a time; its busy-timeout polling serves waiters in no order (p99 of
        # seconds under load). Queueing this process's writers on a FIFO lock first makes it fair.
        self.write_lock = asyncio.Lock() if serialize_writes else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS and self.write_lock is not None:
            lock = self.write_lock
            await lock.acquire()
            held = True

            def release() -> None:
                nonlocal held
                if held:
                    held = False
                    lock.release()

            try:
                await self._handle(scope, receive, send, self.write_maker, release)
            finally:
                release()
        else:
            maker = self.read_maker if scope["method"] in SAFE_METHODS else self.write_maker
            await self._handle(scope, receive, send, maker)

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        maker: async_sessionmaker[AsyncSession],
        release: Callable[[], None] | None = None,
    ) -> None:
        holder = SessionHolder(maker, release)
        scope.setdefault("state", {})["db"] = holder
        finished = False

        async def send_after_commit(message: Message) -> None:
            nonlocal finished
            if message["type"] == "http.response.start" and not finished:
                finished = True
                if message["status"] < 400:
                    try:
                        await holder.commit()
                    except (IntegrityError, DBAPIError) as exc:
                        await holder.rollback()
                        log.warning("request.commit_failed", error=type(exc).__name__)
                        await send_error(scope, send, _COMMIT_FAILED)
                        raise _CommitFailed from None
                else:
                    await holder.rollback()
            await send(message)

        try:
            await self.app(scope, receive, send_after_commit)
        except _CommitFailed:
            pass
        except BaseException:
            await holder.rollback()
            raise
        finally:
            await holder.close()


_COMMIT_FAILED = ErrorInfo(
    409,
    "conflict_error",
    "write_conflict",
    "the change conflicted with a concurrent one and was not saved; retry the request",
)


class _CommitFailed(Exception):
    """The handler succeeded but its transaction could not commit; a 409 has already been sent."""
