"""Runs: when an end user's message starts one, one at a time per thread, and their lifecycle.

``request_run`` is called by ``flows.send.append_message`` for every inbound end-user message on an
active, unblocked thread whose agent answers. Double texts: a message that arrives while a run of the
thread is queued joins it (its ``input_seq`` moves up, its debounce window slides); one that arrives
while a run is running gets a new queued run, which starts when the running one ends. So the replies of
one thread never interleave and no message is answered twice.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from threadline.config import RunSettings
from threadline.db.engine import session_settings
from threadline.errors import Conflict, NotFound
from threadline.events import service as events
from threadline.events.types import EventType
from threadline.jobs.repository import JobRepository
from threadline.jobs.service import enqueue
from threadline.kit.clock import utcnow
from threadline.kit.ids import uuid7
from threadline.kit.pagination import Page, PageRequest
from threadline.models import Message, Run, RunStatus
from threadline.models.enums import ChannelType
from threadline.models.run import FINISHED
from threadline.runs.repository import RunRepository
from threadline.runs.schemas import run_read
from threadline.threads.repository import ThreadRepository
from threadline.usage.repository import UsageRepository

RUN_JOB = "runs.execute"


def debounce_window(
    settings: RunSettings, version_settings: dict[str, Any], channel: ChannelType, override: float | None
) -> float:
    """How long a run waits for more messages: the caller's window, else the agent version's ``debounce_s``,
    else the channel's default."""
    if override is not None:
        return override
    configured = version_settings.get("debounce_s")
    if isinstance(configured, int | float) and not isinstance(configured, bool) and 0 <= configured <= 60:
        return float(configured)
    return settings.debounce_messaging_s if channel is not ChannelType.API else settings.debounce_s


async def record_event(
    session: AsyncSession,
    run: Run,
    type: EventType,
    thread_public_id: Any,
    refs: dict[str, dict[int, Any]] | None = None,
) -> events.PendingEvent:
    """Record a run.* event; ``refs`` (as RunRepository.references gives them) saves the lookups when the
    caller already knows the public ids. Returns the event, numbered when the transaction commits."""
    if refs is None:
        refs = await RunRepository(session, run.workspace_id).references([run])
    data = run_read(run, refs)
    return events.record(session, workspace_id=run.workspace_id, type=type, data=data, thread_id=thread_public_id)


def run_refs(run: Run, *, thread: Any, version: Any | None, trigger: Any | None) -> dict[str, dict[int, Any]]:
    """The references of one run from public ids the caller holds."""
    return {
        "threads": {run.thread_id: thread},
        "agent_versions": {run.agent_version_id: version} if run.agent_version_id is not None else {},
        "messages": {run.trigger_message_id: trigger} if run.trigger_message_id is not None and trigger else {},
    }


async def request_run(
    session: AsyncSession,
    *,
    workspace_id: int,
    thread_id: int,
    thread_public_id: Any,
    agent_version_id: int | None,
    agent_version_public_id: Any,
    message_id: int,
    message_public_id: Any,
    message_seq: int,
    debounce_s: float,
    now: datetime | None = None,
) -> tuple[Run, events.PendingEvent | None]:
    """Have the thread's agent answer up to ``message_seq``: join the queued run or queue a new one. Returns the
    run and its last event of this transaction (run.queued, or run.started for a run born leased to this
    process; None when the message joined a run queued earlier)."""
    now = now or utcnow()
    repo = RunRepository(session, workspace_id)
    run_at = now + timedelta(seconds=debounce_s)
    queued, running = await repo.open_for_thread(thread_id)
    if queued is not None:
        joined = await repo.join_queued(queued.id, input_seq=message_seq, run_at=run_at, now=now)
        if joined is not None:
            if joined.run_at == run_at and joined.job_id is not None:  # the debounce window slid
                await JobRepository(session).postpone(job_id=joined.job_id, run_at=run_at, now=now)
            return joined, None
        # A worker claimed it meanwhile (runs are claimed without the thread's lock): it is running, and this
        # message needs a run of its own, queued behind it.
        running = True
    # The job first (it names the run by its public id), so the run is one INSERT with its job id.
    public_id = uuid7()
    job = await enqueue(
        session,
        kind=RUN_JOB,
        payload={"run": str(public_id)},
        workspace_id=workspace_id,
        run_at=run_at,
        max_attempts=session_settings(session).runs.max_attempts,
        adopt=True,  # someone is waiting for the answer: a worker of this process starts it at commit
    )
    run = Run(
        public_id=public_id,
        job_id=job.id,
        workspace_id=workspace_id,
        thread_id=thread_id,
        agent_version_id=agent_version_id,
        status=RunStatus.QUEUED,
        trigger_message_id=message_id,
        input_seq=message_seq,
        run_at=run_at,
        attempts=0,
        usage={},
        cancel_requested=False,
        created_at=now,
        updated_at=now,
    )
    refs = run_refs(run, thread=thread_public_id, version=agent_version_public_id, trigger=message_public_id)
    last = await record_event(session, run, EventType.RUN_QUEUED, thread_public_id, refs)
    if job.locked_by is not None and not running:
        # Born leased to this process's worker, which starts it the moment this commits, and no other run
        # of the thread is running (we hold the thread's row lock, taken by the message's claim): it is the
        # thread's running run from now. The worker then only reads what the answer needs; the claim
        # transaction, with its own run.started event, leaves the path to the first token.
        run.status = RunStatus.RUNNING
        run.started_at = now
        last = await record_event(session, run, EventType.RUN_STARTED, thread_public_id, refs)
    session.add(run)
    await session.flush()
    return run, last


