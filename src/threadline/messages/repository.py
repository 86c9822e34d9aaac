from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ScalarSelect, Select, case, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.kit.ids import parse_uuid
from threadline.kit.pagination import Page, PageRequest, keyset_page
from threadline.kit.repository import WorkspaceRepository
from threadline.models import AgentVersion, Integration, Message, Thread, User
from threadline.models.enums import ChannelType, Direction, MessageStatus, MessageType, Role, SentBy

_COLUMNS = tuple(Message.__table__.c)
_ALL_ROLES = frozenset(Role)


def _version_column(column: Any, name: str) -> Any:
    return select(column).where(AgentVersion.id == Thread.agent_version_id).scalar_subquery().label(name)


class MessageRepository(WorkspaceRepository):
    async def claim_next_seq(self, thread_public_id: str, *, now: datetime) -> Any | None:
        """Take the thread's next message number; returns the row (id, last_seq, last_message_at: the new
        message's time, integration_id, active,
        blocked, agent_version_id, discard_inbound, version_settings, version_public_id, channel) as it is
        after the claim, or None if there is no such thread, or its end user is being erased (the erasure marks
        the thread under this same row lock, so a message is stored before it begins or refused after).

        The UPDATE locks the thread row until the transaction ends, so the writers of one thread commit
        one after another, in ``seq`` order: a reader paging by ``seq`` can never see 7 before 6 exists.
        It also keeps message_count and last_message_at exact at no extra cost.
        """
        uid = parse_uuid(thread_public_id)
        if uid is None:
            return None
        stmt = (
            update(Thread)
            .where(Thread.workspace_id == self.workspace_id, Thread.public_id == uid, Thread.erased_at.is_(None))
            .values(
                last_seq=Thread.last_seq + 1,
                message_count=Thread.message_count + 1,
                # Never backwards (``now`` was read before this UPDATE waited for another writer of the thread);
                # it comes back as the new message's time.
                last_message_at=case(
                    (Thread.last_message_at > now, Thread.last_message_at),
                    else_=literal(now, Thread.last_message_at.type),
                ),
                updated_at=now,
            )
            .returning(
                Thread.id,
                Thread.last_seq,
                Thread.last_message_at,
                Thread.integration_id,
                Thread.active,
                Thread.blocked,
                Thread.agent_version_id,
                # What the new message needs of the thread's agent version and channel, in the same round trip.
                _version_column(AgentVersion.discard_inbound, "discard_inbound"),
                _version_column(AgentVersion.settings, "version_settings"),
                _version_column(AgentVersion.public_id, "version_public_id"),
                select(Integration.type)
                .where(Integration.id == Thread.integration_id)
                .scalar_subquery()
                .label("channel"),
            )
        )
        return (await self.session.execute(stmt)).one_or_none()

    async def agent_messages_waiting(self, thread_key: int) -> list[int]:
        """The agent's messages of the thread still waiting to be sent on their channel (QUEUED)."""
        stmt = select(Message.id).where(
            Message.workspace_id == self.workspace_id,
            Message.thread_id == thread_key,
            Message.status == MessageStatus.QUEUED,
            Message.sent_by == SentBy.AGENT,
        )
        return list((await self.session.execute(stmt)).scalars())

    async def thread_erased(self, thread_public_id: str) -> bool:
        """Whether the thread is here and its end user is being erased."""
        uid = parse_uuid(thread_public_id)
        if uid is None:
            return False
        stmt = select(Thread.id).where(
            Thread.workspace_id == self.workspace_id, Thread.public_id == uid, Thread.erased_at.is_not(None)
        )
        return (await self.session.execute(stmt)).first() is not None

    async def in_thread(self, thread_id: int, public_id: str) -> Message | None:
        uid = parse_uuid(public_id)
        if uid is None:
            return None
        stmt = self.scoped(Message).where(Message.thread_id == thread_id, Message.public_id == uid)
        message: Message | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return message

    async def seq_of(self, thread_id: int, public_id: str | None) -> int | None:
        if public_id is None:
            return None
        uid = parse_uuid(public_id)
        if uid is None:
            return None
        stmt = select(Message.seq).where(
            Message.workspace_id == self.workspace_id, Message.thread_id == thread_id, Message.public_id == uid
        )
        seq: int | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return seq

    def thread_key_subquery(self, thread_uid: uuid.UUID) -> ScalarSelect[Any]:
        return (
            select(Thread.id)
            .where(Thread.workspace_id == self.workspace_id, Thread.public_id == thread_uid)
            .scalar_subquery()
        )

    def seq_subquery(self, thread_key: Any, message_uid: uuid.UUID) -> ScalarSelect[Any]:
        """The seq of a message of this thread; NULL (so no row compares true) when there is none."""
        return (
            select(Message.seq)
            .where(
                Message.workspace_id == self.workspace_id,
                Message.thread_id == thread_key,
                Message.public_id == message_uid,
            )
            .scalar_subquery()
        )

    async def page(
        self,
        thread_id: int | ScalarSelect[Any],
        page: PageRequest,
        *,
        role: Role | None = None,
        roles: Collection[Role] | None = None,
        type: MessageType | None = None,
        direction: Direction | None = None,
        status: MessageStatus | None = None,
    ) -> Page[Message]:
        """``roles``: only messages of these roles (a surface that does not show some roles)."""
        # Plain rows, not ORM objects: a page is read-only and this is the hottest read there is.
        stmt: Select[Any] = select(*_COLUMNS).where(
            Message.workspace_id == self.workspace_id, Message.thread_id == thread_id
        )
        if role is not None:
            stmt = stmt.where(Message.role == role)
        if roles is not None and frozenset(roles) != _ALL_ROLES:
            stmt = stmt.where(Message.role.in_(sorted(roles)))
        if type is not None:
            stmt = stmt.where(Message.type == type)
        if direction is not None:
            stmt = stmt.where(Message.direction == direction)
        if status is not None:
            stmt = stmt.where(Message.status == status)
        return await keyset_page(self.session, stmt, Message.seq, page, rows=True)

    async def chunks(
        self, thread_id: int, *, roles: Collection[Role] | None = None, size: int = 1000
    ) -> AsyncIterator[list[Any]]:
        """The whole thread, oldest first, as lists of at most ``size`` plain rows: one keyset query per
        list, so a thread of any length is read in bounded memory."""
        after = None
        while True:
            page = await self.page(thread_id, PageRequest(limit=size, after=after), roles=roles)
            if page.items:
                yield page.items
            if not page.has_more:
                return
            after = page.items[-1].seq

    async def user_public_ids(self, ids: set[int]) -> dict[int, uuid.UUID]:
        return await self.public_ids(User, ids)

    async def message_public_ids(self, ids: set[int]) -> dict[int, uuid.UUID]:
        return await self.public_ids(Message, ids)

    async def existing(self, thread_id: int, public_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Which of ``public_ids`` are messages of this thread."""
        if not public_ids:
            return set()
        stmt = select(Message.public_id).where(
            Message.workspace_id == self.workspace_id,
            Message.thread_id == thread_id,
            Message.public_id.in_(public_ids),
        )
        return set((await self.session.execute(stmt)).scalars())

    async def mark_read(
        self,
        thread_id: int,
        *,
        at: datetime,
        seq_upto: int | None = None,
        public_ids: list[uuid.UUID] | None = None,
    ) -> Sequence[Any]:
        """Set read_at on the unread messages chosen; returns the changed messages as plain rows."""
        stmt = (
            update(Message)
            .where(
                Message.workspace_id == self.workspace_id,
                Message.thread_id == thread_id,
                Message.read_at.is_(None),
            )
            .values(read_at=at, updated_at=at)
            .returning(*_COLUMNS)
        )
        if seq_upto is not None:
            stmt = stmt.where(Message.seq <= seq_upto)
        if public_ids is not None:
            stmt = stmt.where(Message.public_id.in_(public_ids))
        rows = (await self.session.execute(stmt)).all()
        return sorted(rows, key=lambda r: r.seq)

    async def delete_message(self, message: Message) -> None:
        """Delete one message of a thread and count it out of the thread's ``message_count``. The thread's row is
        updated first: it is locked as a new message's claim locks it, so a count never misses either."""
        await self.session.execute(
            update(Thread)
            .where(Thread.workspace_id == self.workspace_id, Thread.id == message.thread_id)
            .values(message_count=case((Thread.message_count > 0, Thread.message_count - 1), else_=0))
            .execution_options(synchronize_session=False)
        )
        await self.session.delete(message)
        await self.session.flush()

    async def channel_of(self, integration_id: int) -> ChannelType | None:
        """The type of integration ``integration_id`` (None if it is gone)."""
        found = await self.session.scalar(select(Integration.type).where(Integration.id == integration_id))
        return ChannelType(found) if found is not None else None

    async def transition(
        self,
        message_id: int,
        *,
        sources: Collection[MessageStatus],
        unchanged: Mapping[str, Any],
        values: Mapping[str, Any],
    ) -> Message | None:
        """``UPDATE messages SET values WHERE id = message_id AND status IN sources`` and every column named
        in ``unchanged`` still holds that value (NULL matching NULL), ``RETURNING`` the message with the
        session's copy refreshed; None when the guard matched nothing (the row moved on, or is not here).

        Two writers racing on one message serialize on its row: the second one's guard is checked against
        the row the first one committed (PostgreSQL re-evaluates it after the wait), so neither can apply
        a change planned from a state that is gone (messages.lifecycle).
        """
        stmt = (
            update(Message)
            .where(
                Message.workspace_id == self.workspace_id,
                Message.id == message_id,
                Message.status.in_(sorted(sources)),
                *(getattr(Message, name).is_not_distinct_from(value) for name, value in unchanged.items()),
            )
            .values(**values)
            .returning(Message)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        message: Message | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return message


class ReportRepository:
    """The SQL of the delivery lifecycle (messages.lifecycle): a provider's status report names a message by the
    integration and the provider's id, or by the tag the send job gave it, which are unique across workspaces."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_external_id(self, integration_id: int, external_id: str) -> Message | None:
        stmt = (
            select(Message)
            .where(Message.integration_id == integration_id, Message.external_id == external_id)
            .execution_options(populate_existing=True)
        )
        found: Message | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return found

    async def by_tag(self, integration_id: int, public_id: uuid.UUID, external_id: str) -> Message | None:
        """The integration's outbound message ``public_id``, with no provider id yet or with ``external_id``."""
        stmt = (
            select(Message)
            .where(
                Message.integration_id == integration_id,
                Message.public_id == public_id,
                Message.direction == Direction.OUTBOUND,
                or_(Message.external_id.is_(None), Message.external_id == external_id),
            )
            .execution_options(populate_existing=True)
        )
        found: Message | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return found

    async def current(self, message_id: int) -> Message | None:
        """The message as committed now (not a copy the session holds from earlier)."""
        return await self.session.get(Message, message_id, populate_existing=True)
