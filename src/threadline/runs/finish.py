"""Step 3 of a run, in a short transaction that locks the thread row: only now is it decided whether the answer
may be sent. If a human took the thread over, it was blocked, or the run was cancelled while the model was
thinking, the answer is kept as a ``hidden`` message and the run ends ``cancelled``; otherwise the replies are
appended (with ``tool_calls`` and ``iterations``), the tools' actions (handoff, tags, end) are applied, and the
run ends ``completed``. A run that failed for good ends here too (``fail``). Then the thread's next queued
run, if any, is woken."""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.audit import service as audit
from threadline.engines.tools import Action, AddTag, EndConversation, Handoff
from threadline.events.types import EventType
from threadline.flows import send
from threadline.jobs.repository import JobRepository
from threadline.jobs.service import notify_workers
from threadline.kit.clock import utcnow
from threadline.messages.service import NewMessage
from threadline.models import Run, RunStatus, Thread
from threadline.models.enums import Role, SentBy
from threadline.models.run import FINISHED
from threadline.runs import service
from threadline.runs.repository import ExecutionRepository
from threadline.runs.service import RUN_JOB
from threadline.runs.state import (
    ERASED,
    Answer,
    Executor,
    Progress,
    Reply,
    RunFailed,
    RunInput,
    stop_reason,
    usage_dict,
)
from threadline.tags import service as tags
from threadline.users import service as users

log = structlog.get_logger(__name__)


async def finish(rt: Executor, inp: RunInput, answer: Answer, progress: Progress) -> RunStatus | None:
    async with rt.sessionmaker() as session, session.begin():
        thread, run = await _lock(session, inp)
        if run is None or run.status in FINISHED:
            return None
        stop = stop_reason(run, thread)
        thread_id = str(thread.public_id)
        if stop is not None:
            # Not even as a hidden message where the end user is being erased: the thread takes none.
            for reply in answer.replies if stop != ERASED else ():
                if reply.content or reply.blocks:
                    await send.append_message(
                        session,
                        workspace_id=inp.workspace_id,
                        thread_id=thread_id,
                        new=_as_message(reply, Role.HIDDEN, run.id, metadata={"not_sent": stop}),
                    )
            run.usage = usage_dict(answer.usage, tool_calls=progress.tool_calls)
            await end(session, run, thread, RunStatus.CANCELLED, stop)
            return RunStatus.CANCELLED
        for reply in answer.replies:
            await send.append_message(
                session,
                workspace_id=inp.workspace_id,
                thread_id=thread_id,
                new=_as_message(reply, Role.ASSISTANT, run.id, in_response_to_id=inp.reply_to_id),
            )
        if not answer.keep_flow_state:
            thread.flow_state = answer.flow_state
        await _apply(session, inp.workspace_id, thread, answer.actions)
        run.usage = usage_dict(answer.usage, tool_calls=progress.tool_calls)
        await end(session, run, thread, RunStatus.COMPLETED, None)
        return RunStatus.COMPLETED


async def requeue(rt: Executor, inp: RunInput) -> None:
    """A failed attempt that will be retried: the run waits as ``queued``, so it does not hold the
    thread's one running slot during the backoff (and picks up messages that arrive meanwhile)."""
    async with rt.sessionmaker() as session, session.begin():
        await ExecutionRepository(session).requeue(inp.run_id, now=utcnow())


async def fail(rt: Executor, inp: RunInput, failure: RunFailed, progress: Progress) -> RunStatus | None:
    """The run failed for good. Operators see why (the run's error, ``run.failed``, a system note in the
    thread, which is never a reply and never sent); the end user gets what the version says: its
    ``failure_reply`` as the agent's message, and/or a handoff to a human; nothing else."""
    async with rt.sessionmaker() as session, session.begin():
        thread, run = await _lock(session, inp)
        if run is None or run.status in FINISHED:
            return None
        run.usage = usage_dict(progress.usage, tool_calls=progress.tool_calls)
        if thread.erased_at is not None:
            await end(session, run, thread, RunStatus.CANCELLED, ERASED)
            return RunStatus.CANCELLED
        thread_id = str(thread.public_id)
        await send.append_message(
            session,
            workspace_id=inp.workspace_id,
            thread_id=thread_id,
            new=NewMessage(
                role=Role.SYSTEM,
                content=f"The agent could not answer ({failure.code}): {failure}",
                metadata={"run_id": str(run.public_id), "error_code": failure.code},
                run_id=run.id,
                start_run=False,
            ),
        )
        # The end user hears from the agent only on a thread the agent still holds.
        if inp.version.failure_reply and stop_reason(run, thread) is None:
            await send.append_message(
                session,
                workspace_id=inp.workspace_id,
                thread_id=thread_id,
                new=_as_message(
                    Reply(content=inp.version.failure_reply),
                    Role.ASSISTANT,
                    run.id,
                    in_response_to_id=inp.reply_to_id,
                    metadata={"failure_reply": True},
                ),
            )
        if inp.version.failure_handoff and thread.active and not thread.blocked:
            reason = f"the agent could not answer ({failure.code})"
            await _apply(session, inp.workspace_id, thread, [Handoff(reason)])
        run.error_code, run.error_message = failure.code, str(failure)[:2000]
        await end(session, run, thread, RunStatus.FAILED, None)
        return RunStatus.FAILED


