"""Feather: ``GET /api/v1/threads/{threadId}/messages`` under ``/feather`` (seed 004, specs/feather.yaml).

A thread's SMS log, a page at a time: the messages between the end user and the agent (INBOUND and
OUTBOUND), oldest first, with the thread's agent and agent version around them. ``cursor`` is the id of the
last message of the previous page; ``pagination.nextCursor`` names it while more follow. Every error is
``{"status", "message", "code", "success": false}``; the document knows 400, 404 and 500 only, so the other
4xx are its 400 (docs/dialects/feather.md gives the reasons).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.responses import JSONResponse, Response

from threadline.auth.principal import Principal
from threadline.dialects.base import Dialect, api_key_header, dialect_auth
from threadline.dialects.mapping import Vendor, role_word, shown_roles
from threadline.errors import InvalidRequest, NotFound
from threadline.kit.pagination import Order
from threadline.messages import service as messages
from threadline.models.enums import MessageStatus, Role, Scope
from threadline.threads import service as threads
from threadline.web.deps import SessionDep
from threadline.web.responses import json_response
from threadline.web.surfaces import ErrorInfo

PREFIX = "/feather"
VENDOR: Vendor = "feather"
ROLES = shown_roles(VENDOR)
# Feather's direction is the mapping table's word for a role: each direction names the shown roles it covers.
DIRECTIONS: dict[str, frozenset[Role]] = {
    word: frozenset(role for role in ROLES if role_word(VENDOR, role) == word)
    for word in sorted({role_word(VENDOR, role) for role in ROLES})
}
STATUSES = tuple(status.value for status in MessageStatus)
DEFAULT_LIMIT = 50  # the parameter's own text: "default: 50, max: 100"
MAX_LIMIT = 100
THREAD_NOT_FOUND = "Thread not found"

router = APIRouter()
ReadAuth = Annotated[Principal, Depends(dialect_auth(api_key_header("X-API-Key"), Scope.READ, how="'X-API-Key: KEY'"))]


@router.get("/api/v1/threads/{threadId}/messages")
async def get_thread_messages(
    threadId: str,  # the document's name for it
    session: SessionDep,
    auth: ReadAuth,
    limit: str | None = None,
    cursor: str | None = None,
    direction: str | None = None,
    status: str | None = None,
) -> Response:
    size = _limit(limit)
    roles = _roles(direction)
    wanted = _status(status)
    found = await threads.thread_with_agent(session, workspace_id=auth.workspace_id, thread_id=threadId)
    if found is None:
        raise NotFound(THREAD_NOT_FOUND)
    thread = found.row
    if thread.version_public_id is None:
        raise InvalidRequest("the thread's agent has no version: give the agent one (POST /v1/agents/{id}/versions)")
    thread_id = str(thread.thread_public_id)
    try:
        page = await messages.list_messages(
            session,
            workspace_id=auth.workspace_id,
            thread_id=thread_id,
            limit=size,
            order=Order.ASC,
            after=cursor or None,
            before=None,
            roles=roles,
            status=wanted,
        )
    except NotFound:  # deleted since it was read just above
        raise NotFound(THREAD_NOT_FOUND) from None
    except InvalidRequest:
        raise InvalidRequest(f"cursor: no message with id '{(cursor or '')[:64]}' in this thread") from None
    pagination: dict[str, Any] = {"limit": size}
    if page.has_more:
        # The document types nextCursor as a string, never null: on the last page the key is left out.
        pagination["nextCursor"] = str(page.items[-1].public_id)
    return json_response(
        {
            "thread": {
                "agentId": thread.agent_public_id,
                "agentDetails": {
                    "id": thread.agent_public_id,
                    "name": thread.agent_name,
                    "description": thread.agent_description,
                    "agentType": thread.agent_type,
                },
                "agentVersionId": thread.version_public_id,
                "agentVersionDetails": {
                    "id": thread.version_public_id,
                    "version": thread.version_number,
                    "name": thread.version_name,
                    "mode": thread.version_mode,
                    "smsMaxTokens": found.sms.max_tokens,
                    "smsTemperature": found.sms.temperature,
                    "discardInboundSms": bool(thread.version_discard_inbound),
                },
                "messages": _render(page.items, thread_id),
                "pagination": pagination,
            }
        }
    )


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    # ASCII digits only: int() would also take " 5", "+5", "1_0" and other scripts' digits.
    if not (0 < len(raw) <= 3 and raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_LIMIT):
        raise InvalidRequest(f"limit: must be an integer from 1 to {MAX_LIMIT}, got '{raw[:64]}'", param="limit")
    return int(raw)


def _roles(raw: str | None) -> Collection[Role]:
    if raw is None:
        return ROLES
    roles = DIRECTIONS.get(raw)
    if roles is None:
        raise InvalidRequest(f"direction: must be one of {', '.join(DIRECTIONS)}, got '{raw[:64]}'", param="direction")
    return roles


def _status(raw: str | None) -> MessageStatus | None:
    if raw is None:
        return None
    if raw not in STATUSES:
        raise InvalidRequest(f"status: must be one of {', '.join(STATUSES)}, got '{raw[:64]}'", param="status")
    return MessageStatus(raw)


def _render(rows: Sequence[Any], thread_id: str) -> list[dict[str, Any]]:
    return [
        {
            "id": m.public_id,
            "threadId": thread_id,
            "direction": role_word(VENDOR, m.role),
            "messageBody": m.content,
            "status": m.status,
            "twilioMessageSid": m.external_id,
            "twilioAccountSid": m.provider_account_id,
            "twilioNumSegments": m.segments,
            "twilioPrice": m.price,
            "twilioPriceCurrency": m.price_currency,
            "twilioErrorCode": m.error_code,
            "twilioErrorMessage": m.error_message,
            "createdAt": m.created_at,
            "updatedAt": m.updated_at,
            "sentAt": m.sent_at,
            "deliveredAt": m.delivered_at,
            "readAt": m.read_at,
        }
        for m in rows
    ]


_SERVER_ERROR = "Internal server error"


def render_error(err: ErrorInfo) -> Response:
    """``{"status", "message", "code", "success": false}``. The document lists 400, 404 (whose code is
    BAD_REQUEST, as it says) and 500: 404 stays 404, every other 4xx (no or a bad key, a missing scope,
    validation, 405, 409, 413...) is its 400, and every 5xx its 500 with a message that tells nothing."""
    if err.status_code >= 500:
        status, code, message = 500, "INTERNAL_SERVER_ERROR", _SERVER_ERROR
    else:
        status, code, message = (404 if err.status_code == 404 else 400), "BAD_REQUEST", err.message
    return JSONResponse({"status": status, "message": message, "code": code, "success": False}, status_code=status)


DIALECT = Dialect(vendor=VENDOR, prefix=PREFIX, router=router, render_error=render_error)
