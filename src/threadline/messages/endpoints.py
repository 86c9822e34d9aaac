from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.kit.ids import parse_uuid
from threadline.messages import service
from threadline.messages.rendering import MessageRenderer, OutputMode
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
