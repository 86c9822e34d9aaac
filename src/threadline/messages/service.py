"""Messages. ``store_message`` is the one way a message is stored: ordering, counters and its event are kept
in one place. It stores and nothing else; sending a stored message on its channel and starting the run that
answers it are the flow's (``flows.send.append_message``), through which every surface adds messages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from threadline.errors import Gone, InvalidRequest, NotFound
from threadline.events import service as events
from threadline.events.types import EventType
from threadline.kit.clock import utcnow
from threadline.kit.ids import parse_uuid
from threadline.kit.pagination import Page, PageRequest
from threadline.messages.rendering import MessageRenderer, OutputMode
from threadline.messages.repository import MessageRepository
from threadline.messages.schemas import MarkRead, MessageCreate, MessageUpdate
from threadline.models import Message, User
from threadline.models.enums import (
    ChannelType,
    Direction,
    MessageStatus,
    MessageType,
    Role,
    SentBy,
    Source,
)
from threadline.threads.repository import ThreadRepository
from threadline.workspaces import numbers

_INTERNAL_ROLES = frozenset({Role.SYSTEM, Role.TOOL, Role.HIDDEN})


@dataclass(slots=True)
class NewMessage:
    """Everything a new message may carry; defaults are derived from who sent it and the channel."""

    role: Role
    content: str = ""
    type: MessageType = MessageType.TEXT
    blocks: list[dict[str, Any]] | None = None
    media_url: str | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    sent_by: SentBy | None = None
    sent_by_user_id: int | None = None
    source: Source = Source.API
    status: MessageStatus | None = None
    in_response_to_id: int | None = None
    tool_calls: list[dict[str, Any]] | None = None
    iterations: list[dict[str, Any]] | None = None
    external_id: str | None = None
    provider_account_id: str | None = None
    segments: int | None = None  # an inbound SMS's segments, as the provider counted them
    run_id: int | None = None
    start_run: bool = True  # an end-user message makes the agent answer (when the thread lets it)
    debounce_s: float | None = None  # None: the agent version's or the channel's window


# How a text is cut into provider messages on a channel (``channels.outbox.parts``): the caller's, so that storing
# a message does not reach into the channels.
Split = Callable[[ChannelType, MessageType, str], list[str]]


def unsplit(channel: ChannelType, type_: MessageType, content: str) -> list[str]:
    """A ``Split`` that keeps every text whole."""
    return [content]


@dataclass(slots=True)
class AnswerRequest:
    """An end user's message to a thread whose agent answers (active, unblocked, not discarding): what asking for
    the run that answers it needs, read in the same statement that placed the message."""

    thread_key: int
    thread_public_id: Any
    agent_version_id: int
    agent_version_public_id: Any
    version_settings: dict[str, Any]
    channel: ChannelType
    message_id: int
    message_public_id: Any
    message_seq: int
    at: datetime


@dataclass(slots=True)
class Stored:
    """What storing a message did: the message (the first provider message of a text split for its channel) and
    its message.created event (the message as /v1 shows it, numbered at commit); the messages stored QUEUED,
    which the channel must now send (that one and the rest of its split text, in order); and the answer it
    asks for (None when none: not an end user's message, no agent, a human has the thread, blocked...)."""

    message: Message
    event: events.PendingEvent
    queued: list[Message] = field(default_factory=list)
    answer: AnswerRequest | None = None


def _sent_by(new: NewMessage) -> SentBy:
    if new.sent_by is not None:
        return new.sent_by
    if new.role is Role.USER:
        return SentBy.END_USER
    if new.role is Role.SYSTEM:
        return SentBy.SYSTEM
    return SentBy.OPERATOR if new.sent_by_user_id is not None else SentBy.AGENT


def _initial_status(new: NewMessage, direction: Direction, channel: ChannelType) -> MessageStatus:
    """Inbound messages are RECEIVED. Outbound ones are SENT on the plain API (the reader fetches them)
    and QUEUED on SMS and WhatsApp, where a delivery job takes them through the provider's lifecycle.
    Internal notes (system, tool, hidden) are never delivered anywhere: they are recorded as SENT."""
    if new.status is not None:
        return new.status
    if direction is Direction.INBOUND:
        return MessageStatus.RECEIVED
    if channel is ChannelType.API or new.role in _INTERNAL_ROLES:
        return MessageStatus.SENT
    return MessageStatus.QUEUED


async def store_message(
    session: AsyncSession, *, workspace_id: int, thread_id: str, new: NewMessage, split: Split = unsplit
) -> Stored:
    """Add a message at the end of a thread (404 if the thread is not in this workspace).

    An outbound message on SMS or WhatsApp is stored QUEUED; a text too long for one provider message (as
    ``split`` cuts it) is stored as several messages, one per provider message, in consecutive places
    (``metadata.part`` of ``metadata.parts``). The first is returned and carries the tool calls and
    iterations. An end user's message to a thread its agent holds asks for an answer (``Stored.answer``)."""
    repo = MessageRepository(session, workspace_id)
    now = utcnow()
    claimed = await repo.claim_next_seq(thread_id, now=now)
    if claimed is None:
        if await repo.thread_erased(thread_id):
            raise Gone(f"thread '{thread_id}' belongs to an end user who was erased", code="end_user_erased")
        raise NotFound(f"no thread with id '{thread_id}'")
    thread_key, seq, integration_id = claimed.id, claimed.last_seq, claimed.integration_id
    number = await numbers.take(session, workspace_id=workspace_id, of=Message)
    # ``now`` was read before the claim, which may have waited for another writer of the thread (PostgreSQL):
    # the claim dates the message no earlier than the one committed ahead of it (last_message_at).
    now = claimed.last_message_at
    channel = ChannelType(claimed.channel) if claimed.channel is not None else ChannelType.API
    direction = Direction.INBOUND if new.role is Role.USER else Direction.OUTBOUND
    version = None
    if new.role is Role.USER and claimed.agent_version_id is not None:
        version = (bool(claimed.discard_inbound), dict(claimed.version_settings or {}), claimed.version_public_id)
    discard = version is not None and version[0]
    status = MessageStatus.DISCARDED if discard and new.status is None else _initial_status(new, direction, channel)
    contents = split(channel, new.type, new.content) if status is MessageStatus.QUEUED else [new.content]
    metadata = new.metadata if len(contents) == 1 else {**new.metadata, "part": 1, "parts": len(contents)}
    message = Message(
        workspace_id=workspace_id,
        thread_id=thread_key,
        seq=seq,
        number=number,
        role=new.role,
        type=new.type,
        content=contents[0],
        blocks=new.blocks,
        media_url=new.media_url,
        attachments=new.attachments,
        metadata_=metadata,
        direction=direction,
        sent_by=_sent_by(new),
        sent_by_user_id=new.sent_by_user_id,
        source=new.source,
        status=status,
        sent_at=now if status is MessageStatus.SENT else None,
        integration_id=integration_id,
        external_id=new.external_id,
        provider_account_id=new.provider_account_id,
        segments=new.segments,
        tool_calls=new.tool_calls,
        iterations=new.iterations,
        in_response_to_id=new.in_response_to_id,
        run_id=new.run_id,
        created_at=now,
        updated_at=now,
    )
    session.add(message)
    await session.flush()
    thread_uid = parse_uuid(thread_id)
    [created] = await _record(session, workspace_id, thread_uid, [message], EventType.MESSAGE_CREATED)
    stored = Stored(message, created, queued=[message] if status is MessageStatus.QUEUED else [])
    for place, part in enumerate(contents[1:], start=2):  # the rest of a text too long for one provider message
        rest = NewMessage(
            role=new.role,
            content=part,
            metadata={**new.metadata, "part": place, "parts": len(contents)},
            sent_by=_sent_by(new),
            sent_by_user_id=new.sent_by_user_id,
            source=new.source,
            in_response_to_id=new.in_response_to_id,
            run_id=new.run_id,
            start_run=False,
        )
        more = await store_message(session, workspace_id=workspace_id, thread_id=thread_id, new=rest, split=split)
        stored.queued += more.queued
    if version is not None and not discard and claimed.active and not claimed.blocked and new.start_run:
        stored.answer = AnswerRequest(
            thread_key=thread_key,
            thread_public_id=thread_uid,
            agent_version_id=claimed.agent_version_id,
            agent_version_public_id=version[2],
            version_settings=version[1],
            channel=channel,
            message_id=message.id,
            message_public_id=message.public_id,
            message_seq=seq,
            at=now,
        )
    return stored


async def _record(
    session: AsyncSession,
    workspace_id: int,
    thread_uid: Any,
    messages: Sequence[Any],
    type: EventType,
    changes: list[str] | None = None,
) -> list[events.PendingEvent]:
    """One event per message (ORM objects or plain rows), carrying the message as /v1 shows it."""
    if not messages:
        return []
    renderer = await MessageRenderer(str(thread_uid), OutputMode.TEXT).prepare(session, workspace_id, messages)
    return [
        events.record(
            session, workspace_id=workspace_id, type=type, data=renderer(m), thread_id=thread_uid, changes=changes
        )
        for m in messages
    ]


async def new_message(session: AsyncSession, *, workspace_id: int, thread_id: str, data: MessageCreate) -> NewMessage:
    """POST /v1/threads/{id}/messages: ``data`` with its references resolved, ready to append."""
    repo = MessageRepository(session, workspace_id)
    user_id = None
    if data.user_id is not None:
        user_id = (await repo.get(User, data.user_id, label="user", param="user_id")).id
    in_response_to_id = None
    if data.in_response_to is not None:
        thread_key = await ThreadRepository(session, workspace_id).thread_key(thread_id)
        if thread_key is None:
            raise NotFound(f"no thread with id '{thread_id}'")
        target = await repo.in_thread(thread_key, data.in_response_to)
        if target is None:
            raise InvalidRequest(
                f"in_response_to: no message with id '{data.in_response_to}' in this thread", param="in_response_to"
            )
        in_response_to_id = target.id
    return NewMessage(
        role=data.role,
        content=data.content,
        type=data.type,
        blocks=data.blocks,
        media_url=data.media_url,
        attachments=data.attachments,
        metadata=data.metadata,
        sent_by_user_id=user_id,
        source=data.source,
        in_response_to_id=in_response_to_id,
        tool_calls=data.tool_calls,
        iterations=data.iterations,
    )


async def _thread_key(session: AsyncSession, workspace_id: int, thread_id: str) -> int:
    key = await ThreadRepository(session, workspace_id).thread_key(thread_id)
    if key is None:
        raise NotFound(f"no thread with id '{thread_id}'")
    return key


async def list_messages(
    session: AsyncSession,
    *,
    workspace_id: int,
    thread_id: str,
    limit: int,
    order: Any,
    after: str | None,
    before: str | None,
    role: Role | None = None,
    roles: Collection[Role] | None = None,
    type: MessageType | None = None,
    direction: Direction | None = None,
    status: MessageStatus | None = None,
) -> Page[Message]:
    """One statement in the usual case: the thread and the cursors are resolved by subqueries inside the
    page query. Only an empty page needs telling apart from a missing thread (404) or cursor (400)."""
    repo = MessageRepository(session, workspace_id)
    thread_uid = parse_uuid(thread_id)
    if thread_uid is None:
        raise NotFound(f"no thread with id '{thread_id}'")
    thread_key = repo.thread_key_subquery(thread_uid)
    cursors = {"after": after, "before": before}
    keys = {}
    for param, value in cursors.items():
        if value is not None:
            uid = parse_uuid(value)
            if uid is None:
                raise InvalidRequest(f"{param}: no message with id '{value}' in this thread", param=param)
            keys[param] = repo.seq_subquery(thread_key, uid)
    page = PageRequest(limit=limit, order=order, after=keys.get("after"), before=keys.get("before"))
    result = await repo.page(thread_key, page, role=role, roles=roles, type=type, direction=direction, status=status)
    if not result.items:
        known_thread = await _thread_key(session, workspace_id, thread_id)
        for param, value in cursors.items():
            await _cursor(repo, known_thread, value, param)
    return result


def whole_thread(
    session: AsyncSession, *, workspace_id: int, thread_key: int, roles: Collection[Role] | None = None
) -> AsyncIterator[list[Any]]:
    """Every message of a thread (resolved with threads.service.thread_key), oldest first, in chunks of
    plain rows: for surfaces that answer with the whole thread at once, in bounded memory."""
    return MessageRepository(session, workspace_id).chunks(thread_key, roles=roles)


async def _cursor(repo: MessageRepository, thread_key: int, public_id: str | None, param: str) -> int | None:
    if public_id is None:
        return None
    seq = await repo.seq_of(thread_key, public_id)
    if seq is None:
        raise InvalidRequest(f"{param}: no message with id '{public_id}' in this thread", param=param)
    return seq


async def get_message(session: AsyncSession, *, workspace_id: int, thread_id: str, message_id: str) -> Message:
    thread_key = await _thread_key(session, workspace_id, thread_id)
    message = await MessageRepository(session, workspace_id).in_thread(thread_key, message_id)
    if message is None:
        raise NotFound(f"no message with id '{message_id}' in this thread")
    return message


async def update_message(
    session: AsyncSession, *, workspace_id: int, thread_id: str, message_id: str, data: MessageUpdate
) -> Message:
    message = await get_message(session, workspace_id=workspace_id, thread_id=thread_id, message_id=message_id)
    fields = data.model_fields_set
    changes: list[str] = []
    if "read" in fields and data.read is not None:
        if data.read and message.read_at is None:
            message.read_at = utcnow()
            changes.append("read_at")
        elif not data.read and message.read_at is not None:
            message.read_at = None
            changes.append("read_at")
    if "metadata" in fields and (data.metadata or {}) != message.metadata_:
        message.metadata_ = data.metadata or {}
        changes.append("metadata")
    if changes:
        message.updated_at = utcnow()
        await session.flush()
        await _record(session, workspace_id, parse_uuid(thread_id), [message], EventType.MESSAGE_UPDATED, changes)
    return message


async def delete_message(session: AsyncSession, *, workspace_id: int, thread_id: str, message_id: str) -> None:
    """Delete one message of a thread (404 when it is not there); ``message.deleted`` says so. The thread keeps its
    other messages' places (``seq``) and counts one message fewer; replies to it and runs it started lose the
    reference (the foreign keys set it to NULL)."""
    message = await get_message(session, workspace_id=workspace_id, thread_id=thread_id, message_id=message_id)
    public_id = message.public_id
    await MessageRepository(session, workspace_id).delete_message(message)
    thread_uid = parse_uuid(thread_id)
    events.record(
        session,
        workspace_id=workspace_id,
        type=EventType.MESSAGE_DELETED,
        data={"object": "message", "id": str(public_id), "thread_id": str(thread_uid), "deleted": True},
        thread_id=thread_uid,
    )


@dataclass(frozen=True, slots=True)
class MarkedRead:
    count: int
    at: datetime
    # The newest of the end user's messages marked read now that came in on a provider's channel: (its row id,
    # the channel), for the read receipt the end user may see (``flows.read``).
    newest_theirs: tuple[int, ChannelType] | None


async def mark_read(session: AsyncSession, *, workspace_id: int, thread_id: str, data: MarkRead) -> MarkedRead:
    """Mark messages of a thread read: the ids given, all up to one, or all."""
    thread_key = await _thread_key(session, workspace_id, thread_id)
    repo = MessageRepository(session, workspace_id)
    now = utcnow()
    if data.up_to is not None:
        seq = await repo.seq_of(thread_key, data.up_to)
        if seq is None:
            raise InvalidRequest(f"up_to: no message with id '{data.up_to}' in this thread", param="up_to")
        changed = await repo.mark_read(thread_key, at=now, seq_upto=seq)
    elif data.message_ids is not None:
        uids = [parse_uuid(raw) for raw in data.message_ids]
        known = await repo.existing(thread_key, [u for u in uids if u is not None])
        for raw, uid in zip(data.message_ids, uids, strict=True):
            if uid is None or uid not in known:
                raise InvalidRequest(f"message_ids: no message with id '{raw}' in this thread", param="message_ids")
        changed = await repo.mark_read(thread_key, at=now, public_ids=list(known))
    else:
        changed = await repo.mark_read(thread_key, at=now)
    await _record(session, workspace_id, parse_uuid(thread_id), changed, EventType.MESSAGE_UPDATED, ["read_at"])
    theirs = [m for m in changed if m.direction is Direction.INBOUND and m.external_id and m.integration_id]
    newest = None
    if theirs:
        channel = await repo.channel_of(theirs[-1].integration_id)
        newest = (theirs[-1].id, channel) if channel is not None else None
    return MarkedRead(len(changed), now, newest)


async def user_public_ids(session: AsyncSession, *, workspace_id: int, user_ids: set[int]) -> dict[int, Any]:
    """The public ids of the workspace's users ``user_ids`` (the operators who sent messages)."""
    return await MessageRepository(session, workspace_id).user_public_ids(user_ids)
