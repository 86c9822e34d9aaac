"""This process's live subscribers, and the wake-ups that reach them from every process.

A subscriber is woken, never handed the events: on a wake-up it reads the log after its own cursor,
so the event table stays the one source of truth. The streams of one workspace share a
``WorkspaceTail``: one query per wake-up reads the new events for all of them and encodes each once;
a stream further behind than the tail reaches (a client resuming) reads the log itself until it
catches up. Wake-ups come from commits in this process
(``events.service`` calls ``notify_stored``) and, on PostgreSQL, from ``LISTEN threadline_events``
on one connection per process, which hears commits in every process. A lost notification (the
listening connection dropped, a SQLite database shared by two processes) only delays: subscribers
also look every ``poll_interval_s``, and all of them are woken when the listener reconnects.

Transient events (token deltas) have no row: they are handed to subscribers as they are, through
``NOTIFY threadline_transient`` on PostgreSQL and directly otherwise, and only to those connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from threadline.events import service
from threadline.events.repository import EventRepository, notify_through
from threadline.events.schemas import encode, envelope, sse_frame, transient_envelope
from threadline.events.transient import ORIGIN, TRANSIENT_CHANNEL, notify_payload, register_hub
from threadline.kit.pglisten import PgListener

log = structlog.get_logger(__name__)

LISTENER_NAME = "threadline-events"  # application_name of the listening connection, for operators
TAIL_CAPACITY = 1024  # events kept per workspace with live streams in this process
TAIL_BATCH = 500
_TRANSIENT_BACKLOG = 1000  # per subscriber; a reader that falls further behind loses the oldest deltas


class Subscription:
    """One live stream's mailbox: a flag that says "look again", and the transient events for it."""

    def __init__(self, workspace_id: int, thread_id: uuid.UUID | None) -> None:
        self.workspace_id = workspace_id
        self.thread_id = thread_id
        self.changed = asyncio.Event()
        self.transient: deque[dict[str, Any]] = deque(maxlen=_TRANSIENT_BACKLOG)
        self.closed = False

    def wake(self) -> None:
        self.changed.set()

    def close(self) -> None:
        """End the stream reading this subscription (its key was revoked): it stops at its next look."""
        self.closed = True
        self.changed.set()

    def push(self, envelope: dict[str, Any]) -> None:
        if self.thread_id is not None and envelope.get("thread_id") != str(self.thread_id):
            return
        self.transient.append(envelope)
        self.changed.set()

    def take_transient(self) -> list[dict[str, Any]]:
        items = list(self.transient)
        self.transient.clear()
        return items

    async def wait(self, seconds: float) -> None:
        """Until woken or ``seconds`` pass."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), seconds)


@dataclass(frozen=True, slots=True)
class TailRow:
    seq: int
    type: str
    thread_id: uuid.UUID | None
    object_id: str | None  # the id of what the event is about (its data's "id")
    frame: bytes  # the whole SSE message, encoded once for every stream


class WorkspaceTail:
    """The newest events of one workspace, read once per wake-up for all of this process's streams.

    It holds every event after ``base`` up to ``head`` (seqs are contiguous: the log has no gaps), at most
    ``capacity`` of them. ``want()`` (a wake-up) asks for a read; concurrent ``refresh()`` calls after
    one wake-up make a single query.
    """

    def __init__(
        self, workspace_id: int, read_maker: async_sessionmaker[AsyncSession], capacity: int = TAIL_CAPACITY
    ) -> None:
        self.workspace_id = workspace_id
        self.read_maker = read_maker
        self.capacity = capacity
        self.rows: list[TailRow] = []
        self.base: int | None = None
        self.head = 0
        self._wanted = 1  # the first refresh reads the head
        self._fetched = 0
        self._lock = asyncio.Lock()

    def want(self, upto: int | None = None) -> None:
        """Ask for a read; ``upto``: the newest seq the caller knows of (no read when the tail has it)."""
        if upto is not None and self.base is not None and upto <= self.head:
            return
        self._wanted += 1

    def absorb(self, events: Sequence[Any]) -> None:
        """Take events this process has just committed (numbered, contiguous) without reading them back.

        A fresh tail starts at them; a tail whose head they continue appends them; one they do not continue
        (another process committed in between, not read yet) is asked to read instead."""
        if not events:
            return
        first, last = events[0].seq, events[-1].seq
        if self.base is not None and last <= self.head:
            return  # read already
        if self.base is None:
            self.base = self.head = first - 1
            self._fetched = self._wanted  # nothing older is needed: streams behind the base read the log
        if first != self.head + 1:
            self.want()
            return
        for e in events:
            self.rows.append(TailRow(e.seq, e.type, e.thread_id, _object_id(e.data), _encode_row(e)))
        self.head = last
        self._trim()

    async def refresh(self) -> None:
        async with self._lock:
            if self._fetched >= self._wanted:
                return
            target = self._wanted
            async with self.read_maker() as session:
                repo = EventRepository(session, self.workspace_id)
                if self.base is None:
                    last = await repo.last_seq()
                    if self.base is None:  # not absorbed meanwhile
                        self.base = self.head = last
                while True:
                    rows = await repo.after(self.head, limit=TAIL_BATCH)
                    for row in rows:
                        if row.seq <= self.head:
                            continue  # absorbed from a local commit while this read was under way
                        self.rows.append(
                            TailRow(row.seq, row.type, row.thread_id, _object_id(row.data), _encode_row(row))
                        )
                        self.head = row.seq
                    if len(rows) < TAIL_BATCH:
                        break
            self._trim()
            self._fetched = target

    def _trim(self) -> None:
        if len(self.rows) > 2 * self.capacity:
            self.rows = self.rows[-self.capacity :]
            self.base = self.rows[0].seq - 1

    def since(self, cursor: int) -> list[TailRow] | None:
        """The events after ``cursor``, or None when the tail does not reach back that far."""
        if self.base is None or cursor < self.base:
            return None
        start = cursor - self.base
        if start and (start > len(self.rows) or self.rows[start - 1].seq != cursor):
            return None  # not contiguous (never expected): let the caller read the log
        return self.rows[start:]


def _object_id(data: Any) -> str | None:
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _encode_row(row: Any) -> bytes:
    return sse_frame(row.type, encode(envelope(row)), row.seq)


class EventHub:
    def __init__(
        self,
        *,
        read_maker: async_sessionmaker[AsyncSession] | None = None,
        postgres_dsn: str | None = None,
        reconnect_delay_s: float = 1.0,
    ) -> None:
        self.read_maker = read_maker
        self.postgres_dsn = postgres_dsn
        self._subscriptions: dict[int, set[Subscription]] = {}
        self._tails: dict[int, WorkspaceTail] = {}
        self._listener = (
            PgListener(
                postgres_dsn,
                {service.NOTIFY_CHANNEL: self._on_stored, TRANSIENT_CHANNEL: self._on_transient},
                name=LISTENER_NAME,
                # Anything committed while we were not listening is read now.
                on_connect=self._wake_all,
                reconnect_delay_s=reconnect_delay_s,
            )
            if postgres_dsn is not None
            else None
        )
        self._publish_lock = asyncio.Lock()  # one query at a time on the listener's connection
        self._closing = False
        service.add_committed_listener(self.notify_stored)
        register_hub(self)

    # ------------------------------------------------------------------------------------ subscribers

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscriptions.values())

    async def subscribe(self, workspace_id: int, *, thread_id: uuid.UUID | None = None) -> Subscription:
        """A new subscription; on PostgreSQL the listener is started (and awaited) first, so that a
        commit made after this returns is certain to wake it."""
        await self.start()
        sub = Subscription(workspace_id, thread_id)
        if self._closing:
            sub.closed = True
        self._subscriptions.setdefault(workspace_id, set()).add(sub)
        if self.read_maker is not None and workspace_id not in self._tails:
            self._tails[workspace_id] = WorkspaceTail(workspace_id, self.read_maker)
        return sub

    def tail(self, workspace_id: int) -> WorkspaceTail | None:
        """The shared tail of a workspace that has subscribers here (None without a read sessionmaker)."""
        return self._tails.get(workspace_id)

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subscriptions.get(sub.workspace_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscriptions[sub.workspace_id]
                self._tails.pop(sub.workspace_id, None)

    def notify_stored(self, workspace_id: int, events: Sequence[Any] | None = None, *, upto: int | None = None) -> None:
        """Events of ``workspace_id`` were committed: ``events`` when this process committed them (the tail
        takes them as they are), ``upto`` the newest seq when a notification says so (no read if the tail
        has it), neither when unknown (the tail reads)."""
        tail = self._tails.get(workspace_id)
        if tail is not None:
            if events:
                tail.absorb(events)
            else:
                tail.want(upto)
        for sub in self._subscriptions.get(workspace_id, ()):
            sub.wake()

    def _wake_all(self) -> None:
        for workspace_id in list(self._subscriptions):
            self.notify_stored(workspace_id)

    # ------------------------------------------------------------------------------------ transient

    async def publish_transient(
        self, workspace_id: int, *, type: str, data: dict[str, Any], thread_id: str | None = None
    ) -> None:
        """Hand a transient event to every subscriber of the workspace (or thread) in every process
        (through this hub's own connection; code without a hub uses ``events.transient.publish``)."""
        envelope = transient_envelope(type=type, data=data, thread_id=thread_id)
        self.deliver_transient(workspace_id, envelope)
        if self._listener is None:
            return
        payload = notify_payload(workspace_id, envelope)
        await self.start()
        connection = self._listener.connection
        if connection is None or connection.is_closed():
            return  # the listener is reconnecting: only this process's subscribers get this one
        async with self._publish_lock:
            await notify_through(connection, TRANSIENT_CHANNEL, payload)

    def deliver_transient(self, workspace_id: int, envelope: dict[str, Any]) -> None:
        for sub in self._subscriptions.get(workspace_id, ()):
            sub.push(envelope)

    # ------------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start listening (PostgreSQL only); returns once the first LISTEN is in place (or failed)."""
        if self._listener is not None and not self._closing:
            await self._listener.start()

    def close_streams(self) -> None:
        """End every live stream (the server is shutting down; clients reconnect elsewhere)."""
        self._closing = True
        for subs in self._subscriptions.values():
            for sub in subs:
                sub.closed = True
                sub.wake()

    async def close(self) -> None:
        self.close_streams()
        service.remove_committed_listener(self.notify_stored)
        if self._listener is not None:
            await self._listener.close()

    def _on_stored(self, payload: str) -> None:
        try:
            workspace, _, seq = payload.partition(":")
            self.notify_stored(int(workspace), upto=int(seq) if seq else None)
        except ValueError:
            log.warning("events.bad_notification", channel=service.NOTIFY_CHANNEL)

    def _on_transient(self, payload: str) -> None:
        try:
            message = json.loads(payload)
            if message.get("o") == ORIGIN:
                return  # sent by this process, whose hubs had it already
            self.deliver_transient(int(message["w"]), message["e"])
        except (ValueError, KeyError, TypeError):
            log.warning("events.bad_notification", channel=TRANSIENT_CHANNEL)
