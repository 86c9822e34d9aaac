"""Everything threadline holds about one end user, as JSON Lines (GDPR articles 15 and 20), read in keyset
chunks and written chunk by chunk, so a person with 100,000 messages never sits in memory whole.

One JSON object per line, each with a ``type``; in this order:

- ``export``: the format, its version, the end user's id and when the export began;
- ``end_user``: their profile (``data``, as ``GET /v1/end_users/{id}`` shows it);
- for each of their threads, oldest first: ``thread``, then its ``message`` lines (oldest first, with tool
  calls and iterations), its ``run`` lines, then its ``event`` lines from the event log, each followed by a
  ``message_status`` line when it set a message's delivery status (the delivery history) and by a
  ``webhook_delivery`` line for each webhook endpoint it was sent to;
- ``event`` lines (with the same followers) of threads that are gone but whose events still name them;
- ``end``: how many lines of each type came before. A stream without it was cut short.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.end_users.repository import EndUserRepository
from threadline.end_users.schemas import EndUserRead
from threadline.events.schemas import envelope
from threadline.events.types import EventType
from threadline.kit.clock import utcnow
from threadline.messages.rendering import MessageRenderer, OutputMode
from threadline.messages.repository import MessageRepository
from threadline.models import EndUser, Thread
from threadline.privacy.repository import ExportRepository
from threadline.privacy.schemas import EXPORT_FORMAT, EXPORT_VERSION
from threadline.runs.repository import RunRepository
from threadline.runs.schemas import run_read
from threadline.threads.repository import ThreadRepository
from threadline.threads.schemas import thread_read
from threadline.webhooks.schemas import WebhookDeliveryRead

THREADS_PER_CHUNK = 100
ROWS_PER_CHUNK = 1000


def _line(kind: str, **fields: Any) -> bytes:
    return to_json({"type": kind, **fields}) + b"\n"


@dataclass
class EndUserExport:
    """The export of one end user, found already (so that a 404 or 410 comes before the first byte)."""

    session: AsyncSession
    workspace_id: int
    end_user: EndUser
    counts: Counter[str] = field(default_factory=Counter)

    def _lines(self, kind: str, items: Sequence[Any]) -> bytes:
        self.counts[kind] += len(items)
        return b"".join(_line(kind, data=item) for item in items)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The export, a chunk of lines at a time."""
        end_user_id = str(self.end_user.public_id)
        yield _line(
            "export", format=EXPORT_FORMAT, version=EXPORT_VERSION, end_user_id=end_user_id, exported_at=utcnow()
        )
        yield self._lines("end_user", [EndUserRead.of(self.end_user)])
        repo = ExportRepository(self.session, self.workspace_id)
        exported: set[uuid.UUID] = set()
        after = 0
        while threads := await repo.threads(self.end_user.id, after=after, limit=THREADS_PER_CHUNK):
            refs = await ThreadRepository(self.session, self.workspace_id).references(threads)
            for thread in threads:
                exported.add(thread.public_id)
                yield self._lines("thread", [thread_read(thread, refs)])
                async for chunk in self._thread(thread):
                    yield chunk
            after = threads[-1].id
        for thread_uid in await repo.threads_named_in_events(self.end_user.public_id):
            if thread_uid not in exported:
                async for chunk in self._events(thread_uid):
                    yield chunk
        yield _line("end", counts=dict(sorted(self.counts.items())))

    async def _thread(self, thread: Thread) -> AsyncIterator[bytes]:
        thread_id = str(thread.public_id)
        async for rows in MessageRepository(self.session, self.workspace_id).chunks(thread.id, size=ROWS_PER_CHUNK):
            render = await MessageRenderer(thread_id, OutputMode.TEXT).prepare(self.session, self.workspace_id, rows)
            yield self._lines("message", [render(m) for m in rows])
        runs = RunRepository(self.session, self.workspace_id)
        after = 0
        while found := await ExportRepository(self.session, self.workspace_id).runs(
            thread.id, after=after, limit=ROWS_PER_CHUNK
        ):
            refs = await runs.references(found)
            yield self._lines("run", [run_read(run, refs) for run in found])
            after = found[-1].id
        async for chunk in self._events(thread.public_id):
            yield chunk

    async def _events(self, thread_uid: uuid.UUID) -> AsyncIterator[bytes]:
        repo = ExportRepository(self.session, self.workspace_id)
        after = 0
        while rows := await repo.events(thread_uid, after=after, limit=ROWS_PER_CHUNK):
            deliveries: dict[uuid.UUID, list[WebhookDeliveryRead]] = {}
            for delivery, webhook_id in await repo.deliveries([r.public_id for r in rows]):
                deliveries.setdefault(delivery.event_id, []).append(WebhookDeliveryRead.of(delivery, str(webhook_id)))
            out = []
            for row in rows:
                out.append(self._lines("event", [envelope(row)]))
                status = _status_change(row)
                if status is not None:
                    out.append(self._lines("message_status", [status]))
                out.append(self._lines("webhook_delivery", deliveries.get(row.public_id, [])))
            yield b"".join(out)
            after = rows[-1].seq


def _status_change(event: Any) -> dict[str, Any] | None:
    """A step of a message's delivery history: the status it was stored with, or one it moved to."""
    data = event.data if isinstance(event.data, dict) else {}
    if "status" not in data or "id" not in data:
        return None
    if event.type == EventType.MESSAGE_CREATED or (
        event.type == EventType.MESSAGE_UPDATED and "status" in (event.changes or [])
    ):
        return {
            "message_id": data["id"],
            "thread_id": str(event.thread_id) if event.thread_id is not None else None,
            "status": data["status"],
            "at": event.created_at,
            "event_id": str(event.public_id),
        }
    return None


async def open_export(session: AsyncSession, *, workspace_id: int, end_user_id: str) -> EndUserExport:
    """The export of end user ``end_user_id``: 404 if there is none here, 410 if they were erased."""
    end_user = await EndUserRepository(session, workspace_id).get_end_user(end_user_id)
    return EndUserExport(session, workspace_id, end_user)
