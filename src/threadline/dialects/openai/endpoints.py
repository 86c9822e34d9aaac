"""OpenAI's Conversations and Responses APIs under ``/openai/v1``: the ``openai`` SDK works against threadline with
only its ``base_url`` and key changed (docs/dialects/openai.md).

A conversation is a thread, its items are the thread's messages, a response is a run. Every route parses
OpenAI's request, calls the services and flows /v1 calls (a response's input is appended as the end user's
message and answered by the thread's agent exactly as a POSTed message is), and renders OpenAI's objects.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from threadline.audit.deps import request_actor
from threadline.auth.principal import Principal
from threadline.dialects.base import Dialect, authorization_scheme, dialect_auth
from threadline.dialects.openai import bodies, ids, parties, render, stream
from threadline.dialects.openai.errors import Refused, render_error
from threadline.errors import InvalidRequest, NotFound
from threadline.events.endpoints import EventStreamResponse
from threadline.flows import answer, send
from threadline.kit.pagination import MAX_LIMIT, Order
from threadline.messages import service as messages
from threadline.messages.service import NewMessage
from threadline.models import Message, Run, Thread
from threadline.models.enums import Role, Scope
from threadline.runs import service as runs
from threadline.threads import service as threads
from threadline.threads.schemas import ThreadUpdate
from threadline.web.deps import SessionDep, SettingsDep, WaitingDep
from threadline.web.limits import Held
from threadline.web.responses import json_response

PREFIX = "/openai/v1"

router = APIRouter()
_HOW = "'Authorization: Bearer KEY' with a threadline API key"
ReadAuth = Annotated[Principal, Depends(dialect_auth(authorization_scheme("Bearer"), Scope.READ, how=_HOW))]
WriteAuth = Annotated[Principal, Depends(dialect_auth(authorization_scheme("Bearer"), Scope.WRITE, how=_HOW))]


# ------------------------------------------------------------------------------------------------ conversations


@router.post("/conversations")
async def create_conversation(
    session: SessionDep, auth: WriteAuth, body: bodies.CreateConversation | None = None
) -> Response:
    """A new thread (agent and end user from the metadata, docs: "Agent and end user"), with its first items."""
    body = body or bodies.CreateConversation()
    news = bodies.input_messages(body.items or [], param="items")
    thread = await parties.open_conversation(session, workspace_id=auth.workspace_id, metadata=body.metadata or {})
    await _append(session, auth.workspace_id, thread, news)
    return json_response(render.conversation(thread))


@router.get("/conversations/{conversation_id}")
async def get_conversation(conversation_id: str, session: SessionDep, auth: ReadAuth) -> Response:
    thread = await _thread(session, auth, conversation_id)
    return json_response(render.conversation(thread))


@router.post("/conversations/{conversation_id}")
async def update_conversation(
    conversation_id: str, body: bodies.UpdateConversation, request: Request, session: SessionDep, auth: WriteAuth
) -> Response:
    """Replace the conversation's metadata. The keys that chose its agent and end user cannot say otherwise now."""
    thread = await _thread(session, auth, conversation_id)
    metadata = body.metadata or {}
    for key in (parties.AGENT_KEY, parties.END_USER_KEY):
        if key in metadata and metadata[key] != (thread.metadata_ or {}).get(key):
            raise InvalidRequest(
                f"metadata.{key}: a conversation keeps the agent and the end user it began with",
                param=f"metadata.{key}",
            )
    updated = await threads.update_thread(
        session,
        workspace_id=auth.workspace_id,
        thread_id=str(thread.public_id),
        data=ThreadUpdate(metadata=metadata),
        actor=request_actor(auth, request),
    )
    return json_response(render.conversation(updated.thread))


@router.delete("/conversations/{conversation_id}")
async def delete_conversation(conversation_id: str, session: SessionDep, auth: WriteAuth) -> Response:
    """Delete the thread with all its messages (and runs)."""
    thread = await _thread(session, auth, conversation_id)
    await threads.delete_thread(session, workspace_id=auth.workspace_id, thread_id=str(thread.public_id))
    return json_response(
        {"id": ids.conversation_id(thread.public_id), "object": "conversation.deleted", "deleted": True}
    )


# ------------------------------------------------------------------------------------------------ items


