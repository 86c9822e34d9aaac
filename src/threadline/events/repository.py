"""Reading the event log: a workspace's events after a seq, optionally of one thread or some types."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

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
