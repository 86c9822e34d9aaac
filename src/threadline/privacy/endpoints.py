"""``GET /v1/end_users/{id}/export`` and ``GET /v1/erasures/{id}``; erasures begin with
``DELETE /v1/end_users/{id}?erase=true`` (end_users.endpoints). Both need the ``admin`` scope: an export
is every word a person wrote, an erasure takes all of them away."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import StreamingResponse

from threadline.audit.deps import request_actor
from threadline.privacy import service
from threadline.privacy.export import open_export
from threadline.privacy.schemas import ERASED_RESPONSES, EXPORT_MEDIA_TYPE, ErasureRead
from threadline.web.deps import AdminAuth, SessionDep

router = APIRouter(tags=["privacy"])


@router.get(
    "/end_users/{end_user_id}/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "JSON Lines (`application/x-ndjson`): one JSON object per line, each with a `type`: "
            "`export`, `end_user`, then each `thread` with its `message`, `run`, `event`, `message_status` and "
            "`webhook_delivery` lines, and last `end` with the count of each type (see docs/privacy.md).",
            "content": {EXPORT_MEDIA_TYPE: {"schema": {"type": "string"}}},
        },
        **ERASED_RESPONSES,
    },
    summary="Export everything about an end user",
    description="Everything threadline holds about the end user (GDPR articles 15 and 20), streamed as JSON "
    "Lines. Needs the `admin` scope.",
)
async def export_end_user(
    end_user_id: str, request: Request, session: SessionDep, auth: AdminAuth
) -> StreamingResponse:
    export = await open_export(session, workspace_id=auth.workspace_id, end_user_id=end_user_id)
    # A GET reads outside any transaction: the audit record gets one of its own, before the first byte.
    async with request.app.state.sessionmaker() as write, write.begin():
        await service.record_export(
            write,
            workspace_id=auth.workspace_id,
            end_user_id=str(export.end_user.public_id),
            actor=request_actor(auth, request),
        )
    filename = f"end_user_{export.end_user.public_id}.jsonl"
    return StreamingResponse(
        export.chunks(),
        media_type=EXPORT_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/erasures/{erasure_id}",
    response_model=ErasureRead,
    summary="Get an erasure",
    description="An end user's erasure: its status, its progress (`erased`) and the figures kept. Needs the "
    "`admin` scope.",
)
async def get_erasure(erasure_id: str, session: SessionDep, auth: AdminAuth) -> ErasureRead:
    erasure, stopped = await service.get_erasure(session, workspace_id=auth.workspace_id, erasure_id=erasure_id)
    return ErasureRead.of(erasure, job_dead=stopped)
