"""Altur: ``GET /message/{thread_id}`` and ``POST /message`` under ``/altur/api/v1.0`` (seeds 000 and 002,
specs/altur.yaml).

GET answers every message of a thread, oldest first, as a bare JSON array. POST speaks as an end user to an
agent: the message joins their most recent thread (or opens one), the agent answers as it would on /v1, and
the response holds the thread, the stored message and the replies that came within the server's wait bound.
Errors are ``{"error": <status>, "message": "..."}`` with the document's statuses 400, 401 and 404; the other
4xx are its 400 (docs/dialects/altur.md gives the reasons).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import JSONResponse, Response

from threadline.auth.principal import Principal
from threadline.dialects.base import Dialect, authorization_scheme, dialect_auth, json_list_response
from threadline.dialects.mapping import Vendor, channel_word, role_word, shown_roles
from threadline.errors import InvalidRequest, NotFound
from threadline.flows import answer
from threadline.kit.ids import parse_uuid
from threadline.kit.schemas import storage_problem
from threadline.messages import service as messages
from threadline.messages.schemas import MAX_CONTENT
from threadline.models import Integration
from threadline.models.enums import Role, Scope, Source
from threadline.threads import service as threads
from threadline.web.deps import SessionDep, WaitingDep
from threadline.web.errors import is_json_media_type, not_json_hint
from threadline.web.limits import Held
from threadline.web.responses import json_response
from threadline.web.surfaces import ErrorInfo

PREFIX = "/altur/api/v1.0"
VENDOR: Vendor = "altur"
ROLES = shown_roles(VENDOR)
THREAD_NOT_FOUND = "Thread not found"
PARTY_NOT_FOUND = "Agent or EndUser not found"  # the document's own words for POST's 404

router = APIRouter()
_HOW = "'Authorization: api-key KEY'"
ReadAuth = Annotated[Principal, Depends(dialect_auth(authorization_scheme("api-key"), Scope.READ, how=_HOW))]
WriteAuth = Annotated[Principal, Depends(dialect_auth(authorization_scheme("api-key"), Scope.WRITE, how=_HOW))]


@router.get("/message/{thread_id}")
async def get_messages(thread_id: str, session: SessionDep, auth: ReadAuth) -> Response:
    """Every message of the thread, oldest first: a JSON array written a chunk at a time."""
    try:
        key = await threads.thread_key(session, workspace_id=auth.workspace_id, thread_id=thread_id)
    except NotFound:
        # One body for an id that is not a UUID, names nothing, or names another workspace's thread.
        raise NotFound(THREAD_NOT_FOUND) from None
    canonical = str(parse_uuid(thread_id))

    async def render(rows: Sequence[Any]) -> list[dict[str, Any]]:
        users = await _users(session, auth.workspace_id, rows)
        return [_message(m, canonical, users) for m in rows]

    chunks = messages.whole_thread(session, workspace_id=auth.workspace_id, thread_key=key, roles=ROLES)
    return await json_list_response(chunks, render)


class SendMessage(BaseModel):
    """POST /message's body. The document marks nothing required; without any of the three there is nothing
    to send (or no one to send it to), so each is. Fields the document does not name are ignored."""

    model_config = ConfigDict(extra="ignore")

    agent_id: Annotated[StrictStr, Field(max_length=64)]
    end_user_id: Annotated[StrictStr, Field(max_length=64)]
    content: Annotated[StrictStr, Field(min_length=1, max_length=MAX_CONTENT)]

    @field_validator("content")
    @classmethod
    def _storable(cls, value: str) -> str:
        if (problem := storage_problem(value)) is not None:
            raise PydanticCustomError("unstorable_value", problem)
        return value


def _parse(raw: bytes, content_type: str | None) -> SendMessage:
    """The body, or a 400 that names what is wrong with it (the first problem found)."""
    try:
        body = SendMessage.model_validate_json(raw or b"null")
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            # The body is read as JSON whatever its Content-Type says; a form that is not JSON gets the hint.
            where = str((first.get("ctx") or {}).get("error") or "cannot be parsed")
            hint = "" if is_json_media_type(content_type) else f" ({not_json_hint(content_type)})"
            raise InvalidRequest(f"body: not valid JSON: {where}{hint}", param="body") from None
        if first["type"] == "model_type":
            raise InvalidRequest("body: must be a JSON object with agent_id, end_user_id and content") from None
        param = ".".join(str(part) for part in first["loc"])
        raise InvalidRequest(f"{param}: {first['msg']}", param=param) from None
    for param in ("agent_id", "end_user_id"):
        if parse_uuid(getattr(body, param)) is None:
            raise InvalidRequest(f"{param}: must be a UUID", param=param)
    return body


@router.post("/message")
async def send_message(request: Request, session: SessionDep, auth: WriteAuth, waiting: WaitingDep) -> Response:
    """Store the end user's message in their thread with the agent, wait (bounded) for the agent's replies."""
    body = _parse(await request.body(), request.headers.get("content-type"))
    # The answer waits for the agent: a place first, so that a 429 leaves nothing stored.
    place = await request.app.state.limits.take(Held.WAITS, auth)
    try:
        return await _send(request, session, waiting, auth, body)
    finally:
        place.release()


async def _send(
    request: Request, session: AsyncSession, waiting: answer.Waiting, auth: Principal, body: SendMessage
) -> Response:
    workspace_id = auth.workspace_id
    try:
        thread = await threads.thread_between(
            session, workspace_id=workspace_id, agent_id=body.agent_id, end_user_id=body.end_user_id
        )
    except NotFound:
        raise NotFound(PARTY_NOT_FOUND) from None
    thread_key, thread_uid = thread.id, str(thread.public_id)
    # Commits before waiting (the run starts at commit, and the client may rely on the message being stored);
    # no run answers on an inactive (handed-off) or blocked thread.
    answered = await answer.send_and_wait(
        session,
        waiting,
        workspace_id=workspace_id,
        thread_id=thread_uid,
        new=messages.NewMessage(role=Role.USER, content=body.content, source=Source.API),
    )
    message = answered.message
    replies = [m for m in answered.replies if m.role in ROLES]
    # The thread as it is now (a run may have handed it off or tagged it), read outside the write transaction.
    async with request.app.state.read_sessionmaker() as read:
        parties = await threads.thread_parties(read, workspace_id=workspace_id, thread_key=thread_key)
        users = await _users(read, workspace_id, [message, *replies])
    return json_response(
        {
            "thread": _thread(parties),
            "messages": [_message(m, thread_uid, users) for m in replies],
            "in_response_to": _message(message, thread_uid, users),
        }
    )


async def _users(session: AsyncSession, workspace_id: int, rows: Sequence[Any]) -> dict[int, Any]:
    ids = {m.sent_by_user_id for m in rows if m.sent_by_user_id is not None}
    return await messages.user_public_ids(session, workspace_id=workspace_id, user_ids=ids)


def _message(m: Any, thread_id: str, users: dict[int, Any]) -> dict[str, Any]:
    """An Altur Message (ORM object or plain row), keys in the document's order; optional fields we have no
    value for are left out, never null."""
    out: dict[str, Any] = {"thread_id": thread_id, "type": m.type, "content": m.content or ""}
    if m.media_url is not None:
        out["media"] = m.media_url
    out["sent_by"] = role_word(VENDOR, m.role)
    user = users.get(m.sent_by_user_id) if m.sent_by_user_id is not None else None
    if user is not None:
        out["sent_by_user"] = str(user)
    # Required by the document: when it left us (outbound), else when we received it (the end user sent it).
    out["sent_at"] = m.sent_at if m.sent_at is not None else m.created_at
    out["read"] = m.read_at is not None
    return out


def _integration(integration: Integration | None) -> dict[str, Any] | None:
    """Altur's Integration {id, type}; None for a thread without one or on a channel Altur has no word for."""
    if integration is None:
        return None
    word = channel_word(VENDOR, integration.type)
    return {"id": str(integration.public_id), "type": word} if word is not None else None


