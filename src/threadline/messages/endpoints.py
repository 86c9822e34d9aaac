from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.kit.ids import parse_uuid
from threadline.messages import service
from threadline.messages.rendering import OutputMode, render_content
from threadline.messages.repository import MessageRepository
from threadline.messages.schemas import (
    MarkRead,
    MessageCreate,
    MessagePage,
    MessageRead,
    MessageUpdate,
    ReadReceipt,
)
from threadline.models import Message
from threadline.models.enums import Direction, MessageStatus, MessageType, Role
from threadline.web.deps import ReadAuth, SessionDep, WriteAuth
from threadline.web.params import ListQueryDep, list_envelope
from threadline.web.responses import json_response

router = APIRouter(prefix="/threads/{thread_id}", tags=["messages"])

OutputModeQuery = Annotated[
    OutputMode,
    Query(description="text: as stored; plain: Markdown removed; blocks (or structured): typed blocks."),
]


class MessageRenderer:
    """Renders messages (ORM objects or the plain rows of a page) as /v1 message objects (``MessageRead``),
    looking up the public ids they reference in one query per table for the whole batch."""

    def __init__(self, thread_id: str, mode: OutputMode) -> None:
        self.thread_id = thread_id
        self.mode = mode
        self.users: dict[int, Any] = {}
        self.replies_to: dict[int, Any] = {}

    async def prepare(self, session: AsyncSession, workspace_id: int, messages: Sequence[Any]) -> MessageRenderer:
        repo = MessageRepository(session, workspace_id)
        self.users = await repo.user_public_ids({m.sent_by_user_id for m in messages if m.sent_by_user_id})
        self.replies_to = await repo.message_public_ids({m.in_response_to_id for m in messages if m.in_response_to_id})
        return self

    def __call__(self, m: Any) -> dict[str, Any]:
        user = self.users.get(m.sent_by_user_id) if m.sent_by_user_id else None
        reply_to = self.replies_to.get(m.in_response_to_id) if m.in_response_to_id else None
        return {
            "object": "message",
            "id": str(m.public_id),
            "number": m.id,
            "thread_id": self.thread_id,
            "role": m.role,
            "type": m.type,
            "content": render_content(m, self.mode),
            "media_url": m.media_url,
            "attachments": m.attachments,
            "metadata": m.metadata_ if isinstance(m, Message) else m.metadata,
            "direction": m.direction,
            "sent_by": m.sent_by,
            "sent_by_user_id": str(user) if user else None,
            "source": m.source,
            "status": m.status,
            "read": m.read_at is not None,
            "read_at": m.read_at,
            "sent_at": m.sent_at,
            "delivered_at": m.delivered_at,
            "failed_at": m.failed_at,
            "external_id": m.external_id,
            "provider_account_id": m.provider_account_id,
            "segments": m.segments,
            "price": m.price,
            "price_currency": m.price_currency,
            "error_code": m.error_code,
            "error_message": m.error_message,
            "tool_calls": m.tool_calls,
            "iterations": m.iterations,
            "in_response_to": str(reply_to) if reply_to else None,
            "created_at": m.created_at,
            "updated_at": m.updated_at,
        }


async def _render_one(
    session: AsyncSession,
    workspace_id: int,
    thread_id: str,
    message: Message,
    mode: OutputMode = OutputMode.TEXT,
    status_code: int = 200,
) -> Response:
    renderer = await MessageRenderer(_canonical(thread_id), mode).prepare(session, workspace_id, [message])
    return json_response(renderer(message), status_code)


def _canonical(thread_id: str) -> str:
    uid = parse_uuid(thread_id)
    return str(uid) if uid is not None else thread_id


@router.post("/messages", status_code=201, response_model=MessageRead, summary="Add a message to a thread")
async def create_message(thread_id: str, body: MessageCreate, session: SessionDep, auth: WriteAuth) -> Response:
    message = await service.create_message(session, workspace_id=auth.workspace_id, thread_id=thread_id, data=body)
    return await _render_one(session, auth.workspace_id, thread_id, message, status_code=201)


@router.get(
    "/messages",
    response_model=MessagePage,
    summary="List a thread's messages",
    description="Keyset pages over the thread's order. `after`/`before` are chronological whatever `order` says.",
)
async def list_messages(
    thread_id: str,
    session: SessionDep,
    auth: ReadAuth,
    query: ListQueryDep,
    output_mode: OutputModeQuery = OutputMode.TEXT,
    role: Role | None = None,
    type: MessageType | None = None,
    direction: Direction | None = None,
    status: MessageStatus | None = None,
) -> Response:
    page = await service.list_messages(
        session,
        workspace_id=auth.workspace_id,
        thread_id=thread_id,
        limit=query.limit,
        order=query.order,
        after=query.after,
        before=query.before,
        role=role,
        type=type,
        direction=direction,
        status=status,
    )
    renderer = await MessageRenderer(_canonical(thread_id), output_mode).prepare(session, auth.workspace_id, page.items)
    return json_response({"object": "list", **list_envelope(page, renderer)})


@router.get("/messages/{message_id}", response_model=MessageRead, summary="Get one message")
async def get_message(
    thread_id: str, message_id: str, session: SessionDep, auth: ReadAuth, output_mode: OutputModeQuery = OutputMode.TEXT
) -> Response:
    message = await service.get_message(
        session, workspace_id=auth.workspace_id, thread_id=thread_id, message_id=message_id
    )
    return await _render_one(session, auth.workspace_id, thread_id, message, output_mode)


@router.patch("/messages/{message_id}", response_model=MessageRead, summary="Mark one message read or unread; metadata")
async def update_message(
    thread_id: str, message_id: str, body: MessageUpdate, session: SessionDep, auth: WriteAuth
) -> Response:
    message = await service.update_message(
        session, workspace_id=auth.workspace_id, thread_id=thread_id, message_id=message_id, data=body
    )
    return await _render_one(session, auth.workspace_id, thread_id, message)


@router.post("/read", response_model=ReadReceipt, summary="Mark messages read: given ids, all up to one, or all")
async def mark_read(thread_id: str, body: MarkRead, session: SessionDep, auth: WriteAuth) -> ReadReceipt:
    count, at = await service.mark_read(session, workspace_id=auth.workspace_id, thread_id=thread_id, data=body)
    return ReadReceipt(thread_id=_canonical(thread_id), marked=count, read_at=at)
