from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.auth.principal import Principal
from threadline.errors import InvalidRequest
from threadline.events.endpoints import EventStreamResponse, stream_events
from threadline.events.schemas import SSE_EVENT_SCHEMA
from threadline.flows import answer, read, send
from threadline.kit.ids import parse_uuid
from threadline.messages import service
from threadline.messages.rendering import MessageRenderer, OutputMode
from threadline.messages.schemas import (
    MarkRead,
    MessageCreate,
    MessageCreated,
    MessagePage,
    MessageRead,
    MessageUpdate,
    ReadReceipt,
)
from threadline.models import Message, Run
from threadline.models.enums import Direction, MessageStatus, MessageType, Role
from threadline.privacy.schemas import ERASED_RESPONSES
from threadline.runs import service as runs
from threadline.runs.repository import RunRepository
from threadline.runs.schemas import run_read
from threadline.web import idempotency
from threadline.web.deps import ReadAuth, SessionDep, WriteAuth
from threadline.web.limits import Held, Place
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


@router.post(
    "/messages",
    status_code=201,
    response_model=MessageCreated,
    responses={
        201: {
            "description": "The created message (JSON), or with `stream=true` a stream of Server-Sent Events "
            "(the thread's events from this message's `message.created` to the end of its run).",
            "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
        },
        **ERASED_RESPONSES,
    },
    summary="Add a message to a thread",
    description="An end-user message (role `user`) on an active, unblocked thread makes the agent answer: the "
    "response names the `run`. With `wait=N` the response comes when the run has finished or after N seconds "
    "(capped by THREADLINE_MESSAGE_WAIT_MAX_S), whichever is first, and holds the agent's `replies` so far.",
)
async def create_message(
    thread_id: str,
    body: MessageCreate,
    request: Request,
    session: SessionDep,
    auth: WriteAuth,
    wait: Annotated[
        float | None,
        Query(ge=0, le=3600, description="Seconds to wait for the agent's replies (capped by the server)."),
    ] = None,
    stream: Annotated[
        bool,
        Query(
            description="Answer as Server-Sent Events: this message, the run's token deltas, tool calls as they "
            "happen, its reply messages, and its end (`run.completed`/`failed`/`cancelled`), then close."
        ),
    ] = False,
) -> Response:
    if stream and request.headers.get("idempotency-key"):
        raise InvalidRequest(
            "Idempotency-Key cannot be used with stream=true (a live stream cannot be replayed)",
            param="Idempotency-Key",
        )
    # A request that will wait for the agent takes its place first: a 429 must leave nothing stored.
    place = await request.app.state.limits.take(Held.WAITS, auth) if wait is not None or stream else None
    try:
        return await _create(request, session, auth, thread_id, body, wait, stream, place)
    finally:
        if place is not None and not stream:
            place.release()


async def _create(
    request: Request,
    session: AsyncSession,
    auth: Principal,
    thread_id: str,
    body: MessageCreate,
    wait: float | None,
    stream: bool,
    place: Place | None,
) -> Response:
    earlier = idempotency.resumed(request)
    if earlier is not None:
        return await _answer_retry(request, session, auth.workspace_id, thread_id, earlier, wait)
    new = await service.new_message(session, workspace_id=auth.workspace_id, thread_id=thread_id, data=body)
    appended = await send.append_message(session, workspace_id=auth.workspace_id, thread_id=thread_id, new=new)
    message, run = appended.message, appended.run
    repo = RunRepository(session, auth.workspace_id)
    # The message and its new run were rendered once already, for their events: answer with the same objects
    # (the run as its last event shows it: a run born leased to this process is running).
    created, queued = appended.event, appended.run_event
    if stream:
        assert place is not None
        return await _stream_answer(request, auth, created, run, place)
    body_out = dict(created.data)
    replies: list[Message] | None = None
    if wait is not None:
        replies = []
        if run is not None:
            # The run cannot start before this commits: commit now, then wait without holding anything. A
            # retry with the same Idempotency-Key meanwhile (or after this process died) answers from these.
            idempotency.mark_resumable(request, {"message": str(message.public_id), "run": str(run.public_id)})
            run, replies = await answer.wait_for_answer(_waiting(request), auth.workspace_id, run, wait)
    if run is None:
        body_out["run"] = None
    elif queued is not None and wait is None:
        body_out["run"] = queued.data
    else:  # it changed while we waited, or the message joined a run queued earlier
        body_out["run"] = run_read(run, await repo.references([run]))
    body_out["replies"] = await _render_replies(session, auth.workspace_id, thread_id, replies)
    return json_response(body_out, 201)


