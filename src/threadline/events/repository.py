"""The event log's SQL: numbering and writing a transaction's events, reading a workspace's events after a seq
(optionally of one thread or some types), the retention purge, and the NOTIFYs that wake other processes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from threadline.kit.repository import WorkspaceRepository
from threadline.models import Event, Workspace

_COLUMNS = (
    Event.public_id,
    Event.seq,
    Event.type,
    Event.thread_id,
    Event.data,
    Event.changes,
    Event.created_at,
)


class EventRepository(WorkspaceRepository):
    async def take_seqs(self, count: int, *, notify: str | None, guards: Sequence[Any] = ()) -> tuple[int, list[bool]]:
        """Take the workspace's next ``count`` seqs: ``UPDATE workspaces SET last_event_seq = last_event_seq +
        count``, whose row lock (held until the transaction ends) orders the commits that number events. Returns
        the last seq taken and the value of each of ``guards`` (scalar SQL expressions, read in the same
        statement). With ``notify`` (PostgreSQL), the statement also sends ``NOTIFY <notify>`` with
        ``"<workspace>:<last seq>"``, delivered at commit."""
        returned: list[Any] = [Workspace.last_event_seq]
        if notify is not None:
            # "<workspace>:<last seq>": a process that has read that far already skips the read.
            returned.append(func.pg_notify(notify, func.concat(f"{self.workspace_id}:", Workspace.last_event_seq)))
        first_guard = len(returned)
        returned.extend(guards)
        stmt = (
            update(Workspace)
            .where(Workspace.id == self.workspace_id)
            .values(last_event_seq=Workspace.last_event_seq + count)
            .returning(*returned)
        )
        row = (await self.session.execute(stmt)).one()
        return int(row[0]), [bool(value) for value in row[first_guard:]]

    async def insert(self, events: Sequence[Any]) -> None:
        """Write numbered events (each with public_id, seq, type, thread_id, data, changes, created_at)."""
        await self.session.execute(
            insert(Event),
            [
                {
                    "public_id": e.public_id,
                    "workspace_id": self.workspace_id,
                    "seq": e.seq,
                    "type": e.type,
                    "thread_id": e.thread_id,
                    "data": e.data,
                    "changes": e.changes,
                    "created_at": e.created_at,
                }
                for e in events
            ],
        )

    async def last_seq(self) -> int:
        stmt = select(Workspace.last_event_seq).where(Workspace.id == self.workspace_id)
        return int((await self.session.execute(stmt)).scalar_one_or_none() or 0)

    async def after(
        self,
        seq: int,
        *,
        limit: int,
        thread_id: uuid.UUID | None = None,
        types: Sequence[str] | None = None,
    ) -> Sequence[Any]:
        """Events with seq > ``seq``, oldest first, as plain rows."""
        stmt = select(*_COLUMNS).where(Event.workspace_id == self.workspace_id, Event.seq > seq)
        if thread_id is not None:
            stmt = stmt.where(Event.thread_id == thread_id)
        if types:
            stmt = stmt.where(Event.type.in_(list(types)))
        stmt = stmt.order_by(Event.seq).limit(limit)
        return (await self.session.execute(stmt)).all()


async def purge_events(session: Any, *, before: datetime) -> int:
    """Delete every workspace's events older than ``before`` (retention); returns how many."""
    result = await session.execute(delete(Event).where(Event.created_at < before))
    return int(result.rowcount or 0)


async def notify(engine: AsyncEngine, channel: str, payload: str) -> None:
    """``NOTIFY channel, payload`` at once, on a connection of its own (PostgreSQL)."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload})
        await conn.commit()


async def notify_through(connection: Any, channel: str, payload: str) -> None:
    """``NOTIFY channel, payload`` at once, through an asyncpg connection already open (a listener's)."""
    await connection.execute("SELECT pg_notify($1, $2)", channel, payload)
