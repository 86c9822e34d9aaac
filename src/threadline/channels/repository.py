"""All SQL of the channels: what an inbound webhook looks up before it stores a message
(``InboundRepository``), and what the send job reads about a message and its thread (``DeliveryRepository``).
Messages themselves are written through ``flows.send.append_message`` and ``messages.lifecycle``, never here."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from threadline.events.types import EventType
from threadline.kit.repository import WorkspaceRepository
from threadline.models import EndUser, Event, Message, Thread
from threadline.models.enums import ChannelType, Direction, MessageStatus

__all__ = ["DeliveryRepository", "InboundRepository"]


class InboundRepository(WorkspaceRepository):
    async def has_message(self, integration_id: int, external_id: str) -> bool:
        stmt = (
            select(Message.id)
            .where(
                Message.workspace_id == self.workspace_id,
                Message.integration_id == integration_id,
                Message.external_id == external_id,
            )
            .limit(1)
        )
        return (await self.session.execute(stmt)).first() is not None

    async def message_key(self, thread_id: int, integration_id: int, external_id: str) -> int | None:
        """The row id of the message of this thread with the provider's id ``external_id``, if any."""
        stmt = select(Message.id).where(
            Message.workspace_id == self.workspace_id,
            Message.thread_id == thread_id,
            Message.integration_id == integration_id,
            Message.external_id == external_id,
        )
        key: int | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return key

    async def end_user_by_address(self, channel: ChannelType, address: str) -> EndUser | None:
        stmt = self.scoped(EndUser).where(EndUser.channel == channel, EndUser.address == address)
        end_user: EndUser | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return end_user

    async def add_end_user(self, channel: ChannelType, address: str, display_name: str) -> EndUser | None:
        """A new end user at ``address`` on ``channel``, in a savepoint of its own; None when that address is
        taken already (a concurrent first message from it created theirs)."""
        created = EndUser(
            workspace_id=self.workspace_id, display_name=display_name, channel=channel, address=address, metadata_={}
        )
        try:
            async with self.session.begin_nested():
                self.session.add(created)
        except IntegrityError:
            return None
        return created

    async def latest_thread(self, *, agent_id: int, end_user_id: int, integration_id: int) -> Thread | None:
        """The newest thread of this end user with this agent that came through this integration."""
        stmt = (
            self.scoped(Thread)
            .where(
                Thread.agent_id == agent_id,
                Thread.end_user_id == end_user_id,
                Thread.integration_id == integration_id,
            )
            .order_by(Thread.id.desc())
            .limit(1)
        )
        thread: Thread | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return thread


class DeliveryRepository(WorkspaceRepository):
    async def outgoing(self, message_id: int) -> Any | None:
        """The message ``message_id`` with what sending it needs from its thread: (message, the end user's
        address, the thread's integration id, whether the thread is active, the thread's public id); None
        when it is gone (deleted with its thread)."""
        stmt = (
            select(Message, EndUser.address, Thread.integration_id, Thread.active, Thread.public_id)
            .join(Thread, Thread.id == Message.thread_id)
            .join(EndUser, EndUser.id == Thread.end_user_id)
            .where(Message.workspace_id == self.workspace_id, Message.id == message_id)
        )
        return (await self.session.execute(stmt)).one_or_none()

    async def message(self, message_id: int) -> Message | None:
        stmt = self.scoped(Message).where(Message.id == message_id)
        message: Message | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return message

    async def latest_handoff(self, thread_uid: uuid.UUID) -> Any:
        """The data of the thread's latest ``thread.handoff_started`` event (read backwards along the events'
        (workspace, thread, seq) index), None without one."""
        return await self.session.scalar(
            select(Event.data)
            .where(
                Event.workspace_id == self.workspace_id,
                Event.thread_id == thread_uid,
                Event.type == EventType.THREAD_HANDOFF_STARTED,
            )
            .order_by(Event.seq.desc())
            .limit(1)
        )

    async def earlier_pending(self, message: Message, *, since: datetime) -> bool:
        """Whether an outbound message before ``message`` in its thread, created after ``since``, is still
        QUEUED or SENDING."""
        stmt = (
            select(Message.id)
            .where(
                Message.workspace_id == self.workspace_id,
                Message.thread_id == message.thread_id,
                Message.seq < message.seq,
                Message.direction == Direction.OUTBOUND,
                Message.status.in_((MessageStatus.QUEUED, MessageStatus.SENDING)),
                Message.created_at > since,
            )
            .limit(1)
        )
        return (await self.session.execute(stmt)).first() is not None

    async def next_queued(self, thread_id: int, seq: int) -> int | None:
        """The row id of the thread's first QUEUED outbound message after ``seq``, if any."""
        key: int | None = await self.session.scalar(
            select(Message.id)
            .where(
                Message.workspace_id == self.workspace_id,
                Message.thread_id == thread_id,
                Message.seq > seq,
                Message.direction == Direction.OUTBOUND,
                Message.status == MessageStatus.QUEUED,
            )
            .order_by(Message.seq)
            .limit(1)
        )
        return key