def _waiting(request: Request) -> answer.Waiting:
    return answer.waiting_for(request.state.db.commit_early, request.app.state)


async def _render_replies(
    session: AsyncSession, workspace_id: int, thread_id: str, replies: list[Message] | None
) -> list[dict[str, Any]] | None:
    if replies is None:
        return None
    renderer = await MessageRenderer(_canonical(thread_id), OutputMode.TEXT).prepare(session, workspace_id, replies)
    return [renderer(r) for r in replies]


async def _answer_retry(
    request: Request,
    session: AsyncSession,
    workspace_id: int,
    thread_id: str,
    earlier: dict[str, Any],
    wait: float | None,
) -> Response:
    """A retry of a POST that committed its message and then waited (see web.idempotency): the same message
    and its run, as they are now (waiting again as the retry asks), and nothing new stored."""
    message = await service.get_message(
        session, workspace_id=workspace_id, thread_id=thread_id, message_id=earlier["message"]
    )
    run = await runs.get_run(session, workspace_id=workspace_id, run_id=earlier["run"])
    replies: list[Message] | None = None
    if wait is not None:
        run, replies = await answer.wait_for_answer(_waiting(request), workspace_id, run, wait)
    else:
        await request.state.db.commit_early()  # nothing to write: let the writers behind this one go
    renderer = await MessageRenderer(_canonical(thread_id), OutputMode.TEXT).prepare(session, workspace_id, [message])
    body_out = renderer(message)
    body_out["run"] = run_read(run, await RunRepository(session, workspace_id).references([run]))
    body_out["replies"] = await _render_replies(session, workspace_id, thread_id, replies)
    return json_response(body_out, 201)


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
    marked = await read.mark_read(session, workspace_id=auth.workspace_id, thread_id=thread_id, data=body)
    return ReadReceipt(thread_id=_canonical(thread_id), marked=marked.count, read_at=marked.at)


async def _stream_answer(request: Request, auth: Principal, created: Any, run: Run | None, place: Place) -> Response:
    """Commit, then stream the thread's events from this message's ``message.created`` until the run ends.

    The subscription is taken before the commit, so this process's hub hands the stream the events the
    commit writes as they are (no read of the log) and nothing the run does after it can be missed."""
    hub = request.app.state.events
    thread_uid = created.thread_id
    workspace_id = auth.workspace_id
    sub = await hub.subscribe(workspace_id, thread_id=thread_uid)

    def release() -> None:
        hub.unsubscribe(sub)
        place.release()

    try:
        await request.state.db.commit_early()
    except BaseException:
        release()
        raise
    assert created.seq is not None  # numbered by the commit just above
    settings = request.app.state.settings
    frames = stream_events(
        request,
        workspace_id=workspace_id,
        api_key_id=auth.api_key_id,
        cursor=created.seq - 1,
        thread_id=thread_uid,
        patterns=[],
        keepalive_s=settings.events.sse_keepalive_s,
        poll_s=settings.events.poll_interval_s,
        until_run=str(run.public_id) if run is not None else None,
        deadline=time.monotonic() + (settings.runs.wait_max_s if run is not None else 0),
        sub=sub,
    )
    return EventStreamResponse(
        frames,
        status_code=201,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        release=release,
    )