@router.get("/conversations/{conversation_id}/items")
async def list_items(
    conversation_id: str,
    session: SessionDep,
    auth: ReadAuth,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    order: Literal["asc", "desc"] = "desc",
    after: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The conversation's items, ``limit`` at a time, newest first unless ``order=asc``; ``after`` is the last item
    of the previous page (in the order asked for)."""
    workspace_id = auth.workspace_id
    thread = await _thread(session, auth, conversation_id)
    ascending = order == "asc"
    collected: list[render.Item] = []
    anchor: str | None = None
    if after is not None:
        owner, items = await _owner(session, workspace_id, thread, after, param="after")
        position = next(i for i, item in enumerate(items) if item["id"] == after)
        collected += items[position + 1 :] if ascending else items[:position][::-1]
        anchor = str(owner.public_id)
    page = await messages.list_messages(
        session,
        workspace_id=workspace_id,
        thread_id=str(thread.public_id),
        limit=limit,
        order=Order(order),
        after=anchor if ascending else None,
        before=None if ascending else anchor,
        roles=render.SHOWN_ROLES,
    )
    run_uids = await _run_uids(session, workspace_id, page.items)
    for m in page.items:
        items = render.items_of(m, run_uids)
        collected += items if ascending else items[::-1]
    return json_response(_list(collected[:limit], has_more=len(collected) > limit or page.has_more))


@router.post("/conversations/{conversation_id}/items")
async def add_items(conversation_id: str, body: bodies.AddItems, session: SessionDep, auth: WriteAuth) -> Response:
    """Append items to the conversation. Nothing answers them: ``POST /responses`` asks the agent."""
    thread = await _thread(session, auth, conversation_id)
    news = bodies.input_messages(body.items, param="items")
    stored = await _append(session, auth.workspace_id, thread, news)
    return json_response(_list([item for m in stored for item in render.items_of(m, {})], has_more=False))


@router.get("/conversations/{conversation_id}/items/{item_id}")
async def get_item(conversation_id: str, item_id: str, session: SessionDep, auth: ReadAuth) -> Response:
    thread = await _thread(session, auth, conversation_id)
    _, items = await _owner(session, auth.workspace_id, thread, item_id)
    return json_response(next(item for item in items if item["id"] == item_id))


@router.delete("/conversations/{conversation_id}/items/{item_id}")
async def delete_item(conversation_id: str, item_id: str, session: SessionDep, auth: WriteAuth) -> Response:
    """Delete the message the item is (or is part of: a reply goes with its tool calls); answers the conversation."""
    thread = await _thread(session, auth, conversation_id)
    owner, _ = await _owner(session, auth.workspace_id, thread, item_id)
    await messages.delete_message(
        session, workspace_id=auth.workspace_id, thread_id=str(thread.public_id), message_id=str(owner.public_id)
    )
    return json_response(render.conversation(thread))


# ------------------------------------------------------------------------------------------------ responses


@router.post("/responses")
async def create_response(
    request: Request,
    body: bodies.CreateResponse,
    session: SessionDep,
    auth: WriteAuth,
    waiting: WaitingDep,
    settings: SettingsDep,
) -> Response:
    """Append the input as the end user's message(s) and have the thread's agent answer: the run is the response."""
    news, trigger = _input(body)
    # The answer waits for the agent: a place first, so that a 429 leaves nothing stored.
    place = await request.app.state.limits.take(Held.WAITS, auth)
    streaming = False
    try:
        thread, agent_uid = await _conversation_for(session, auth.workspace_id, body)
        if not thread.active:
            raise Refused(
                "a human operator has this conversation: the agent does not answer until it is handed back. Add "
                "the end user's words with POST /conversations/{id}/items (the operator sees them)",
                code="conversation_with_human",
            )
        if thread.blocked:
            raise Refused("this conversation is blocked: the agent answers nothing in it", code="conversation_blocked")
        run: Run | None = None
        for index, new in enumerate(news):
            new.start_run = index == trigger
            appended = await send.append_message(
                session, workspace_id=auth.workspace_id, thread_id=str(thread.public_id), new=new
            )
            if index == trigger:
                run = appended.run
        if run is None:  # nothing was stored: the refusal rolls the request back
            raise Refused(
                "the agent does not answer in this conversation (its agent has no version, discards what end users "
                "send, or a human took the conversation over a moment ago)",
                code="agent_not_answering",
            )
        if body.stream:
            streamed = await _stream(request, auth, waiting, settings, place, thread, agent_uid, run)
            streaming = True  # the stream gives the place back when it ends
            return streamed
        ran, replies = await answer.wait_for_answer(
            waiting, auth.workspace_id, run, 0 if body.background else waiting.max_s
        )
        return json_response(
            render.response(
                ran, thread_uid=thread.public_id, agent_uid=agent_uid, output=render.output_of(ran, replies)
            )
        )
    finally:
        if not streaming:
            place.release()


@router.get("/responses/{response_id}")
async def get_response(response_id: str, session: SessionDep, auth: ReadAuth, stream: bool | None = None) -> Response:
    if stream:
        raise InvalidRequest(
            "stream: a stored response is read whole; stream it when creating it",
            param="stream",
            code="unsupported_parameter",
        )
    run = await _run(session, auth.workspace_id, response_id, param=None)
    thread, agent, _, _ = await threads.thread_parties(
        session, workspace_id=auth.workspace_id, thread_key=run.thread_id
    )
    replies = await runs.run_replies(session, workspace_id=auth.workspace_id, run=run)
    return json_response(
        render.response(
            run, thread_uid=thread.public_id, agent_uid=agent.public_id, output=render.output_of(run, replies)
        )
    )


def _input(body: bodies.CreateResponse) -> tuple[list[NewMessage], int]:
    """The messages to append and which one the agent answers (the last end-user one); the request's refusals."""
    if body.store is False:
        raise InvalidRequest(
            "store: threadline keeps every conversation, so store: false cannot be honoured",
            param="store",
            code="unsupported_parameter",
        )
    if body.tools:
        raise InvalidRequest(
            "tools: the agent answers with its own tools (its version's); a request cannot add any",
            param="tools",
            code="unsupported_parameter",
        )
    if body.prompt is not None:
        raise InvalidRequest(
            "prompt: the agent's version holds its prompt", param="prompt", code="unsupported_parameter"
        )
    if body.conversation is not None and body.previous_response_id is not None:
        raise InvalidRequest(
            "previous_response_id cannot be used together with conversation", param="previous_response_id"
        )
    if not body.input:
        raise InvalidRequest("input: the end user's message is required", param="input")
    news = bodies.input_messages(body.input, param="input")
    users = [i for i, new in enumerate(news) if new.role is Role.USER]
    if not users:
        raise InvalidRequest("input: needs a user message, the end user's words the agent answers", param="input")
    return news, users[-1]


async def _conversation_for(
    session: AsyncSession, workspace_id: int, body: bodies.CreateResponse
) -> tuple[Thread, uuid.UUID]:
    """The thread the response continues (``conversation``, or ``previous_response_id``'s), else a new one; with
    the public id of the agent that answers there."""
    ref = parties.agent_in_model(body.model)
    wanted = await parties.agent_named(session, workspace_id=workspace_id, ref=ref, param="model") if ref else None
    if body.conversation is not None:
        thread = await parties.conversation_thread(
            session, workspace_id=workspace_id, conversation=body.conversation, param="conversation"
        )
    elif body.previous_response_id is not None:
        previous = await _run(session, workspace_id, body.previous_response_id, param="previous_response_id")
        thread = (
            await threads.thread_parties(session, workspace_id=workspace_id, thread_key=previous.thread_id)
        ).thread
    else:
        agent = wanted or await parties.agent_named(session, workspace_id=workspace_id, ref=None, param="model")
        thread = await parties.open_conversation(
            session, workspace_id=workspace_id, metadata=body.metadata or {}, agent=agent
        )
        return thread, agent.public_id
    _, agent, _, _ = await threads.thread_parties(session, workspace_id=workspace_id, thread_key=thread.id)
    if wanted is not None and wanted.id != agent.id:
        raise InvalidRequest(
            f"model: this conversation's agent is agent:{agent.public_id}, not agent:{wanted.public_id}",
            param="model",
            code="model_mismatch",
        )
    return thread, agent.public_id


async def _stream(
    request: Request,
    auth: Principal,
    waiting: answer.Waiting,
    settings: Any,
    place: Any,
    thread: Thread,
    agent_uid: uuid.UUID,
    run: Run,
) -> Response:
    """Commit, then stream the run's events. The subscription is taken before the commit that lets the run start,
    so nothing the run does can be missed."""
    hub = waiting.hub
    sub = await hub.subscribe(auth.workspace_id, thread_id=thread.public_id)
    unwatch = request.app.state.credentials.watch(auth.api_key_id, sub.close)  # a revoked key ends the stream

    def release() -> None:
        unwatch()
        hub.unsubscribe(sub)
        place.release()

    try:
        await waiting.commit()
    except BaseException:
        release()
        raise
    events = stream.ResponseEvents(run_uid=run.public_id, thread_uid=thread.public_id, agent_uid=agent_uid)
    live = stream.Live(
        sub=sub,
        read_maker=waiting.read_maker,
        workspace_id=auth.workspace_id,
        poll_s=waiting.poll_s,
        keepalive_s=settings.events.sse_keepalive_s,
        deadline_s=waiting.max_s,
    )
    return EventStreamResponse(
        stream.frames(events, run, live),
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        release=release,
    )


# ------------------------------------------------------------------------------------------------ pieces


async def _thread(session: AsyncSession, auth: Principal, conversation_id: str) -> Thread:
    return await parties.conversation_thread(
        session, workspace_id=auth.workspace_id, conversation=conversation_id, param=None
    )


async def _run(session: AsyncSession, workspace_id: int, response_id: str, *, param: str | None) -> Run:
    uid = ids.run_of(response_id)
    try:
        if uid is not None:
            return await runs.get_run(session, workspace_id=workspace_id, run_id=str(uid))
    except NotFound:
        pass
    raise NotFound(f"no response with id '{response_id[:80]}'", param=param)


async def _append(session: AsyncSession, workspace_id: int, thread: Thread, news: list[NewMessage]) -> list[Message]:
    stored = []
    for new in news:
        appended = await send.append_message(
            session, workspace_id=workspace_id, thread_id=str(thread.public_id), new=new
        )
        stored.append(appended.message)
    return stored


async def _run_uids(session: AsyncSession, workspace_id: int, rows: list[Any]) -> dict[int, uuid.UUID]:
    return await runs.run_public_ids(session, workspace_id=workspace_id, run_ids=render.runs_to_name(rows))


async def _owner(
    session: AsyncSession, workspace_id: int, thread: Thread, item_id: str, *, param: str | None = None
) -> tuple[Any, list[render.Item]]:
    """The stored message item ``item_id`` is (or is part of), with all the items it shows as; 404 when none is
    (400 naming ``param`` for a cursor)."""
    ref = ids.parse_item(item_id)
    owner: Any = None
    if ref is not None:
        try:
            owner = await messages.get_message(
                session, workspace_id=workspace_id, thread_id=str(thread.public_id), message_id=str(ref.uid)
            )
        except NotFound:
            if ref.index is not None:  # an item of a PROMPT agent's reply, named by its run
                owner = await _prompt_reply(session, workspace_id, thread, ref.uid)
    items = render.items_of(owner, await _run_uids(session, workspace_id, [owner])) if owner is not None else []
    if not any(item["id"] == item_id for item in items):
        if param is not None:
            raise InvalidRequest(f"{param}: no item with id '{item_id[:80]}' in this conversation", param=param)
        raise NotFound(f"no item with id '{item_id[:80]}' in this conversation")
    return owner, items


async def _prompt_reply(session: AsyncSession, workspace_id: int, thread: Thread, run_uid: uuid.UUID) -> Any:
    try:
        run = await runs.get_run(session, workspace_id=workspace_id, run_id=str(run_uid))
    except NotFound:
        return None
    if run.thread_id != thread.id:
        return None
    replies = await runs.run_replies(session, workspace_id=workspace_id, run=run)
    return next((m for m in replies if render.prompt_reply(m)), None)


def _list(data: list[render.Item], *, has_more: bool) -> dict[str, Any]:
    # OpenAI's lists name their first and last items; an empty one names none (null), as OpenAI's other lists do.
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


DIALECT = Dialect(vendor="openai", prefix=PREFIX, router=router, render_error=render_error)
