"""Aitronos ("Freddy"): ``GET /v1/threads/{thread_id}/messages`` under ``/aitronos`` (seed 003,
specs/aitronos.yaml).

An OpenAI-shaped list: ``{"object": "list", "data", "first_id", "last_id", "has_more"}``, keyset pages with
``after``/``before`` message ids and the same semantics as /v1 (chronological whatever ``order`` says),
content in one of four output modes. Assistant messages carry ``tool_calls`` and ``iterations`` when the
message has them recorded. The document shows no error at all: errors are the /v1 envelope, which is
the one of the OpenAI family the document belongs to (docs/dialects/aitronos.md gives the reasons).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from threadline.auth.principal import Principal
from threadline.dialects.base import Dialect, api_key_header, dialect_auth
from threadline.dialects.mapping import Vendor, role_word, shown_roles
from threadline.errors import InvalidRequest, NotFound
from threadline.kit.ids import parse_uuid
from threadline.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT, Order
from threadline.messages import service as messages
from threadline.messages.rendering import OutputMode, render_content
from threadline.models.enums import Role, Scope
from threadline.web.deps import SessionDep
from threadline.web.params import list_envelope
from threadline.web.responses import json_response
from threadline.web.surfaces import ErrorInfo, render_native

PREFIX = "/aitronos"
VENDOR: Vendor = "aitronos"
ROLES = shown_roles(VENDOR)
# One body for every thread this key cannot see: an id that exists nowhere, one that is not a UUID, and
# another workspace's thread are told apart by nothing.
THREAD_NOT_FOUND = "no such thread"
ECHO_MAX = 64  # how much of a rejected cursor the error message repeats

router = APIRouter()
ReadAuth = Annotated[Principal, Depends(dialect_auth(api_key_header("X-API-Key"), Scope.READ, how="'X-API-Key: KEY'"))]


@router.get("/v1/threads/{thread_id}/messages")
async def list_thread_messages(
    thread_id: str,
    session: SessionDep,
    auth: ReadAuth,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    order: Order = Order.ASC,
    after: str | None = None,
    before: str | None = None,
    output_mode: OutputMode = OutputMode.TEXT,
) -> Response:
    thread_uid = parse_uuid(thread_id)
    if thread_uid is None:
        raise NotFound(THREAD_NOT_FOUND)
    canonical = str(thread_uid)
    try:
        page = await messages.list_messages(
            session,
            workspace_id=auth.workspace_id,
            thread_id=canonical,
            limit=limit,
            order=order,
            after=after,
            before=before,
            roles=ROLES,
        )
    except NotFound:
        raise NotFound(THREAD_NOT_FOUND) from None
    except InvalidRequest as exc:
        cursors = {"after": after, "before": before}
        if exc.param not in cursors:
            raise
        # An after/before that names no message of this thread; repeated in part, however long it was.
        given = cursors[exc.param] or ""
        raise InvalidRequest(
            f"{exc.param}: no message with id '{given[:ECHO_MAX]}' in this thread", param=exc.param
        ) from None

    def render(m: Any) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": str(m.public_id),
            "created_at": m.created_at,
            "thread_id": canonical,
            "role": role_word(VENDOR, m.role),
            "content": render_content(m, output_mode),
            "attachments": m.attachments,
            "metadata": m.metadata,
        }
        # Only on the assistant's messages, and only when recorded: [] (recorded, nothing used) is shown as [].
        if m.role == Role.ASSISTANT:
            if m.tool_calls is not None:
                item["tool_calls"] = m.tool_calls
            if m.iterations is not None:
                item["iterations"] = m.iterations
        return item

    return json_response({"object": "list", **list_envelope(page, render)})


def render_error(err: ErrorInfo) -> Response:
    """The /v1 envelope ``{"error": {"type", "code", "message", "param"}}``. A query value FastAPI rejects
    (422) is this surface's 400 ``invalid_request``, like every other bad query value here."""
    if err.status_code == 422:
        err = replace(err, status_code=400, type="invalid_request_error", code="invalid_request")
    return render_native(replace(err, details=None))


DIALECT = Dialect(vendor=VENDOR, prefix=PREFIX, router=router, render_error=render_error)
