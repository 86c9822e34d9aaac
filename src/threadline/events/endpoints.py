"""``GET /v1/events`` and ``GET /v1/threads/{id}/events``: the event log as Server-Sent Events.

Each stored event is one SSE message: ``id:`` its seq, ``event:`` its type, ``data:`` the envelope
(events.schemas). A client resumes with ``Last-Event-ID`` (browsers send it on reconnect) or
``?after=N`` and gets every event after N exactly once, in order; without either it gets what
happens from now on. Transient events (token deltas) come without ``id:``. A comment line every
``sse_keepalive_s`` keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Query, Request
from pydantic import Field
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from threadline.auth.principal import Principal
from threadline.errors import InvalidRequest, NotFound
from threadline.events.hub import EventHub, Subscription
from threadline.events.repository import EventRepository
from threadline.events.schemas import SSE_EVENT_SCHEMA, encode, envelope, sse_frame
from threadline.events.types import event_patterns, matches, valid_pattern
from threadline.kit.ids import parse_uuid
from threadline.kit.schemas import MAX_JSON_INT
from threadline.threads.repository import ThreadRepository
from threadline.web.deps import ReadAuth, SessionDep
from threadline.web.limits import Held
from threadline.web.openapi import ERROR_RESPONSES

router = APIRouter(tags=["events"])

BATCH = 500
RETRY_MS = 1000

_SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    # The route's response class is the event stream; its errors are still JSON.
    **{
        code: {
            "description": spec["description"],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        }
        for code, spec in ERROR_RESPONSES.items()
    },
    200: {
        "description": (
            "A stream of Server-Sent Events. Each stored event: `id: <seq>`, `event: <type>`, `data: <envelope>`, "
            "where the envelope is `{object, id, seq, type, timestamp, thread_id, data, changes?}`. Transient "
            "events (token deltas) have no `id:` line and `id`/`seq` null. Lines starting with `:` are keep-alives."
        ),
        "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
    },
}

AfterQuery = Annotated[
    int | None,
    Query(ge=0, le=MAX_JSON_INT, description="Resume after this seq (0: from the oldest kept). Default: from now on."),
]
# What _patterns takes: patterns separated by commas, with spaces or tabs around them; empty items are ignored.
_PATTERN = "|".join(re.escape(p) for p in event_patterns())
TYPES_PATTERN = rf"^[ \t]*({_PATTERN})?[ \t]*(,[ \t]*({_PATTERN})?[ \t]*)*$"
TypesQuery = Annotated[
    Annotated[str, Field(max_length=1000, json_schema_extra={"pattern": TYPES_PATTERN})] | None,
    Query(description="Comma-separated event types to send (`message.*` for a family)."),
]
# A seq, or empty (then `after` applies).
LAST_EVENT_ID = re.compile(r"^[0-9]{0,19}$")
LastEventIdHeader = Annotated[
    Annotated[str, Field(max_length=32, json_schema_extra={"pattern": LAST_EVENT_ID.pattern})] | None,
    Header(alias="Last-Event-ID", description="Resume after this seq; wins over `after`."),
]


class EventStreamResponse(StreamingResponse):
    """A streaming response that notices a client hanging up at once (not at the next write), whatever
    ASGI version the server speaks, so a subscription ends with its connection."""

    media_type = "text/event-stream"

    def __init__(
        self,
        content: Any,
        status_code: int = 200,  # FastAPI reads this default for the OpenAPI document
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        *,
        release: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(content, status_code=status_code, headers=headers, media_type=media_type)
        self.release = release  # ends a subscription taken before the body starts, however it ends

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def run_then_cancel(func: Any) -> None:
                    await func()
                    group.cancel_scope.cancel()

                group.start_soon(run_then_cancel, lambda: self.stream_response(send))
                group.start_soon(run_then_cancel, lambda: self.listen_for_disconnect(receive))
        finally:
            if self.release is not None:
                self.release()


def _cursor(after: int | None, last_event_id: str | None) -> int | None:
    raw = (last_event_id or "").strip(" \t")  # what HTTP calls whitespace around a header's value
    if not raw:
        return after
    # A pattern, not str.isdigit(), which also takes digits int() cannot read (a header may carry "²").
    if not LAST_EVENT_ID.fullmatch(raw):
        raise InvalidRequest("Last-Event-ID: expected the seq (an integer) of an event", param="Last-Event-ID")
    return int(raw)


def _patterns(types: str | None) -> list[str]:
    if types is None:
        return []
    patterns = [t.strip(" \t") for t in types.split(",") if t.strip(" \t")]
    for p in patterns:
        if not valid_pattern(p):
            raise InvalidRequest(f"types: unknown event type '{p}'", param="types")
    return patterns


async def _open(
    request: Request,
    auth: Principal,
    session: Any,
    *,
    after: int | None,
    last_event_id: str | None,
    types: str | None,
    thread_id: uuid.UUID | None,
) -> EventStreamResponse:
    cursor = _cursor(after, last_event_id)
    patterns = _patterns(types)
    settings = request.app.state.settings
    workspace_id = auth.workspace_id
    head = await EventRepository(session, workspace_id).last_seq()
    if cursor is None:
        cursor = head
    elif cursor > head:
        param = "Last-Event-ID" if last_event_id else "after"
        raise InvalidRequest(f"{param}: no event {cursor} in this workspace yet (the last is {head})", param=param)
    place = await request.app.state.limits.take(Held.STREAMS, auth)
    stream = stream_events(
        request,
        workspace_id=workspace_id,
        api_key_id=auth.api_key_id,
        cursor=cursor,
        thread_id=thread_id,
        patterns=patterns,
        keepalive_s=settings.events.sse_keepalive_s,
        poll_s=settings.events.poll_interval_s,
        deadline=time.monotonic() + settings.events.sse_max_duration_s,
    )
    return EventStreamResponse(
        stream, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}, release=place.release
    )


_RUN_ENDS = frozenset({"run.completed", "run.failed", "run.cancelled"})


def _ends(until_run: str | None, event_type: str, object_id: str | None) -> bool:
    return until_run is not None and event_type in _RUN_ENDS and object_id == until_run


async def stream_events(
    request: Request,
    *,
    workspace_id: int,
    api_key_id: int,
    cursor: int,
    thread_id: uuid.UUID | None,
    patterns: list[str],
    keepalive_s: float,
    poll_s: float,
    until_run: str | None = None,
    deadline: float | None = None,
    sub: Subscription | None = None,
) -> AsyncIterator[bytes]:
    """The stream's frames. ``until_run``: end after that run's final event (run.completed, .failed or
    .cancelled); ``deadline`` (time.monotonic()): end then in any case. ``sub``: a subscription the caller
    took before committing what the stream starts with (it is this stream's from then on). The stream
    ends once ``api_key_id`` is revoked (auth.watch), in whichever process."""
    read_maker = request.app.state.read_sessionmaker
    metrics = request.app.state.metrics
    hub: EventHub = request.app.state.events
    # Subscribed before the first read: anything committed after ``cursor`` is either read below or
    # wakes this subscription.
    if sub is None:
        sub = await hub.subscribe(workspace_id, thread_id=thread_id)
    unwatch = request.app.state.credentials.watch(api_key_id, sub.close)
    metrics.sse_subscribers.inc()
    try:
        yield f"retry: {RETRY_MS}\n\n".encode()
        last_write = time.monotonic()
        while not sub.closed:
            sub.changed.clear()
            chunks: list[bytes] = []
            full = False
            tail = hub.tail(workspace_id)
            if tail is not None:
                await tail.refresh()
            buffered = tail.since(cursor) if tail is not None else None
            done = False
            if buffered is not None:
                for item in buffered:
                    if thread_id is None or item.thread_id == thread_id:
                        if not patterns or any(matches(p, item.type) for p in patterns):
                            chunks.append(item.frame)
                        done = done or _ends(until_run, item.type, item.object_id)
                    cursor = item.seq
            else:  # behind the shared tail (resuming): read the log itself until caught up
                reach = tail.base if tail is not None else None
                async with read_maker() as session:
                    repo = EventRepository(session, workspace_id)
                    rows = await repo.after(cursor, limit=BATCH, thread_id=thread_id)
                for row in rows:
                    cursor = row.seq
                    if not patterns or any(matches(p, row.type) for p in patterns):
                        chunks.append(sse_frame(row.type, encode(envelope(row)), row.seq))
                    done = done or _ends(until_run, row.type, row.data.get("id") if row.data else None)
                full = len(rows) == BATCH
                if not full and reach is not None:
                    # Everything up to the tail's base was committed before this read, so this read has
                    # seen it all (a thread's stream may have found none): continue from the tail.
                    cursor = max(cursor, reach)
            for transient in sub.take_transient():
                if not patterns or any(matches(p, transient["type"]) for p in patterns):
                    chunks.append(sse_frame(transient["type"], encode(transient), None))
            if sub.closed:
                return
            if chunks:
                yield b"".join(chunks)
                metrics.sse_events_sent.inc(len(chunks))
                last_write = time.monotonic()
            if done or (deadline is not None and time.monotonic() >= deadline):
                return
            if full:
                continue
            idle = time.monotonic() - last_write
            if idle >= keepalive_s:
                yield b": keep-alive\n\n"
                last_write = time.monotonic()
                idle = 0
            timeout = min(poll_s, keepalive_s - idle)
            if deadline is not None:
                timeout = max(0.0, min(timeout, deadline - time.monotonic()))
            await sub.wait(timeout)
            if not sub.changed.is_set() and tail is not None:
                tail.want()  # the poll: look at the log even without a wake-up
    finally:
        unwatch()
        hub.unsubscribe(sub)
        metrics.sse_subscribers.dec()


@router.get(
    "/events",
    summary="Stream the workspace's events (Server-Sent Events)",
    response_class=EventStreamResponse,
    responses=_SSE_RESPONSE,
)
async def workspace_events(
    request: Request,
    session: SessionDep,
    auth: ReadAuth,
    after: AfterQuery = None,
    types: TypesQuery = None,
    last_event_id: LastEventIdHeader = None,
) -> EventStreamResponse:
    return await _open(request, auth, session, after=after, last_event_id=last_event_id, types=types, thread_id=None)


@router.get(
    "/threads/{thread_id}/events",
    summary="Stream one thread's events (Server-Sent Events)",
    response_class=EventStreamResponse,
    responses=_SSE_RESPONSE,
)
async def thread_events(
    thread_id: str,
    request: Request,
    session: SessionDep,
    auth: ReadAuth,
    after: AfterQuery = None,
    types: TypesQuery = None,
    last_event_id: LastEventIdHeader = None,
) -> EventStreamResponse:
    uid = parse_uuid(thread_id)
    if uid is None or await ThreadRepository(session, auth.workspace_id).thread_key(thread_id) is None:
        raise NotFound(f"no thread with id '{thread_id}'")
    return await _open(request, auth, session, after=after, last_event_id=last_event_id, types=types, thread_id=uid)
