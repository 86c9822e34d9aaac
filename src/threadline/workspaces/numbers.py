"""The integer ids of threads and messages (``number``; camelAI's ids), counted per workspace.

Each workspace numbers its threads and its messages 1, 2, 3..., so a number says nothing about other
tenants. A number is unique within its workspace (a unique index holds it) and never changes; numbers
are not dense (a rollback, or a process that stops, leaves the ones it took unused) and, across server
processes, not in order of creation. ``workspace_counters`` keeps the highest number handed out.

**SQLite** runs one writer at a time: the number is taken in the writer's own transaction (a rollback
hands it back). A statement on another connection would wait for that very transaction's write lock.

**PostgreSQL**: a number taken in the writer's transaction would hold the counter row's lock until its
commit, and every other write of the workspace would queue behind it. Instead each process takes numbers
in blocks, with a statement that commits on its own (``UPDATE workspace_counters SET last_message_number =
last_message_number + :block RETURNING ...``, on a small pool of its own, so that a request holding a
connection of the main pool never waits for that pool), and hands them out from memory. The row is locked
for that one statement; no transaction ever holds it to its commit, so taking a block never waits for one.
A block is one number while a workspace writes slowly; it doubles, up to ``MAX_BLOCK``, while each block
is used up within ``BUSY_S`` and halves when it lasted longer, so it settles near a second's worth of the
workspace's writes: a busy workspace costs a statement or two a second, and a process that stops leaves
about a second's worth of numbers unused. The one exception is a workspace created by a transaction
that has not committed (the first start's demo thread): nothing else can see it yet, so that transaction
numbers its rows itself.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass

import structlog
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import MissingGreenlet
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.util import await_only

from threadline.workspaces.repository import CounterRepository, Numbered

log = structlog.get_logger(__name__)

MAX_BLOCK = 512
# A block used up faster than this doubles the next one; a slower one halves it.
BUSY_S = 1.0
APPLICATION_NAME = "threadline-numbers"


async def take(session: AsyncSession, *, workspace_id: int, of: Numbered) -> int:
    """The next number of a thread or message (``of``: ``Thread`` or ``Message``) of this workspace."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        number = await _allocator(bind.engine).take(workspace_id, of)
        if number is not None:
            return number
    repo = CounterRepository(session, workspace_id)
    taken = await repo.advance(of, 1)
    return taken if taken is not None else await repo.start(of, 1)


async def create_counters(session: AsyncSession, *, workspace_id: int) -> None:
    """Start a new workspace's numbers (in the transaction that creates it)."""
    await CounterRepository(session, workspace_id).create()


@dataclass(slots=True)
class _Block:
    next: int = 1
    last: int = 0  # next > last: used up
    size: int = 0
    taken_at: float = 0.0

    def pop(self) -> int | None:
        if self.next > self.last:
            return None
        self.next += 1
        return self.next - 1

    def next_size(self, now: float) -> int:
        if self.size == 0:
            return 1
        if now - self.taken_at < BUSY_S:
            return min(MAX_BLOCK, self.size * 2)
        return max(1, self.size // 2)


class _Allocator:
    """One process's blocks of numbers in one PostgreSQL database."""

    def __init__(self, engine: Engine) -> None:
        self.engine: AsyncEngine = create_async_engine(
            engine.url,
            pool_size=2,
            max_overflow=2,
            pool_recycle=1800,
            isolation_level="AUTOCOMMIT",
            connect_args={"server_settings": {"application_name": APPLICATION_NAME}},
        )
        self.blocks: dict[tuple[int, str], _Block] = {}
        self.locks: dict[tuple[int, str], asyncio.Lock] = {}

    async def take(self, workspace_id: int, of: Numbered) -> int | None:
        """A number from this process's block, taking a new block when it is used up; None when the
        workspace's counters are not visible outside the transaction that is creating it."""
        key = (workspace_id, of.__tablename__)
        block = self.blocks.get(key)
        number = block.pop() if block is not None else None
        if number is not None:
            return number
        # One block at a time per workspace and kind: writers that find it used up wait for the next one.
        async with self.locks.setdefault(key, asyncio.Lock()):
            block = self.blocks.setdefault(key, _Block())
            number = block.pop()
            if number is not None:
                return number
            now = time.monotonic()
            size = block.next_size(now)
            async with AsyncSession(self.engine) as side:
                last = await CounterRepository(side, workspace_id).advance(of, size)
            if last is None:
                return None
            block.next, block.last, block.size, block.taken_at = last - size + 1, last, size, now
            log.debug("numbers.block_taken", of=key[1], first=block.next, size=size)  # logs never show row ids
            return block.pop()


# One allocator per engine (the engine's pool is bound to one event loop; so are the allocator's).
_allocators: weakref.WeakKeyDictionary[Engine, _Allocator] = weakref.WeakKeyDictionary()


def _allocator(engine: Engine) -> _Allocator:
    allocator = _allocators.get(engine)
    if allocator is None:
        allocator = _allocators[engine] = _Allocator(engine)
    return allocator


@event.listens_for(Engine, "engine_disposed")
def _dispose_with_engine(engine: Engine) -> None:
    # The allocator's pool lives as long as the engine's: AsyncEngine.dispose() runs this in its greenlet.
    allocator = _allocators.pop(engine, None)
    if allocator is None:
        return
    try:
        await_only(allocator.engine.dispose())
    except MissingGreenlet:  # a plain Engine.dispose() outside asyncio: its connections close when collected
        log.warning("numbers.pool_left_open", database=engine.url.database)