def _as_message(
    reply: Reply,
    role: Role,
    run_id: int,
    *,
    in_response_to_id: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> NewMessage:
    """A reply as the agent's message: ``assistant`` to be sent, or ``hidden`` when it may not be."""
    return NewMessage(
        role=role,
        sent_by=SentBy.AGENT,
        content=reply.content,
        type=reply.type,
        blocks=reply.blocks,
        media_url=reply.media_url,
        tool_calls=reply.tool_calls,
        iterations=reply.iterations,
        metadata=metadata or {},
        in_response_to_id=in_response_to_id,
        run_id=run_id,
        start_run=False,
    )


async def _lock(session: AsyncSession, inp: RunInput) -> tuple[Thread, Run | None]:
    """The thread, row-locked until commit (an operator taking over waits for us, or we see them)."""
    return await ExecutionRepository(session).lock(inp.thread_id, inp.run_id)


async def end(session: AsyncSession, run: Run, thread: Thread, status: RunStatus, reason: str | None) -> None:
    now = utcnow()
    if run.started_at is not None:
        run.attempts = max(run.attempts, 1)  # a run its request started counts its attempt here
    run.status = status
    run.finished_at = now
    run.updated_at = now
    if reason is not None:
        run.error_code = reason
        run.error_message = {
            "cancelled": "cancelled through the API",
            "thread_blocked": "the thread was blocked",
            "human_handoff": "a human took the thread over; the answer was kept hidden, not sent",
            ERASED: "the end user was erased",
        }.get(reason, reason)
    await session.flush()
    event = {
        RunStatus.COMPLETED: EventType.RUN_COMPLETED,
        RunStatus.FAILED: EventType.RUN_FAILED,
        RunStatus.CANCELLED: EventType.RUN_CANCELLED,
    }[status]
    await service.record_event(session, run, event, thread.public_id)
    await service.count_ended(session, run, agent_id=thread.agent_id, day=now.date())
    # The thread's next run (messages that came while this one ran) may go now.
    following = await ExecutionRepository(session).next_queued(run.thread_id)
    if following is not None and following.job_id is not None and following.run_at <= now:
        if await JobRepository(session).wake(job_id=following.job_id, now=now):
            await notify_workers(session, RUN_JOB)


async def _apply(session: AsyncSession, workspace_id: int, thread: Thread, actions: list[Action]) -> None:
    """The tools' (or flow's) effects on the thread, through the threads service, so that each change is
    an event. Tags are named by id or by name (a new name makes the tag); users by id or email (an
    unknown one is skipped and logged: a stale agent setting must not lose the reply)."""
    if not actions:
        return
    from threadline.threads import service as threads
    from threadline.threads.schemas import ThreadUpdate

    handoff = next((a for a in actions if isinstance(a, Handoff)), None)
    ended = next((a for a in actions if isinstance(a, EndConversation)), None)
    current = await threads.get_thread(session, workspace_id=workspace_id, thread_id=str(thread.public_id))
    tag_ids = [str(t.public_id) for t in current.tags]
    wanted = [a.name for a in actions if isinstance(a, AddTag)] + list(handoff.tags if handoff else ())
    for ref in wanted:
        tag = await tags.get_or_create(session, workspace_id, ref)
        if str(tag.public_id) not in tag_ids:
            tag_ids.append(str(tag.public_id))
    fields: dict[str, Any] = {}
    if tag_ids != [str(t.public_id) for t in current.tags]:
        fields["tags"] = tag_ids
    if handoff is not None:
        fields["active"] = False
        assignees = [str(u.public_id) for u in current.assignees]
        for ref in handoff.assign_to:
            user = await users.find_user(session, workspace_id=workspace_id, ref=ref)
            if user is None:
                log.warning("run.unknown_assignee", thread_id=str(thread.public_id))
            elif str(user.public_id) not in assignees:
                assignees.append(str(user.public_id))
        if assignees != [str(u.public_id) for u in current.assignees]:
            fields["assigned_to"] = assignees
    if ended is not None:
        fields["metadata"] = {
            **(current.metadata_ or {}),
            "ended_at": utcnow().isoformat(),
            "ended_reason": ended.reason,
        }
    if fields:
        await threads.update_thread(
            session,
            workspace_id=workspace_id,
            thread_id=str(thread.public_id),
            data=ThreadUpdate(**fields),
            actor=audit.Actor.agent(thread.agent_id),
            by="agent",
            handoff_reason=handoff.reason if handoff else None,
        )
