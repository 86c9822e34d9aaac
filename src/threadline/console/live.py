"""``GET /console/events/inbox``: the inbox's live stream (Server-Sent Events), for the signed-in operator.

It says *that* the inbox changed, not what: an ``inbox`` event whenever a thread of the operator's workspace
changed (a message stored or updated, a thread created, updated, handed off or deleted), at most one every
``THROTTLE_S`` (events in between are folded into the next). The page then asks for its list and counts again
(console.inbox), through the same services as every other read: nothing the stream says needs trusting, and a
lost event only delays the next redraw.

It is fed by the workspace's event log as ``/v1/events`` is (events.hub: a subscription woken by this
process's commits and, on PostgreSQL, by every process's; the shared tail reads new events once for every
stream). Between wake-ups it holds no database connection. It ends when the client leaves, when the server
shuts down, after ``sse_max_duration_s`` (the browser reconnects), and when the operator's session ends
(signed out, expired, user deleted): the session is looked up again every ``credential_check_interval_s``.
Signed out, it is a 401 (an EventSource does not follow redirects to a sign-in page).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from threadline.console import service
from threadline.console.deps import current_operator
from threadline.console.service import Operator
from threadline.console.web import SESSION_COOKIE, page
from threadline.events.endpoints import EventStreamResponse
from threadline.events.hub import EventHub
from threadline.kit.schemas import MAX_JSON_INT

router = APIRouter()

THROTTLE_S = 0.3  # at most one "inbox" event this often
RETRY_MS = 1000
INBOX_EVENT = b"event: inbox\ndata: {}\n\n"
# The event types after which the inbox may look different (runs and deltas change no row).
_FAMILIES = ("message.", "thread.")
_TRANSIENT = frozenset({"message.delta", "message.tool_call"})


def changes_inbox(event_type: str) -> bool:
    return event_type.startswith(_FAMILIES) and event_type not in _TRANSIENT


@router.get("/events/inbox")
async def inbox_events(request: Request, after: Annotated[int | None, Query(ge=0, le=MAX_JSON_INT)] = None) -> Response:
    operator = await current_operator(request)
    if operator is None:
        return page(
            "error.html",
            status_code=401,
            status=401,
            title="Sign in needed",
            message="Sign in to the console to follow the inbox live.",
        )
    token = request.cookies.get(SESSION_COOKIE, "")
    return EventStreamResponse(
        _stream(request, operator, token, after), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


async def _signed_in(request: Request, token: str) -> bool:
    """Whether the session of ``token`` is still open (one short read, its connection given back at once)."""
    async with request.app.state.read_sessionmaker() as session:
        return await service.operator_for(session, token=token) is not None


async def _stream(request: Request, operator: Operator, token: str, after: int | None) -> AsyncIterator[bytes]:
    settings = request.app.state.settings
    hub: EventHub = request.app.state.events
    metrics = request.app.state.metrics
    workspace_id = operator.workspace_id
    sub = await hub.subscribe(workspace_id)
    metrics.sse_subscribers.inc()
    try:
        yield f"retry: {RETRY_MS}\n\n".encode()
        tail = hub.tail(workspace_id)
        cursor: int | None = None
        if tail is not None:
            await tail.refresh()
            # From where the page was drawn (``after``, the log's head before its reads; never ahead of the log),
            # else from now on.
            cursor = tail.head if after is None else min(after, tail.head)
        now = time.monotonic()
        deadline = now + settings.events.sse_max_duration_s
        check_every = settings.events.credential_check_interval_s
        next_check = now + check_every
        last_write = now
        last_sent = 0.0
        pending = False
        while not sub.closed:
            sub.changed.clear()
            sub.take_transient()  # token deltas: no row of the inbox changes with them
            if tail is not None and cursor is not None:
                await tail.refresh()
                rows = tail.since(cursor)
                if rows is None:  # fell behind the shared tail (a burst): whatever it was, redraw
                    pending = True
                else:
                    pending = pending or any(changes_inbox(row.type) for row in rows)
                cursor = tail.head
            now = time.monotonic()
            if pending and now - last_sent >= THROTTLE_S:
                yield INBOX_EVENT
                pending = False
                last_sent = last_write = now
            if now >= next_check:
                if not await _signed_in(request, token):
                    return
                next_check = time.monotonic() + check_every
            now = time.monotonic()
            if now >= deadline:
                return
            if now - last_write >= settings.events.sse_keepalive_s:
                yield b": keep-alive\n\n"
                last_write = now
            waits = [
                settings.events.poll_interval_s,
                settings.events.sse_keepalive_s - (now - last_write),
                next_check - now,
                deadline - now,
            ]
            if pending:
                waits.append(THROTTLE_S - (now - last_sent))
            timeout = max(0.0, min(waits))
            await sub.wait(timeout)
            if not sub.changed.is_set() and tail is not None:
                tail.want()  # the poll: look at the log even without a wake-up (one may have been lost)
    finally:
        hub.unsubscribe(sub)
        metrics.sse_subscribers.dec()
