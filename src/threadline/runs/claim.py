"""Step 1 of a run, in one short transaction: become the thread's one ``running`` run (a partial unique index
refuses a second; this run then waits its turn) and read everything the answer needs: the pinned version, the
end user, the history up to the last message this run answers, what was recorded of earlier attempts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from threadline.agents.settings import effective_settings
from threadline.events.types import EventType
from threadline.jobs.registry import Reschedule
from threadline.kit.clock import utcnow
from threadline.models import AgentVersion, EndUser, Run, RunStatus, Thread
from threadline.models.enums import AgentMode, ChannelType, Role
from threadline.models.run import FINISHED
from threadline.runs import service
from threadline.runs.context import HistoryItem, Participant
from threadline.runs.finish import end
from threadline.runs.repository import ExecutionRepository
from threadline.runs.state import Executor, Inbound, RunFailed, RunInput, VersionView, stop_reason

log = structlog.get_logger(__name__)

HISTORY_LIMIT = 200  # messages read for the context; the token budget usually stops well before
WAIT_FOR_RUNNING_S = 2.0  # a run whose thread has another one running looks again this much later


async def claim(rt: Executor, run_ref: str, *, first_attempt: bool = False) -> RunInput | None:
    """Become the thread's running run and read what the answer needs, in one short transaction."""
    try:
        async with rt.sessionmaker() as session, session.begin():
            return await claim_in(rt, session, run_ref, first_attempt=first_attempt)
    except IntegrityError:
        # PostgreSQL: another run of the thread became running between our check and our update.
        raise Reschedule(WAIT_FOR_RUNNING_S, "another run of this thread is running") from None


async def claim_in(
    rt: Executor, session: AsyncSession, run_ref: str, *, first_attempt: bool = False
) -> RunInput | None:
    repo = ExecutionRepository(session)
    row = await repo.claim_row(uuid.UUID(run_ref))
    if row is None:
        return None
    run, thread, version, end_user, channel_type, agent_public_id = row
    channel = ChannelType(channel_type) if channel_type is not None else ChannelType.API
    if run.status in FINISHED:
        return None
    now = utcnow()
    if run.status is RunStatus.QUEUED and run.run_at > now + timedelta(milliseconds=5):
        raise Reschedule((run.run_at - now).total_seconds(), "the debounce window is still open")
    stop = stop_reason(run, thread)
    if stop is not None:
        await end(session, run, thread, RunStatus.CANCELLED, stop)
        log.info(
            "run.ended",
            run_id=str(run.public_id),
            thread_id=str(thread.public_id),
            outcome="cancelled",
            reason=stop,
        )
        return None
    if first_attempt and run.status is RunStatus.RUNNING and run.attempts == 0:
        # Started by the request that queued it (runs.service.request_run): already the thread's running
        # run, run.started already recorded. Only read; the attempt is counted when the run ends.
        if version is None:
            raise RunFailed("no_agent_version", "the thread's agent has no version to answer with", retryable=False)
        inp, _ = await read_input(session, run, thread, version, end_user, channel, agent_public_id)
        return inp
    was_queued = run.status is RunStatus.QUEUED
    claimed = await repo.mark_running(run, now=now)
    if claimed is None:
        raise Reschedule(WAIT_FOR_RUNNING_S, "another run of this thread is running")
    for name, value in (
        ("status", RunStatus.RUNNING),
        ("attempts", claimed[0]),
        ("started_at", claimed[1]),
        ("input_seq", claimed[2]),
    ):
        set_committed_value(run, name, value)
    if version is None:
        raise RunFailed("no_agent_version", "the thread's agent has no version to answer with", retryable=False)
    inp, trigger = await read_input(session, run, thread, version, end_user, channel, agent_public_id)
    if was_queued:
        refs = service.run_refs(run, thread=thread.public_id, version=version.public_id, trigger=trigger)
        await service.record_event(session, run, EventType.RUN_STARTED, thread.public_id, refs)
    return inp


async def read_input(
    session: AsyncSession,
    run: Run,
    thread: Thread,
    version: AgentVersion,
    end_user: EndUser,
    channel: ChannelType,
    agent_public_id: uuid.UUID | None,
) -> tuple[RunInput, uuid.UUID | None]:
    # The history up to this run's last message, and what was said since that is not the end user's: the
    # replies of a run that was still running when this one was queued (a double text), operators'
    # messages, notes. A later end-user message is a later run's to answer. One query for both.
    repo = ExecutionRepository(session)
    rows = await repo.history(thread.id, input_seq=run.input_seq, limit=HISTORY_LIMIT)
    ordered = sorted(rows, key=lambda m: m.seq)
    said_since = [m for m in ordered if m.seq > run.input_seq]
    recent = _with_replies_in_place([m for m in ordered if m.seq <= run.input_seq], said_since)
    inbound: list[Inbound] = []
    if version.mode is AgentMode.FLOW:  # a flow takes the messages since its last turn
        answered = await repo.last_answered_seq(thread.id)
        inbound = [
            Inbound(m.seq, m.type, m.content, m.blocks, dict(m.metadata or {}))
            for m in recent
            if m.role is Role.USER and m.seq > answered
        ]
    reply_to = next((m.id for m in reversed(recent) if m.role is Role.USER), None)
    trigger = next((m.public_id for m in recent if m.id == run.trigger_message_id), None)
    tuned = effective_settings(version, channel)
    inp = RunInput(
        run_id=run.id,
        run_public_id=run.public_id,
        workspace_id=run.workspace_id,
        thread_id=thread.id,
        thread_public_id=thread.public_id,
        agent_public_id=agent_public_id,
        started_at=run.started_at,
        input_seq=run.input_seq,
        reply_to_id=reply_to,
        version=VersionView(
            mode=version.mode,
            provider=version.provider,
            model=version.model,
            system_prompt=version.system_prompt,
            failure_reply=version.failure_reply,
            failure_handoff=version.failure_handoff,
            temperature=tuned.temperature,
            max_tokens=tuned.max_tokens,
            tools=list(version.tools or []),
            flow=version.flow,
            settings=dict(version.settings or {}),
        ),
        end_user=Participant(
            display_name=end_user.display_name,
            address=end_user.address,
            channel=str(end_user.channel),
            info={"notes": end_user.info} if end_user.info else {},
        ),
        history=[HistoryItem(m.seq, m.role, m.sent_by, m.content, m.status, m.tool_calls) for m in recent],
        inbound=inbound,
        flow_state=thread.flow_state,
        checkpoint=run.checkpoint,
    )
    return inp, trigger


def _with_replies_in_place(history: list[Any], said_since: Sequence[Any]) -> list[Any]:
    """``history`` (up to the run's last message, in order) with ``said_since`` (what came after it that is
    not the end user's) merged in: a reply right after the message it answers, so that the model reads
    "one", its answer, then the double texts its answer did not see ("more"), and answers those, not "one"
    again; anything else at the end, in order."""
    if not said_since:
        return history
    followers: dict[int, list[Any]] = {}
    tail: list[Any] = []
    known = {m.id for m in history}
    for message in said_since:
        anchor = message.in_response_to_id
        (followers.setdefault(anchor, []) if anchor in known else tail).append(message)
    merged: list[Any] = []
    for message in history:
        merged.append(message)
        merged.extend(followers.get(message.id, ()))
    return merged + tail