def _thread(parties: threads.ThreadParties) -> dict[str, Any]:
    thread, agent, end_user, integration = parties
    shown = _integration(integration)
    who: dict[str, Any] = {"id": str(end_user.public_id), "display_name": end_user.display_name}
    channel = channel_word(VENDOR, end_user.channel)
    if channel is not None:
        who["integration_type"] = channel
    if end_user.info is not None:
        who["info"] = end_user.info
    who["integration"] = shown  # required by the document's EndUser, which gives it no schema
    out: dict[str, Any] = {
        "id": str(thread.public_id),
        "agent": {"id": str(agent.public_id), "name": agent.name},
        "end_user": who,
    }
    if shown is not None:
        out["integration"] = shown
    out["updated_at"] = thread.updated_at
    out["active"] = thread.active
    out["blocked"] = thread.blocked
    out["tags"] = [{"id": str(t.public_id), "name": t.name, "color": t.color} for t in thread.tags]
    out["assigned_to"] = [_user(u) for u in thread.assignees]
    return out


def _user(user: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": str(user.public_id), "email": user.email}
    if user.first_name is not None:
        out["first_name"] = user.first_name
    if user.last_name is not None:
        out["last_name"] = user.last_name
    return out


def render_error(err: ErrorInfo) -> Response:
    """``{"error": <status>, "message": "..."}`` with the statuses the document lists: 401 (also for a key
    without the needed scope: the document has no 403), 404, and 400 for every other client error; a
    server error stays a 500 and says nothing about its cause."""
    status, message = err.status_code, err.message
    if status >= 500:
        status, message = 500, "internal server error"
    elif status == 403:
        status = 401
    elif status not in (401, 404):
        status = 400
    return JSONResponse({"error": status, "message": message}, status_code=status)


DIALECT = Dialect(vendor=VENDOR, prefix=PREFIX, router=router, render_error=render_error)
