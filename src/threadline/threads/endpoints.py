from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from threadline.audit.deps import request_actor
from threadline.flows import threads as flow
from threadline.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT, Order
from threadline.kit.schemas import Timestamp
from threadline.models import Thread
from threadline.models.enums import ChannelType
from threadline.privacy.schemas import ERASED_RESPONSES
from threadline.threads import inbox, service
from threadline.threads.repository import ThreadRepository
from threadline.threads.schemas import (
    InboxView,
    ThreadCounts,
    ThreadCreate,
    ThreadFilters,
    ThreadOrderBy,
    ThreadPage,
    ThreadRead,
    ThreadUpdate,
    thread_read,
)
from threadline.web.deps import ReadAuth, SessionDep, WriteAuth
from threadline.web.params import ListQuery, list_envelope

router = APIRouter(prefix="/threads", tags=["threads"])
# Not /threads/counts: that path is also /threads/{thread_id}'s (a thread id is any string).
counts_router = APIRouter(prefix="/thread_counts", tags=["threads"])

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
    assigned_user_id: Annotated[
        str | None, Query(max_length=64, description="Only threads assigned to this user (and whose view=mine is).")
    ] = None,
    updated_since: Annotated[
        Timestamp | None, Query(description="Only threads updated at or after this time (RFC 3339, with offset).")
    ] = None,
    channel: Annotated[
        ChannelType | None, Query(description="The thread's channel: its integration's type (none: api).")
    ] = None,
) -> ThreadFilters:
    return ThreadFilters(
        agent_id, end_user_id, active, blocked, tag_id, assigned_user_id, updated_since, channel=channel
    )


Filters = Annotated[ThreadFilters, Depends(thread_filters)]


@router.get(
    "",
    response_model=ThreadPage,
    summary="List threads",
    description="By creation (the default), or with `order_by=last_message_at` by last activity: the last message's "
    "time, or the creation time of a thread without messages; newest first unless `order=asc`. In that order "
    "`after` and `before` take the page's `first_cursor` / `last_cursor` (a thread's place moves as messages "
    "arrive), and walking `before=<last_cursor>` never repeats or skips a thread that did not move meanwhile.",
)
async def list_threads(
    session: SessionDep,
    auth: ReadAuth,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size, 1 to 100.")] = DEFAULT_LIMIT,
    order: Annotated[
        Order | None, Query(description="Sorts the page. Default: asc; with order_by=last_message_at, desc.")
    ] = None,
    after: Annotated[
        str | None,
        Query(
            max_length=64,
            description="A thread id: only threads created after it (order_by=last_message_at: a "
            "cursor: only threads after that place).",
        ),
    ] = None,
    before: Annotated[
        str | None,
        Query(
            max_length=64,
            description="A thread id: only threads created before it (order_by=last_message_at: a "
            "cursor: only threads before that place).",
        ),
    ] = None,
    order_by: Annotated[ThreadOrderBy, Query(description="created_at (the default) or last_message_at.")] = (
        ThreadOrderBy.CREATED_AT
    ),
    view: Annotated[
        InboxView,
        Query(
            description="needs_human: handed to a human (active=false) and not answered by one since; mine: assigned "
            "to assigned_user_id (required); unassigned: assigned to nobody; all."
        ),
    ] = InboxView.ALL,
) -> ThreadPage:
    filters = dataclasses.replace(filters, view=view)
    repo = ThreadRepository(session, auth.workspace_id)
    if order_by is ThreadOrderBy.LAST_MESSAGE_AT:
        result, first, last = await inbox.threads_by_activity(
            session,
            workspace_id=auth.workspace_id,
            filters=filters,
            limit=limit,
            order=order or Order.DESC,
            after=after,
            before=before,
        )
        refs = await repo.references(result.items)
        envelope = list_envelope(result, lambda t: thread_read(t, refs))
        return ThreadPage(**envelope, first_cursor=first, last_cursor=last)
    inbox.check_view(filters)
    query = ListQuery(limit=limit, order=order or Order.ASC, after=after, before=before)
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


@counts_router.get(
    "",
    response_model=ThreadCounts,
    summary="How many threads each inbox view holds",
    description="all, needs_human, unassigned, and mine (the threads assigned to `assigned_user_id`; null without "
    "it), each under the other filters given. In one statement.",
)
async def count_threads(session: SessionDep, auth: ReadAuth, filters: Filters) -> ThreadCounts:
    return await inbox.counts(session, workspace_id=auth.workspace_id, filters=filters)
