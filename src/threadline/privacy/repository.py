"""All SQL of exports and erasures, built with the workspace.

An erasure reaches into other domains' tables (messages, runs, events, webhook deliveries, jobs, stored
idempotent responses) because it is the one operation that must find every row holding a person's words;
each statement here names its workspace, and deletes in bounded batches with ``RETURNING``, so that what is
counted is exactly what this statement deleted (a retry, or two executors at once, never counts twice).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, select, update
from sqlalchemy.orm import selectinload

from threadline.kit.repository import WorkspaceRepository
from threadline.models import (
    EndUser,
    Erasure,
    Event,
    IdempotencyKey,
    Job,
    Message,
    Run,
    Thread,
    WebhookDelivery,
    WebhookEndpoint,
)
from threadline.models.enums import JobState

_EVENT_COLUMNS = (
    Event.id,
    Event.public_id,
    Event.seq,
    Event.type,
    Event.thread_id,
    Event.data,
    Event.changes,
    Event.created_at,
)


def _names_end_user(end_user_uid: uuid.UUID) -> Any:
    """Events whose data names the end user: every thread event carries ``end_user_id``."""
    return Event.data["end_user_id"].as_string() == str(end_user_uid)


class ExportRepository(WorkspaceRepository):
    async def threads(self, end_user_id: int, *, after: int, limit: int) -> list[Thread]:
        """The end user's threads after row ``after``, oldest first, with their tags and assignees."""
        stmt = (
            self.scoped(Thread)
            .where(Thread.end_user_id == end_user_id, Thread.id > after)
            .options(selectinload(Thread.tags), selectinload(Thread.assignees))
            .order_by(Thread.id)
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def runs(self, thread_id: int, *, after: int, limit: int) -> list[Run]:
        stmt = self.scoped(Run).where(Run.thread_id == thread_id, Run.id > after).order_by(Run.id).limit(limit)
        return list((await self.session.execute(stmt)).scalars())

    async def events(self, thread_uid: uuid.UUID, *, after: int, limit: int) -> Sequence[Any]:
        """A thread's events after seq ``after``, oldest first, as plain rows."""
        stmt = (
            select(*_EVENT_COLUMNS)
            .where(Event.workspace_id == self.workspace_id, Event.thread_id == thread_uid, Event.seq > after)
            .order_by(Event.seq)
            .limit(limit)
        )
        return (await self.session.execute(stmt)).all()

    async def deliveries(self, event_ids: list[uuid.UUID]) -> Sequence[Any]:
        """The webhook deliveries of these events, with their endpoints' public ids."""
        if not event_ids:
            return []
        stmt = (
            select(WebhookDelivery, WebhookEndpoint.public_id.label("webhook_id"))
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookEndpoint.workspace_id == self.workspace_id, WebhookDelivery.event_id.in_(event_ids))
            .order_by(WebhookDelivery.id)
        )
        return (await self.session.execute(stmt)).all()

    async def threads_named_in_events(self, end_user_uid: uuid.UUID) -> list[uuid.UUID]:
        """The threads whose events name the end user, the deleted ones included (a thread's events outlive
        it until their retention ends)."""
        stmt = (
            select(Event.thread_id)
            .where(Event.workspace_id == self.workspace_id, Event.thread_id.is_not(None), _names_end_user(end_user_uid))
            .distinct()
        )
        return sorted(uid for uid in (await self.session.execute(stmt)).scalars() if uid is not None)


