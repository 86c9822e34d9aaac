"""The console's thread view: one conversation, its transcript (newest page first, older pages on scroll up), the
composer, the actions on the thread, and the end user's panel.

- ``GET /console/threads/{id}``: inside ``#thread-detail`` for htmx; otherwise the whole inbox page with the thread
  open. ``?message=<id>`` opens the page around that message and marks it.
- ``GET /console/threads/{id}/messages?before=<message id>``: the page before it (the scroll up).
- ``GET /console/threads/{id}/chrome``: the header, composer and panel again, out of band (after a change).
- ``POST /console/threads/{id}/messages``: the operator's message (``take_over=1`` takes the thread first).
- ``POST /console/threads/{id}/{take-over,hand-back,assign,tags,block,unblock,read}``: the actions.
- ``GET /console/threads/{id}/events``: the live stream (thread_live.py).

Every change goes through the flows and services ``/v1`` uses (``flows.send.append_message``,
``flows.threads.update_thread``, ``flows.read.mark_read``, ``tags.service.get_or_create``), done by the signed-in
operator, so it is the same change with the same events, webhooks and audit records as the API call.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from threadline.audit import service as audit
from threadline.audit.deps import client_address
from threadline.console import thread_live
from threadline.console.deps import MAX_FORM_FIELDS, OperatorDep, form_fields
from threadline.console.inbox import inbox_context, query_of
from threadline.console.service import Operator
from threadline.console.thread_view import (
    FMT,
    ThreadContext,
    load_thread,
    older_page,
    operator_names,
    thread_row,
    views_of,
)
from threadline.console.web import is_htmx, page
from threadline.errors import Conflict, ValidationFailed
from threadline.flows import read, send
from threadline.flows import threads as flow
from threadline.kit.pagination import Order
from threadline.messages import service as messages
from threadline.messages.schemas import MarkRead, MessageCreate
from threadline.models.enums import Direction, Role, Source
from threadline.tags import service as tags
from threadline.threads import service as threads
from threadline.threads.schemas import ThreadUpdate
from threadline.web.deps import SessionDep

# Included by console.routes under /console, with its CSRF check.
router = APIRouter(prefix="/threads")
router.include_router(thread_live.router)

MessageQuery = Annotated[str | None, Query(max_length=64)]
MAX_REASON = 500
MAX_UNREAD_PAGES = 10  # the end user's unread messages marked read on open: at most 10 pages of 100


def _partial(request: Request) -> bool:
    """An htmx request that swaps a piece of the page (not one restoring history, which wants the whole page)."""
    return is_htmx(request) and request.headers.get("hx-history-restore-request") != "true"


async def _thread(
    session: AsyncSession,
    operator: Operator,
    thread_id: str,
    message: str | None = None,
    *,
    with_transcript: bool = True,
) -> ThreadContext:
    return await load_thread(
        session,
        workspace_id=operator.workspace_id,
        me=operator.user_id,
        thread_id=thread_id,
        target=message,
        with_transcript=with_transcript,
    )


@router.get("/{thread_id}")
async def thread_view(
    thread_id: str, request: Request, session: SessionDep, operator: OperatorDep, message: MessageQuery = None
) -> Response:
    context = await _thread(session, operator, thread_id, message)
    if _partial(request):
        return page("_thread.html", operator=operator, thread=context, fmt=FMT)
    inbox = await inbox_context(session, operator, query_of(request))
    return page("inbox.html", operator=operator, section="inbox", inbox=inbox, thread=context, fmt=FMT)


@router.get("/{thread_id}/messages")
async def older_messages(
    thread_id: str,
    session: SessionDep,
    operator: OperatorDep,
    before: Annotated[str, Query(min_length=1, max_length=64)],
) -> Response:
    row = await thread_row(session, workspace_id=operator.workspace_id, thread_id=thread_id)
    people = await operator_names(session, workspace_id=operator.workspace_id, me=operator.user_id)
    transcript = await older_page(session, workspace_id=operator.workspace_id, row=row, before=before, people=people)
    return page("_thread_older_page.html", operator=operator, transcript=transcript, thread_id=row.id, fmt=FMT)


@router.get("/{thread_id}/chrome")
async def thread_chrome(thread_id: str, session: SessionDep, operator: OperatorDep) -> Response:
    return _chrome(operator, await _thread(session, operator, thread_id, with_transcript=False))


def _chrome(operator: Operator, context: ThreadContext) -> Response:
    return page("_thread_chrome.html", operator=operator, thread=context, fmt=FMT)


# ------------------------------------------------------------------------------------------------ changes


def _actor(request: Request, operator: Operator) -> audit.Actor:
    return audit.Actor.operator(operator.user_public_id, address=client_address(request))


async def _form_lists(request: Request) -> dict[str, list[str]]:
    """The urlencoded form with every value of each field (a set of checkboxes)."""
    media = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return {}
    text = (await request.body()).decode("utf-8", errors="replace")
    try:
        return parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS * 20)
    except ValueError:
        raise ValidationFailed("too many fields in this form") from None


def _update(data: dict[str, Any]) -> ThreadUpdate:
    try:
        return ThreadUpdate(**data)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ValidationError) -> ValidationFailed:
    first = exc.errors()[0]
    param = ".".join(str(p) for p in first.get("loc", ()) if not isinstance(p, int)) or None
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return ValidationFailed(f"{param}: {message}" if param else message, param=param)


def _reason(fields: dict[str, str]) -> str | None:
    reason = " ".join(fields.get("reason", "").split())
    if len(reason) > MAX_REASON:
        raise ValidationFailed(f"reason: at most {MAX_REASON} characters", param="reason")
    return reason or None


async def _change(
    request: Request,
    session: AsyncSession,
    operator: Operator,
    thread_id: str,
    data: ThreadUpdate,
    *,
    handoff_reason: str | None = None,
) -> Response:
    """Apply ``data`` as the operator (``PATCH /v1/threads/{id}``'s flow), then answer with the new header,
    composer and panel."""
    await flow.update_thread(
        session,
        workspace_id=operator.workspace_id,
        thread_id=thread_id,
        data=data,
        actor=_actor(request, operator),
        handoff_reason=handoff_reason,
    )
    return _chrome(operator, await _thread(session, operator, thread_id, with_transcript=False))


@router.post("/{thread_id}/take-over")
async def take_over(thread_id: str, request: Request, session: SessionDep, operator: OperatorDep) -> Response:
    reason = _reason(await form_fields(request))
    return await _change(request, session, operator, thread_id, _update({"active": False}), handoff_reason=reason)


@router.post("/{thread_id}/hand-back")
async def hand_back(thread_id: str, request: Request, session: SessionDep, operator: OperatorDep) -> Response:
    reason = _reason(await form_fields(request))
    return await _change(request, session, operator, thread_id, _update({"active": True}), handoff_reason=reason)


@router.post("/{thread_id}/block")
async def block(thread_id: str, request: Request, session: SessionDep, operator: OperatorDep) -> Response:
    return await _change(request, session, operator, thread_id, _update({"blocked": True}))


@router.post("/{thread_id}/unblock")
async def unblock(thread_id: str, request: Request, session: SessionDep, operator: OperatorDep) -> Response:
    return await _change(request, session, operator, thread_id, _update({"blocked": False}))


@router.post("/{thread_id}/assign")
async def assign(thread_id: str, request: Request, session: SessionDep, operator: OperatorDep) -> Response:
    """``me=1``: add the operator to the assignees; ``set=1`` with ``assigned_to`` (any number, user ids): the
    assignees become exactly those (none unchecks them all)."""
    fields = await _form_lists(request)
    thread = await threads.get_thread(session, workspace_id=operator.workspace_id, thread_id=thread_id)
    current = [str(u.public_id) for u in thread.assignees]
    if fields.get("me", [""])[0] == "1":
        wanted = list(dict.fromkeys([*current, str(operator.user_public_id)]))
    elif fields.get("set", [""])[0] == "1":
        wanted = list(dict.fromkeys(v.strip() for v in fields.get("assigned_to", []) if v.strip()))
    else:
        raise ValidationFailed("say whom to assign: me=1, or set=1 with assigned_to", param="assigned_to")
    return await _change(request, session, operator, thread_id, _update({"assigned_to": wanted}))


@router.post("/{thread_id}/tags")
async def change_tags(thread_id: str, request: Request, session: SessionDep, operator: OperatorDep) -> Response:
    """``add``: a tag's id or name (a new name creates the tag, as ``tags.service.get_or_create`` does);
    ``remove``: a tag id. The thread's tags become the new set."""
    fields = await form_fields(request)
    add, remove = fields.get("add", "").strip(), fields.get("remove", "").strip()
    if not add and not remove:
        raise ValidationFailed("name a tag to add or remove", param="add")
    if len(add) > 100:
        raise ValidationFailed("add: a tag's name has at most 100 characters", param="add")
    ws = operator.workspace_id
    thread = await threads.get_thread(session, workspace_id=ws, thread_id=thread_id)
    wanted = [str(t.public_id) for t in thread.tags]
    if add:
        tag = await tags.get_or_create(session, ws, add)
        wanted.append(str(tag.public_id))
    if remove:
        wanted = [t for t in wanted if t != remove]
    return await _change(request, session, operator, thread_id, _update({"tags": list(dict.fromkeys(wanted))}))


@router.post("/{thread_id}/read", status_code=204)
async def mark_read(thread_id: str, session: SessionDep, operator: OperatorDep) -> Response:
    """The thread is open: the end user's messages not read yet are marked read (``POST /v1/threads/{id}/read``'s
    flow, which also sends the read receipt their channel shows). The agent's and operators' messages keep
    ``read_at`` for the end user's side of the delivery."""
    ws = operator.workspace_id
    thread = await threads.get_thread(session, workspace_id=ws, thread_id=thread_id)
    canonical = str(thread.public_id)
    unread: list[str] = []
    before: str | None = None
    for _ in range(MAX_UNREAD_PAGES):
        found = await messages.list_messages(
            session,
            workspace_id=ws,
            thread_id=canonical,
            limit=100,
            order=Order.DESC,
            after=None,
            before=before,
            direction=Direction.INBOUND,
        )
        fresh = [str(m.public_id) for m in found.items if m.read_at is None]
        unread += fresh
        if not found.has_more or len(fresh) < len(found.items):
            break  # the rest were read before these
        before = str(found.items[-1].public_id)
    if unread:
        await read.mark_read(session, workspace_id=ws, thread_id=canonical, data=MarkRead(message_ids=unread))
    return Response(status_code=204)


@router.post("/{thread_id}/messages")
async def send_message(thread_id: str, request: Request, session: SessionDep, operator: OperatorDep) -> Response:
    """The operator's reply: stored and sent on the thread's channel as ``POST /v1/threads/{id}/messages`` with
    role ``assistant`` and ``user_id`` (the operator) does. While the agent has the thread the operator must take
    it over first: ``take_over=1`` does it in the same transaction; without it the answer is a 409."""
    fields = await form_fields(request)
    content = fields.get("content", "")
    if not content.strip():
        raise ValidationFailed("write a message first", param="content")
    ws = operator.workspace_id
    thread = await threads.get_thread(session, workspace_id=ws, thread_id=thread_id)
    canonical = str(thread.public_id)
    took_over = False
    if thread.active:
        if fields.get("take_over") != "1":
            raise Conflict("the agent is answering this conversation: take it over to reply", code="agent_has_thread")
        await flow.update_thread(
            session,
            workspace_id=ws,
            thread_id=canonical,
            data=ThreadUpdate(active=False),
            actor=_actor(request, operator),
        )
        took_over = True
    try:
        body = MessageCreate(
            role=Role.ASSISTANT, content=content, user_id=str(operator.user_public_id), source=Source.UI
        )
    except ValidationError as exc:
        raise _invalid(exc) from None
    new = await messages.new_message(session, workspace_id=ws, thread_id=canonical, data=body)
    appended = await send.append_message(session, workspace_id=ws, thread_id=canonical, new=new)
    people = await operator_names(session, workspace_id=ws, me=operator.user_id)
    [view] = views_of([appended.message], people=people, agent_name="Agent")
    context = await _thread(session, operator, canonical, with_transcript=False) if took_over else None
    return page("_thread_sent.html", operator=operator, view=view, thread=context, fmt=FMT)
