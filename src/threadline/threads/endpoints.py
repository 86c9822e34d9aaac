from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from threadline.audit.deps import request_actor
from threadline.flows import threads as flow
from threadline.kit.schemas import Timestamp
from threadline.models import Thread
from threadline.privacy.schemas import ERASED_RESPONSES
from threadline.threads import service
from threadline.threads.repository import ThreadRepository
from threadline.threads.schemas import (
    ThreadCreate,
    ThreadFilters,
    ThreadPage,
    ThreadRead,
    ThreadUpdate,
    thread_read,
)
from threadline.web.deps import ReadAuth, SessionDep, WriteAuth
from threadline.web.params import ListQueryDep, list_envelope

router = APIRouter(prefix="/threads", tags=["threads"])

# Not IdRef: any string is a filter, and one that names nothing matches nothing.
IdFilter = Annotated[str | None, Query(max_length=64)]


async def _render_one(repo: ThreadRepository, thread: Thread) -> ThreadRead:
    return thread_read(thread, await repo.references([thread]))


@router.post(
    "",
    status_code=201,
    response_model=ThreadRead,
    responses=ERASED_RESPONSES,
    summary="Open a thread between an agent and an end user",
)
async def create_thread(body: ThreadCreate, session: SessionDep, auth: WriteAuth) -> ThreadRead:
    thread = await service.create_thread(session, workspace_id=auth.workspace_id, data=body)
    return await _render_one(ThreadRepository(session, auth.workspace_id), thread)


async def thread_filters(
    agent_id: IdFilter = None,
    end_user_id: IdFilter = None,
    active: bool | None = None,
    blocked: bool | None = None,
    tag_id: IdFilter = None,
    assigned_user_id: IdFilter = None,
    updated_since: Annotated[
        Timestamp | None, Query(description="Only threads updated at or after this time (RFC 3339, with offset).")
    ] = None,
) -> ThreadFilters:
    return ThreadFilters(agent_id, end_user_id, active, blocked, tag_id, assigned_user_id, updated_since)


@router.get("", response_model=ThreadPage, summary="List threads")
async def list_threads(
    session: SessionDep,
    auth: ReadAuth,
    query: ListQueryDep,
    filters: Annotated[ThreadFilters, Depends(thread_filters)],
) -> ThreadPage:
    repo = ThreadRepository(session, auth.workspace_id)
    page = await query.resolve(repo, Thread, label="thread")
    result = await service.list_threads(session, workspace_id=auth.workspace_id, page=page, filters=filters)
    refs = await repo.references(result.items)
    return ThreadPage(**list_envelope(result, lambda t: thread_read(t, refs)))


@router.get("/{thread_id}", response_model=ThreadRead, summary="Get a thread")
async def get_thread(thread_id: str, session: SessionDep, auth: ReadAuth) -> ThreadRead:
    repo = ThreadRepository(session, auth.workspace_id)
    return await _render_one(repo, await repo.get_thread(thread_id))


@router.patch("/{thread_id}", response_model=ThreadRead, summary="Pause or resume the AI, block, tag, assign")
async def update_thread(
    thread_id: str, body: ThreadUpdate, request: Request, session: SessionDep, auth: WriteAuth
) -> ThreadRead:
    thread = await flow.update_thread(
        session, workspace_id=auth.workspace_id, thread_id=thread_id, data=body, actor=request_actor(auth, request)
    )
    return await _render_one(ThreadRepository(session, auth.workspace_id), thread)


@router.delete("/{thread_id}", status_code=204, response_class=Response, summary="Delete a thread and its messages")
async def delete_thread(thread_id: str, session: SessionDep, auth: WriteAuth) -> Response:
    await service.delete_thread(session, workspace_id=auth.workspace_id, thread_id=thread_id)
    return Response(status_code=204)