class ErasureRepository(WorkspaceRepository):
    # ------------------------------------------------------------------------------------ the erasure

    async def by_end_user(self, end_user_uid: uuid.UUID) -> Erasure | None:
        stmt = self.scoped(Erasure).where(Erasure.end_user_id == end_user_uid)
        erasure: Erasure | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return erasure

    async def job_state(self, job_id: int | None) -> JobState | None:
        if job_id is None:
            return None
        found = await self.session.scalar(select(Job.state).where(Job.id == job_id))
        return JobState(found) if found is not None else None

    async def lock(self, erasure_id: int) -> Erasure | None:
        """The erasure, row-locked until commit: executors of one erasure write its counts one at a time."""
        stmt = (
            self.scoped(Erasure)
            .where(Erasure.id == erasure_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        erasure: Erasure | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return erasure

    # ------------------------------------------------------------------------------------ the end user

    async def mark_erased(self, end_user_id: int, *, now: datetime) -> None:
        """Blank the end user's profile and free their address (a new message from it makes a new end user),
        blank their threads' metadata and flow state, and mark them and their threads as being erased."""
        await self.session.execute(
            update(EndUser)
            .where(EndUser.workspace_id == self.workspace_id, EndUser.id == end_user_id)
            .values(erased_at=now, display_name="", address=None, info=None, metadata_={}, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(
            update(Thread)
            .where(Thread.workspace_id == self.workspace_id, Thread.end_user_id == end_user_id)
            .values(erased_at=now, metadata_={}, flow_state=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )

    async def end_user_key(self, end_user_uid: uuid.UUID) -> int | None:
        stmt = select(EndUser.id).where(EndUser.workspace_id == self.workspace_id, EndUser.public_id == end_user_uid)
        key: int | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return key

    async def plan(self, end_user_id: int) -> tuple[list[uuid.UUID], int]:
        """The public ids of the end user's threads and how many messages they hold."""
        stmt = select(Thread.public_id, Thread.message_count).where(
            Thread.workspace_id == self.workspace_id, Thread.end_user_id == end_user_id
        )
        rows = (await self.session.execute(stmt)).all()
        return [r.public_id for r in rows], sum(r.message_count for r in rows)

    async def delete_end_user(self, end_user_id: int) -> None:
        await self.session.execute(
            delete(EndUser).where(EndUser.workspace_id == self.workspace_id, EndUser.id == end_user_id)
        )

    # ------------------------------------------------------------------------------------ threads

    async def thread_batch(self, end_user_id: int, *, limit: int) -> Sequence[Any]:
        """(id, public_id) of the end user's first ``limit`` threads."""
        stmt = (
            select(Thread.id, Thread.public_id)
            .where(Thread.workspace_id == self.workspace_id, Thread.end_user_id == end_user_id)
            .order_by(Thread.id)
            .limit(limit)
        )
        return (await self.session.execute(stmt)).all()

    async def lock_thread(self, thread_id: int) -> uuid.UUID | None:
        """The thread's public id, its row locked until commit (None when it is gone)."""
        stmt = (
            select(Thread.public_id)
            .where(Thread.workspace_id == self.workspace_id, Thread.id == thread_id)
            .with_for_update()
        )
        uid: uuid.UUID | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return uid

    async def delete_thread(self, thread_id: int) -> int:
        result = await self.session.execute(
            delete(Thread).where(Thread.workspace_id == self.workspace_id, Thread.id == thread_id)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def delete_messages(self, thread_id: int, *, limit: int | None) -> Sequence[Any]:
        """Delete up to ``limit`` messages of the thread (all with None), newest first; returns what the kept
        figures need of each message deleted (and its id, for the jobs that name it)."""
        chosen = select(Message.id).where(Message.workspace_id == self.workspace_id, Message.thread_id == thread_id)
        if limit is not None:
            # Newest first: a reply goes before the message it answers, so no reply is updated to point at
            # nothing (ON DELETE SET NULL) only to be deleted in the next batch.
            chosen = chosen.order_by(Message.seq.desc()).limit(limit)
        stmt = (
            delete(Message)
            .where(Message.id.in_(chosen))
            .returning(Message.id, Message.direction, Message.segments, Message.price, Message.price_currency)
        )
        rows = (await self.session.execute(stmt)).all()
        return rows

    async def delete_keyed_jobs(self, kinds: list[str], keys: list[str]) -> int:
        """The jobs of ``kinds`` whose dedupe key is one of ``keys`` (indexed)."""
        if not keys:
            return 0
        result = await self.session.execute(
            delete(Job).where(
                Job.kind.in_(kinds),
                Job.dedupe_key.in_(keys),
                Job.workspace_id == self.workspace_id,
            )
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def delete_runs(self, thread_id: int, *, limit: int | None) -> Sequence[Any]:
        """Delete up to ``limit`` runs of the thread (all with None) with the jobs that execute them; returns
        (usage, job_id) of each run deleted."""
        chosen = select(Run.id).where(Run.workspace_id == self.workspace_id, Run.thread_id == thread_id)
        if limit is not None:
            chosen = chosen.order_by(Run.id).limit(limit)
        stmt = delete(Run).where(Run.id.in_(chosen)).returning(Run.usage, Run.job_id)
        return (await self.session.execute(stmt)).all()

    async def delete_jobs(self, job_ids: list[int]) -> int:
        if not job_ids:
            return 0
        result = await self.session.execute(
            delete(Job).where(Job.id.in_(job_ids), Job.workspace_id == self.workspace_id)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------------------------ events

    def _events_of(self, thread_uid: uuid.UUID | None, end_user_uid: uuid.UUID | None) -> Select[int, uuid.UUID]:
        stmt = select(Event.id, Event.public_id).where(Event.workspace_id == self.workspace_id)
        if thread_uid is not None:
            stmt = stmt.where(Event.thread_id == thread_uid).order_by(Event.seq)
        if end_user_uid is not None:
            stmt = stmt.where(_names_end_user(end_user_uid)).order_by(Event.id)
        return stmt

    async def delete_events(
        self,
        *,
        thread_uid: uuid.UUID | None = None,
        end_user_uid: uuid.UUID | None = None,
        limit: int | None,
    ) -> tuple[int, int]:
        """Delete up to ``limit`` events of a thread, or that name the end user, with their webhook deliveries
        (and so the deliveries' attempts, which may hold what a receiver answered); returns how many events
        and deliveries."""
        stmt = self._events_of(thread_uid, end_user_uid)
        if limit is not None:
            stmt = stmt.limit(limit)
        rows = (await self.session.execute(stmt)).all()
        if not rows:
            return 0, 0
        endpoints = select(WebhookEndpoint.id).where(WebhookEndpoint.workspace_id == self.workspace_id)
        # (endpoint_id, event_id) is the deliveries' unique index: naming the endpoints lets it find them.
        deliveries = await self.session.execute(
            delete(WebhookDelivery).where(
                WebhookDelivery.endpoint_id.in_(endpoints),
                WebhookDelivery.event_id.in_([r.public_id for r in rows]),
            )
        )
        events = await self.session.execute(
            delete(Event).where(Event.workspace_id == self.workspace_id, Event.id.in_([r.id for r in rows]))
        )
        return int(events.rowcount or 0), int(deliveries.rowcount or 0)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------------------------ stored responses

    async def idempotency_batch(self, *, after: int, limit: int) -> Sequence[Any]:
        """(id, path, response_body, expires_at) of the workspace's stored responses after row ``after``."""
        stmt = (
            select(IdempotencyKey.id, IdempotencyKey.path, IdempotencyKey.response_body, IdempotencyKey.expires_at)
            .where(IdempotencyKey.workspace_id == self.workspace_id, IdempotencyKey.id > after)
            .order_by(IdempotencyKey.id)
            .limit(limit)
        )
        return (await self.session.execute(stmt)).all()

    async def delete_idempotency_keys(self, ids: list[int]) -> int:
        if not ids:
            return 0
        result = await self.session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.workspace_id == self.workspace_id, IdempotencyKey.id.in_(ids))
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