async def get_run(session: AsyncSession, *, workspace_id: int, run_id: str) -> Run:
    run = await RunRepository(session, workspace_id).find(Run, run_id)
    if run is None:
        raise NotFound(f"no run with id '{run_id}'")
    return run


async def run_replies(session: AsyncSession, *, workspace_id: int, run: Run) -> list[Message]:
    """What ``run`` said to the end user so far, in the thread's order: its assistant messages (never its notes for
    operators, nor an answer it kept hidden)."""
    return await RunRepository(session, workspace_id).replies(run.id)


async def run_public_ids(session: AsyncSession, *, workspace_id: int, run_ids: set[int]) -> dict[int, uuid.UUID]:
    """{run key: public id} for the runs that messages name (``Message.run_id``): one query."""
    return await RunRepository(session, workspace_id).public_ids(Run, run_ids)


async def list_runs(session: AsyncSession, *, workspace_id: int, thread_id: str, page: PageRequest) -> Page[Run]:
    thread_key = await ThreadRepository(session, workspace_id).thread_key(thread_id)
    if thread_key is None:
        raise NotFound(f"no thread with id '{thread_id}'")
    return await RunRepository(session, workspace_id).page(thread_key, page)


async def cancel_run(session: AsyncSession, *, workspace_id: int, run_id: str) -> Run:
    """A queued run ends at once; a running one is asked to stop, and its reply (if it comes) is kept
    as a hidden message instead of being sent."""
    run = await get_run(session, workspace_id=workspace_id, run_id=run_id)
    if run.status in FINISHED:
        raise Conflict(f"run {run_id} is already {run.status}", code="run_finished")
    now = utcnow()
    thread_public_id = (await RunRepository(session, workspace_id).references([run]))["threads"][run.thread_id]
    if run.status is RunStatus.QUEUED:
        run.status = RunStatus.CANCELLED
        run.finished_at = now
        run.error_code, run.error_message = "cancelled", "cancelled through the API"
    run.cancel_requested = True
    run.updated_at = now
    await session.flush()
    if run.status is RunStatus.CANCELLED:
        await record_event(session, run, EventType.RUN_CANCELLED, thread_public_id)
        agent_id = await RunRepository(session, workspace_id).agent_of_thread(run.thread_id)
        await count_ended(session, run, agent_id=agent_id, day=now.date())
    return run


async def count_ended(session: AsyncSession, run: Run, *, agent_id: int | None, day: date) -> None:
    """Count a run that just ended in its version's usage of ``day`` (GET /v1/usage)."""
    if run.agent_version_id is None or agent_id is None:
        return
    usage = run.usage or {}
    await UsageRepository(session, run.workspace_id).count_run(
        day=day,
        agent_id=agent_id,
        agent_version_id=run.agent_version_id,
        outcome=str(run.status),
        input_tokens=int(usage.get("input_tokens", 0)),
        output_tokens=int(usage.get("output_tokens", 0)),
        estimated=bool(usage.get("estimated")),
        tool_calls=int(usage.get("tool_calls", 0)),
    )
