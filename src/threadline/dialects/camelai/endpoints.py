"""camelAI: ``GET /api/v1/threads/{thread_id}/messages`` under ``/camelai`` (seed 001, specs/camelai.yaml).

Threads and messages are named by their integer ids, their ``number`` in the workspace (never a row id,
which counts every workspace's rows); every message of the thread comes back oldest first, with
``message_count``. The document knows two errors, 403 and 404, both ``{"error": "..."}``: a request
without a valid key is refused with the 403, as the issue and the document's ``security`` ask.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.responses import JSONResponse, Response

from threadline.auth.principal import Principal
from threadline.dialects.base import Dialect, authorization_scheme, dialect_auth, json_list_response
from threadline.dialects.mapping import role_word, shown_roles, source_word
from threadline.errors import NotFound
from threadline.messages import service as messages
from threadline.models.enums import Scope
from threadline.threads import service as threads
from threadline.web.deps import SessionDep
from threadline.web.surfaces import ErrorInfo

PREFIX = "/camelai"
ROLES = shown_roles("camelai")

router = APIRouter()
ReadAuth = Annotated[
    Principal, Depends(dialect_auth(authorization_scheme("Bearer"), Scope.READ, how="'Authorization: Bearer KEY'"))
]


@router.get("/api/v1/threads/{thread_id}/messages")
async def threads_messages_retrieve(thread_id: str, session: SessionDep, auth: ReadAuth) -> Response:
    number = _integer_id(thread_id)
    key = await threads.thread_key(session, workspace_id=auth.workspace_id, thread_id=number)
    chunks = messages.whole_thread(session, workspace_id=auth.workspace_id, thread_key=key, roles=ROLES)
    return await json_list_response(
        chunks,
        _render,
        head=b'{"thread_id":%d,"messages":[' % number,
        tail=lambda count: b'],"message_count":%d}' % count,
    )


def _integer_id(raw: str) -> int:
    # The document types thread_id as an integer; anything else names no thread.
    try:
        return int(raw, 10)
    except ValueError:
        raise NotFound(f"no thread with id '{raw[:64]}'") from None


async def _render(rows: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": m.number,
            "role": role_word("camelai", m.role),
            "content": m.content,
            "created_at": m.created_at,
            "metadata": m.metadata,
            "source": source_word("camelai", m.source),
        }
        for m in rows
    ]


def render_error(err: ErrorInfo) -> Response:
    """``{"error": "..."}``. The document has no 401: a missing or wrong key is its 403 ("access denied")."""
    return JSONResponse({"error": err.message}, status_code=403 if err.status_code == 401 else err.status_code)


DIALECT = Dialect(vendor="camelai", prefix=PREFIX, router=router, render_error=render_error)
