"""Recording events in the transaction of the change, numbered in commit order.

A service calls ``record(session, ...)`` next to the change it makes. Nothing is written then: the
events wait in ``session.info`` and are written by a ``before_commit`` hook, as the transaction's last
statements, so that a rollback drops them with the change and a commit cannot keep one without the
other. The hook takes the workspace's next numbers with ``UPDATE workspaces SET last_event_seq =
last_event_seq + n``, which also tells, through each sink's guard, which sinks have work (the webhook
fan-out: are there enabled endpoints?), then runs those sinks (the fan-out adds its deliveries) and
inserts the events. That row lock is held only for this and the commit, and it orders commits: a transaction
that numbers after another also commits after it, so seq order is commit order and a consumer that
has seen N can never later find an N-1 appearing. On PostgreSQL the same statement sends
``NOTIFY threadline_events`` (delivered at commit) so every process's subscribers wake up at once.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession, async_session
from sqlalchemy.orm import Session
from sqlalchemy.util import await_only

from threadline.events.repository import EventRepository
from threadline.kit.clock import utcnow
from threadline.kit.ids import uuid7

NOTIFY_CHANNEL = "threadline_events"
_PENDING = "threadline.events.pending"
_COMMITTED = "threadline.events.committed"


@dataclass(slots=True)
class PendingEvent:
    """An event recorded in a transaction that has not committed yet (it has no ``seq`` until then)."""

    workspace_id: int
    type: str
    data: dict[str, Any]
    thread_id: uuid.UUID | None = None
    changes: list[str] | None = None
    public_id: uuid.UUID = field(default_factory=uuid7)
    created_at: datetime = field(default_factory=utcnow)
    seq: int | None = None  # set when written, just before the commit


Sink = Callable[[AsyncSession, int, list[PendingEvent]], Awaitable[None]]
# A sink's guard: a scalar SQL expression for a workspace id, true when the sink has work there. It rides on
# the statement that numbers the events, so a sink with nothing to do costs no round trip of its own.
SinkGuard = Callable[[int], Any]
_sinks: list[tuple[Sink, SinkGuard | None]] = []
# Modules whose import registers threadline's own sinks; imported before the first events are written,
# in whatever process writes them (API, worker, CLI), so no entry point can forget one.
BUILTIN_SINK_MODULES: tuple[str, ...] = ("threadline.webhooks.sink",)
_builtin_loaded = False
# Called with a workspace id and its events after a transaction that wrote them commits (this process's hubs).
_committed_listeners: set[Callable[[int, list[PendingEvent]], None]] = set()


def add_sink(sink: Sink, *, guard: SinkGuard | None = None) -> None:
    """Run ``sink(session, workspace_id, events)`` in every transaction that records events, before commit,
    once they are numbered; with a ``guard``, only where it is true for the workspace."""
    if all(existing is not sink for existing, _ in _sinks):
        _sinks.append((sink, guard))


def add_committed_listener(listener: Callable[[int, list[PendingEvent]], None]) -> None:
    """``listener(workspace_id, events)`` after each commit that wrote ``events`` (numbered, in seq order)."""
    _committed_listeners.add(listener)


def remove_committed_listener(listener: Callable[[int, list[PendingEvent]], None]) -> None:
    _committed_listeners.discard(listener)


def record(
    session: AsyncSession,
    *,
    workspace_id: int,
    type: str,
    data: Any,
    thread_id: uuid.UUID | None = None,
    changes: list[str] | None = None,
) -> PendingEvent:
    """Record an event in ``session``'s transaction; it is written (and numbered) when that commits."""
    pending = PendingEvent(
        workspace_id=workspace_id,
        type=str(type),
        data=to_jsonable_python(data),
        thread_id=thread_id,
        changes=changes,
    )
    session.sync_session.info.setdefault(_PENDING, []).append(pending)
    return pending


def pending_events(session: AsyncSession) -> list[PendingEvent]:
    return list(session.sync_session.info.get(_PENDING, []))


def _load_builtin_sinks() -> None:
    global _builtin_loaded
    if not _builtin_loaded:
        for name in BUILTIN_SINK_MODULES:
            importlib.import_module(name)
        _builtin_loaded = True


async def _write(session: AsyncSession, pending: list[PendingEvent]) -> dict[int, list[PendingEvent]]:
    _load_builtin_sinks()
    by_workspace: dict[int, list[PendingEvent]] = {}
    for p in pending:
        by_workspace.setdefault(p.workspace_id, []).append(p)
    written: dict[int, list[PendingEvent]] = {}
    notify = NOTIFY_CHANNEL if session.get_bind().dialect.name == "postgresql" else None
    sinks = list(_sinks)
    guarded = [(sink, guard) for sink, guard in sinks if guard is not None]
    # Workspaces in id order, so two transactions spanning the same ones lock them in the same order.
    for workspace_id in sorted(by_workspace):
        events = by_workspace[workspace_id]
        repo = EventRepository(session, workspace_id)
        last, has_work = await repo.take_seqs(
            len(events), notify=notify, guards=[guard(workspace_id) for _, guard in guarded]
        )
        first = last - len(events) + 1
        for i, e in enumerate(events):
            e.seq = first + i
        # The sinks run in the transaction, after the numbering (a rollback still drops all of it).
        for sink, guard in sinks:
            if guard is None:
                await sink(session, workspace_id, events)
        for (sink, _), work in zip(guarded, has_work, strict=True):
            if work:
                await sink(session, workspace_id, events)
        await repo.insert(events)
        written[workspace_id] = events
    return written


@sa_event.listens_for(Session, "before_commit")
def _write_pending_events(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint is released: the events wait for the real commit
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    # Commits of our AsyncSessions run inside SQLAlchemy's greenlet, where await_only can drive the
    # async code (the documented way to emit SQL from a session event with asyncio).
    asession = async_session(session)
    if asession is None:  # pragma: no cover - every session in threadline is an AsyncSession
        raise RuntimeError("events can only be recorded through an AsyncSession")
    session.info[_COMMITTED] = await_only(_write(asession, pending))


@sa_event.listens_for(Session, "after_commit")
def _announce_committed(session: Session) -> None:
    committed = session.info.pop(_COMMITTED, None)
    if committed:
        for workspace_id, events in committed.items():
            for listener in list(_committed_listeners):
                listener(workspace_id, events)


@sa_event.listens_for(Session, "after_rollback")
def _forget_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_COMMITTED, None)
