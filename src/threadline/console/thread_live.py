"""``GET /console/threads/{id}/events``: one thread's events as the console's live updates (htmx's SSE extension).

Each event of the thread becomes an SSE message whose data is an HTML fragment the thread view swaps in (the
listeners are in templates/_thread.html):

- ``tl-message``: new messages, appended to the transcript (an agent's reply also clears its streamed text);
- ``tl-delta``: a piece of the agent's reply as it is written (``message.delta``), appended to the streaming
  bubble; a new model call restarts it (a ``tl-oob`` replacing the text);
- ``tl-oob``: out-of-band swaps: a message's delivery status (``message.updated``), a message removed, the typing
  indicator on (``run.started``, a tool call) or off (the run's end, with a failed run's reason);
- ``tl-thread``: the thread changed (``thread.updated``, handoffs): the view fetches its header, composer and
  panel again;
- ``tl-read``: an end user's message arrived while the thread is open: the view marks it read;
- ``tl-signed-out``: the session ended (signed out, expired, password changed, user deleted): the view goes to
  the sign-in page and the stream ends.

Stored events carry ``id: <seq>``, so a reconnecting browser resumes after the last one it had (Last-Event-ID);
``?after=<seq>`` (the log's head when the view was rendered) makes the first connection miss nothing. The stream
holds no database connection while idle: it wakes on the event hub (this process's commits, other processes'
notifications), reads the log for this thread in a short session, and looks the session up again every
``credential_check_interval_s``. It ends when the client leaves, the session ends, the thread is deleted, or after
``sse_max_duration_s`` (the browser reconnects). Signed out, it is a 401 page (an EventSource follows no redirect).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from markupsafe import escape
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import Response

from threadline.console import service as console
from threadline.console.deps import current_operator
from threadline.console.service import Operator
from threadline.console.thread_view import (
    FMT,
    Person,
    end_user_of,
    operator_names,
    status_view,
    thread_row,
    views_of,
)
from threadline.console.web import SESSION_COOKIE, page
from threadline.errors import ThreadlineError
from threadline.events.endpoints import EventStreamResponse
from threadline.events.hub import EventHub
from threadline.events.repository import EventRepository
from threadline.events.types import EventType
from threadline.kit.schemas import MAX_JSON_INT
from threadline.messages import service as messages
from threadline.threads.schemas import InboxRow
from threadline.web.deps import SessionDep

router = APIRouter()

BATCH = 200  # events read from the log at a time
RETRY_MS = 1000
_LINES = re.compile(r"\r\n|\r|\n")  # what ends a line in an event stream
_RUN_ENDS = frozenset({EventType.RUN_COMPLETED, EventType.RUN_FAILED, EventType.RUN_CANCELLED})
_THREAD_CHANGES = frozenset(
    {EventType.THREAD_UPDATED, EventType.THREAD_HANDOFF_STARTED, EventType.THREAD_HANDOFF_ENDED}
)


def _changes_header(row: Any) -> bool:
    if row.type in _THREAD_CHANGES:
        return True
    return row.type == EventType.MESSAGE_CREATED and (row.data or {}).get("role") in ("user", "assistant")


def frame(event: str, html: str, seq: int | None = None) -> bytes:
    """One SSE message: ``event`` and the fragment as its data, a ``data:`` line per line of it."""
    head = f"id: {seq}\nevent: {event}\n" if seq is not None else f"event: {event}\n"
    lines = _LINES.split(html)
    return (head + "".join(f"data: {line}\n" for line in lines) + "\n").encode()


def _fragment(template: str, operator: Operator, **context: Any) -> str:
    return bytes(page(template, operator=operator, fmt=FMT, **context).body).decode().strip()


def _cursor(after: int | None, last_event_id: str | None, head: int) -> int:
    raw = (last_event_id or "").strip(" \t")
    cursor = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 19 else after
    if cursor is None or cursor > head:
        return head
    return cursor


@router.get("/{thread_id}/events")
async def thread_events(
    thread_id: str,
    request: Request,
    session: SessionDep,
    after: Annotated[int | None, Query(ge=0, le=MAX_JSON_INT)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)] = None,
) -> Response:
    operator = await current_operator(request)
    if operator is None:  # an EventSource follows no redirect to the sign-in page: say it
        return page(
            "error.html",
            status_code=401,
            status=401,
            title="Sign in needed",
            message="Sign in to the console to follow this conversation live.",
        )
    row = await thread_row(session, workspace_id=operator.workspace_id, thread_id=thread_id)
    head = await EventRepository(session, operator.workspace_id).last_seq()
    stream = ThreadStream(
        request,
        operator,
        token=request.cookies.get(SESSION_COOKIE, ""),
        row=row,
        cursor=_cursor(after, last_event_id, head),
    )
    # The request's own session commits (and gives its connection back) as the response starts.
    return EventStreamResponse(stream.frames(), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


class ThreadStream:
    """One open thread view's stream: its cursor in the log, and what it shows of the run being written."""

    def __init__(self, request: Request, operator: Operator, *, token: str, row: InboxRow, cursor: int) -> None:
        state = request.app.state
        self.hub: EventHub = state.events
        self.metrics = state.metrics
        self.read_maker: async_sessionmaker[AsyncSession] = state.read_sessionmaker
        self.settings = state.settings
        self.operator = operator
        self.workspace_id = operator.workspace_id
        self.token = token
        self.thread_id = row.id
        self.thread_uid = uuid.UUID(row.id)
        self.agent_name = row.agent.name
        self.end_user = end_user_of(row)
        self.cursor = cursor
        self.people: list[Person] | None = None
        self.streaming: tuple[Any, Any] | None = None  # (run id, model call) whose text the bubble shows
        self.more = False  # the last read was a full batch: read on without waiting
        self.gone = False

    # ------------------------------------------------------------------------------------ the loop

    async def frames(self) -> AsyncIterator[bytes]:
        sub = await self.hub.subscribe(self.workspace_id, thread_id=self.thread_uid)
        self.metrics.sse_subscribers.inc()
        settings = self.settings
        keepalive_s, poll_s = settings.events.sse_keepalive_s, settings.events.poll_interval_s
        check_every = settings.events.credential_check_interval_s
        now = last_write = time.monotonic()
        next_check = now + check_every
        deadline = now + settings.events.sse_max_duration_s
        try:
            yield f"retry: {RETRY_MS}\n\n".encode()
            while not sub.closed:
                sub.changed.clear()
                # Deltas first: the reply they spell out is stored after them, and clears them when it arrives.
                chunks = [self._transient(t) for t in sub.take_transient()]
                chunks += await self._stored()
                chunks = [c for c in chunks if c]
                if sub.closed:
                    return
                if chunks:
                    yield b"".join(chunks)
                    self.metrics.sse_events_sent.inc(len(chunks))
                    last_write = time.monotonic()
                if self.gone:
                    return
                now = time.monotonic()
                if now >= next_check:
                    if not await self._signed_in():
                        yield frame("tl-signed-out", "<span>signed out</span>")
                        return
                    next_check = time.monotonic() + check_every
                now = time.monotonic()
                if now >= deadline:
                    return
                if self.more:
                    continue
                if now - last_write >= keepalive_s:
                    yield b": keep-alive\n\n"
                    last_write = now
                timeout = min(poll_s, keepalive_s - (now - last_write), next_check - now, deadline - now)
                await sub.wait(max(0.0, timeout))
                tail = self.hub.tail(self.workspace_id)
                if not sub.changed.is_set() and tail is not None:
                    tail.want()  # the poll: look at the log even without a wake-up
        finally:
            self.hub.unsubscribe(sub)
            self.metrics.sse_subscribers.dec()

    async def _signed_in(self) -> bool:
        async with self.read_maker() as session:
            found = await console.operator_for(session, token=self.token)
        return found is not None and found.session_id == self.operator.session_id

    async def _stored(self) -> list[bytes]:
        """The frames of this thread's events committed after the cursor."""
        self.more = False
        tail = self.hub.tail(self.workspace_id)
        if tail is not None:
            await tail.refresh()
            buffered = tail.since(self.cursor)
            if buffered is not None:
                if not buffered:
                    return []
                last = buffered[-1].seq
                if not any(r.thread_id == self.thread_uid for r in buffered):
                    self.cursor = last
                    return []
                rows = await self._read()
                self.cursor = rows[-1].seq if self.more else max(last, rows[-1].seq if rows else last)
                return await self._render(rows)
        rows = await self._read()
        if rows:
            self.cursor = rows[-1].seq
        if not self.more and tail is not None and tail.base is not None:
            # Everything up to the tail's base was committed before this read, which saw it all.
            self.cursor = max(self.cursor, tail.base)
        return await self._render(rows)

    async def _read(self) -> Sequence[Any]:
        async with self.read_maker() as session:
            rows = await EventRepository(session, self.workspace_id).after(
                self.cursor, limit=BATCH, thread_id=self.thread_uid
            )
        self.more = len(rows) == BATCH
        return rows

    # ------------------------------------------------------------------------------------ rendering

    def _transient(self, envelope: dict[str, Any]) -> bytes:
        data = envelope.get("data") or {}
        if envelope.get("type") == EventType.MESSAGE_DELTA and isinstance(data.get("delta"), str):
            key = (data.get("run_id"), data.get("iteration"))
            if key != self.streaming:  # a new reply, or the run's next model call: start the text again
                self.streaming = key
                html = _fragment("_thread_event.html", self.operator, kind="stream", text=data["delta"])
                return frame("tl-oob", html)
            return frame("tl-delta", str(escape(data["delta"])))
        if envelope.get("type") == EventType.MESSAGE_TOOL_CALL and isinstance(data.get("name"), str):
            return self._typing(on=True, tool=data["name"])
        return b""

    def _typing(
        self, *, on: bool, tool: str | None = None, failure: str | None = None, seq: int | None = None
    ) -> bytes:
        html = _fragment(
            "_thread_event.html",
            self.operator,
            kind="typing",
            on=on,
            tool=tool,
            failure=failure,
            agent=self.agent_name,
            clear_stream=not on,
        )
        if not on:
            self.streaming = None
        return frame("tl-oob", html, seq)

    async def _render(self, rows: Sequence[Any]) -> list[bytes]:
        if not rows:
            return []
        created = [r.data.get("id") for r in rows if r.type == EventType.MESSAGE_CREATED and r.data]
        views = await self._views([str(i) for i in created if i]) if created else {}
        out: list[bytes] = []
        # The header (its handoff state: needs a human, or answered by one) follows the thread's changes and the
        # conversation's messages: one refresh, after the last of them in this batch.
        last_change = max((i for i, r in enumerate(rows) if _changes_header(r)), default=None)
        for i, row in enumerate(rows):
            kind, data = row.type, row.data or {}
            if kind == EventType.MESSAGE_CREATED:
                view = views.get(str(data.get("id")))
                if view is None:
                    continue  # deleted meanwhile
                from_agent = data.get("sent_by") == "agent" and data.get("role") in ("assistant", "hidden")
                if from_agent:
                    self.streaming = None
                html = _fragment(
                    "_thread_event.html", self.operator, kind="messages", views=[view], clear_stream=from_agent
                )
                out.append(frame("tl-message", html, row.seq))
                if data.get("role") == "user":
                    out.append(frame("tl-read", "<span>read</span>", row.seq))
            elif kind == EventType.MESSAGE_UPDATED:
                html = _fragment("_thread_event.html", self.operator, kind="status", view=status_view(data))
                out.append(frame("tl-oob", html, row.seq))
            elif kind == EventType.MESSAGE_DELETED:
                html = _fragment("_thread_event.html", self.operator, kind="deleted", message_id=data.get("id"))
                out.append(frame("tl-oob", html, row.seq))
            elif kind == EventType.RUN_STARTED:
                out.append(self._typing(on=True, seq=row.seq))
            elif kind in _RUN_ENDS:
                error = data.get("error") if kind == EventType.RUN_FAILED else None
                failure = (error.get("message") or error.get("code")) if isinstance(error, dict) else None
                out.append(self._typing(on=False, failure=failure, seq=row.seq))
            elif kind in _THREAD_CHANGES and i == last_change:
                out.append(frame("tl-thread", "<span>changed</span>", row.seq))
            if i == last_change and kind == EventType.MESSAGE_CREATED:
                out.append(frame("tl-thread", "<span>changed</span>", row.seq))
            elif kind == EventType.THREAD_DELETED:
                out.append(frame("tl-oob", _fragment("_thread_event.html", self.operator, kind="gone"), row.seq))
                self.gone = True
                break
        return out

    async def _views(self, message_ids: list[str]) -> dict[str, Any]:
        """The new messages as the transcript shows them, read from the database (with what the event leaves
        out: buttons, the operator's name)."""
        found = []
        async with self.read_maker() as session:
            for message_id in message_ids:
                try:
                    found.append(
                        await messages.get_message(
                            session, workspace_id=self.workspace_id, thread_id=self.thread_id, message_id=message_id
                        )
                    )
                except ThreadlineError:
                    continue
            known = {p.row_id for p in self.people or []}
            if self.people is None or any(m.sent_by_user_id and m.sent_by_user_id not in known for m in found):
                self.people = await operator_names(session, workspace_id=self.workspace_id, me=self.operator.user_id)
        return {
            v.id: v
            for v in views_of(found, people=self.people or [], agent_name=self.agent_name, end_user=self.end_user)
        }
