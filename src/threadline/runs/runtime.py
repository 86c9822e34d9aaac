"""Executing a run: claim it, let the agent answer, store the answer.

Three steps, so that no transaction stays open while a model thinks:

1. **Claim** (a short transaction): the run becomes the thread's one ``running`` run (a partial unique
   index refuses a second; this run then waits its turn), and everything the agent needs is read: the
   pinned version, the end user, the history up to the last message this run answers.
2. **Answer** (no transaction): a PROMPT agent calls its provider in a loop with its tools, streaming
   token deltas to live subscribers as transient ``message.delta`` events; a FLOW agent advances its flow.
3. **Finish** (a short transaction that locks the thread row): only now is it decided whether the
   answer may be sent. If a human took the thread over, it was blocked, or the run was cancelled while
   the model was thinking, the answer is kept as a ``hidden`` message and the run ends ``cancelled``;
   otherwise the replies are appended (with ``tool_calls`` and ``iterations``), the tools' actions
   (handoff, tags, end) are applied, and the run ends ``completed``. Then the thread's next queued run,
   if any, is woken.

Execution is at least once (a worker may die after step 3 and before its job is marked done): a run
that is already finished is left alone, so the effects happen once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from threadline.agents.settings import effective_settings
from threadline.audit import service as audit
from threadline.config import Settings
from threadline.events import transient
from threadline.events.types import EventType
from threadline.jobs.registry import Reschedule
from threadline.jobs.repository import JobRepository
from threadline.jobs.service import notify_workers
from threadline.kit.clock import utcnow
from threadline.kit.ids import parse_uuid
from threadline.kit.secrets import secret_box
from threadline.kit.ssrf import GuardedTransport
from threadline.messages import service as messages
from threadline.messages.service import NewMessage
from threadline.models import AgentVersion, EndUser, Run, RunStatus, Tag, Thread
from threadline.models.enums import AgentMode, ChannelType, MessageType, Role, SentBy, TagColor
from threadline.models.run import FINISHED
from threadline.runs import checkpoint, context, service
from threadline.runs.checkpoint import Step
from threadline.runs.context import HistoryItem, Participant
from threadline.runs.providers.base import (
    ChatMessage,
    Completion,
    CompletionRequest,
    Provider,
    ProviderError,
    TextDelta,
    Usage,
)
from threadline.runs.providers.registry import DEFAULT_PROVIDER
from threadline.runs.repository import ExecutionRepository, RunRepository
from threadline.runs.service import RUN_JOB
from threadline.runs.tools import Action, AddTag, EndConversation, Handoff, ToolRunner, parse_tools, specs
from threadline.users import service as users

if TYPE_CHECKING:
    from threadline.metrics import Metrics

log = structlog.get_logger(__name__)

HISTORY_LIMIT = 200  # messages read for the context; the token budget usually stops well before
DELTA_INTERVAL_S = 0.05  # token deltas are sent at most this often (the first at once)
WAIT_FOR_RUNNING_S = 2.0  # a run whose thread has another one running looks again this much later


@dataclass(frozen=True, slots=True)
class VersionView:
    """The pinned version as this run uses it: ``temperature`` and ``max_tokens`` are the ones that apply on
    the thread's channel (``agents.settings.effective_settings``)."""

    mode: AgentMode
    provider: str | None
    model: str | None
    system_prompt: str | None
    failure_reply: str | None
    failure_handoff: bool
    temperature: float | None
    max_tokens: int | None
    tools: list[dict[str, Any]]
    flow: dict[str, Any] | None
    settings: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Inbound:
    seq: int
    type: MessageType
    content: str
    blocks: list[dict[str, Any]] | None
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunInput:
    run_id: int
    run_public_id: uuid.UUID
    workspace_id: int
    thread_id: int
    thread_public_id: uuid.UUID
    agent_public_id: uuid.UUID | None
    started_at: datetime | None
    input_seq: int
    reply_to_id: int | None
    version: VersionView
    end_user: Participant
    history: list[HistoryItem]
    inbound: list[Inbound]
    flow_state: dict[str, Any] | None
    checkpoint: dict[str, Any] | None = None


@dataclass(slots=True)
class Progress:
    """What an attempt has done so far, for the run's record, its log line and metrics, however it ends."""

    provider: str = ""
    model: str = ""
    usage: Usage = field(default_factory=Usage)
    iterations: int = 0
    tool_calls: int = 0
    ttft_s: float | None = None  # from the start of the attempt to the model's first token


@dataclass(slots=True)
class Reply:
    content: str = ""
    type: MessageType = MessageType.TEXT
    blocks: list[dict[str, Any]] | None = None
    media_url: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    iterations: list[dict[str, Any]] | None = None


@dataclass(slots=True)
class Answer:
    replies: list[Reply] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    actions: list[Action] = field(default_factory=list)
    flow_state: dict[str, Any] | None = None
    keep_flow_state: bool = True  # False: store ``flow_state`` (a FLOW turn ran)


class RunFailed(Exception):
    """The answer cannot be produced; ``retryable`` says whether a later attempt may succeed."""

    def __init__(self, code: str, message: str, *, retryable: bool, from_provider: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable
        self.from_provider = from_provider  # the model server failed (counted by kind in the metrics)


@dataclass
class Runtime:
    """What executing runs needs in a process: where to write, settings, and an HTTP client for tools."""

    sessionmaker: async_sessionmaker[AsyncSession]
    engine: AsyncEngine
    settings: Settings
    http: httpx.AsyncClient | None = None

    def provider(self, name: str) -> Provider:
        from threadline.runs.providers.registry import get_provider

        return get_provider(name, self.settings)

    # ------------------------------------------------------------------------------------ entry point

    async def execute(
        self, run_ref: str, *, attempt: int, max_attempts: int, metrics: Metrics | None = None
    ) -> RunStatus | None:
        """Execute the run with public id ``run_ref`` (one attempt of its job). Returns how the run ended, or
        None when this attempt did not end it (it had ended already)."""
        inp = await self._claim(run_ref, first_attempt=attempt == 1)
        if inp is None:
            return None
        bound = log.bind(run_id=str(inp.run_public_id), thread_id=str(inp.thread_public_id), attempt=attempt)
        progress = Progress(provider=inp.version.provider or DEFAULT_PROVIDER, model=inp.version.model or "")
        if inp.version.mode is AgentMode.FLOW:
            progress.provider, progress.model = "flow", ""
        failure: RunFailed | None = None
        try:
            answer = await self._answer(inp, progress)
        except Exception as exc:
            failure = _as_failure(exc)
            if metrics is not None and failure.from_provider:
                metrics.observe_provider_error(provider=progress.provider, kind=failure.code)
            if failure.retryable and attempt < max_attempts:
                bound.warning("run.retry", code=failure.code, error=str(failure))
                await self._requeue(inp)
                raise
            outcome = await self._fail(inp, failure, progress)
        else:
            outcome = await self._finish(inp, answer, progress)
        if outcome is not None:
            self._ended(inp, outcome, progress, failure, bound, metrics)
        return outcome

    def _ended(
        self,
        inp: RunInput,
        outcome: RunStatus,
        progress: Progress,
        failure: RunFailed | None,
        bound: Any,
        metrics: Metrics | None,
    ) -> None:
        """The run's one log line, and its metrics."""
        duration_s = (utcnow() - inp.started_at).total_seconds() if inp.started_at is not None else 0.0
        (bound.warning if outcome is RunStatus.FAILED else bound.info)(
            "run.ended",
            outcome=str(outcome),
            agent_id=str(inp.agent_public_id) if inp.agent_public_id else None,
            provider=progress.provider,
            model=progress.model or None,
            duration_ms=round(duration_s * 1000),
            ttft_ms=round(progress.ttft_s * 1000) if progress.ttft_s is not None else None,
            input_tokens=progress.usage.input_tokens,
            output_tokens=progress.usage.output_tokens,
            usage_estimated=progress.usage.estimated,
            iterations=progress.iterations,
            tool_calls=progress.tool_calls,
            error_code=failure.code if failure is not None else None,
            error=str(failure) if failure is not None else None,
        )
        if metrics is not None:
            metrics.observe_run(
                agent=str(inp.agent_public_id) if inp.agent_public_id else "",
                provider=progress.provider,
                model=progress.model,
                outcome=str(outcome),
                duration_s=duration_s,
                ttft_s=progress.ttft_s,
                input_tokens=progress.usage.input_tokens,
                output_tokens=progress.usage.output_tokens,
                tool_calls=progress.tool_calls,
                iterations=progress.iterations,
            )

    # ------------------------------------------------------------------------------------ 1. claim

    async def _claim(self, run_ref: str, *, first_attempt: bool = False) -> RunInput | None:
        """Become the thread's running run and read what the answer needs, in one short transaction."""
        try:
            async with self.sessionmaker() as session, session.begin():
                return await self._claim_in(session, run_ref, first_attempt=first_attempt)
        except IntegrityError:
            # PostgreSQL: another run of the thread became running between our check and our update.
            raise Reschedule(WAIT_FOR_RUNNING_S, "another run of this thread is running") from None

    async def _claim_in(self, session: AsyncSession, run_ref: str, *, first_attempt: bool = False) -> RunInput | None:
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
        stop = _stop_reason(run, thread)
        if stop is not None:
            await _end(session, run, thread, RunStatus.CANCELLED, stop)
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
            inp, _ = await self._input(session, run, thread, version, end_user, channel, agent_public_id)
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
        inp, trigger = await self._input(session, run, thread, version, end_user, channel, agent_public_id)
        if was_queued:
            refs = service.run_refs(run, thread=thread.public_id, version=version.public_id, trigger=trigger)
            await service.record_event(session, run, EventType.RUN_STARTED, thread.public_id, refs)
        return inp

    async def _input(
        self,
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

    # ------------------------------------------------------------------------------------ 2. answer

    async def _answer(self, inp: RunInput, progress: Progress) -> Answer:
        if inp.version.mode is AgentMode.FLOW:
            from threadline.runs.flow_agent import answer_with_flow

            return await answer_with_flow(self, inp)
        return await self._prompt(inp, progress)

    async def _prompt(self, inp: RunInput, progress: Progress) -> Answer:
        version = inp.version
        try:
            provider = self.provider(version.provider or DEFAULT_PROVIDER)
        except (ValueError, LookupError) as exc:
            raise RunFailed("provider_unavailable", str(exc), retryable=False) from None
        model = version.model or str(version.settings.get("model") or "") or (provider.default_model or "")
        if not model:
            raise RunFailed("no_model", "the agent version names no model", retryable=False)
        progress.model = model
        tools = parse_tools(version.tools)
        tool_specs = specs(tools)
        began = time.perf_counter()
        await provider.warm_up()
        window = version.settings.get("context_window")
        messages = context.build(
            provider,
            model=model,
            base_prompt=version.system_prompt,
            end_user=inp.end_user,
            history=inp.history,
            tools=tool_specs,
            max_tokens=version.max_tokens,
            context_window=int(window) if isinstance(window, int) and window > 0 else None,
        )
        first_choice = str(version.settings.get("tool_choice") or "auto") if tool_specs else "none"
        max_iterations = int(version.settings.get("max_iterations") or self.settings.run_max_iterations)
        client = self.http or httpx.AsyncClient(
            transport=GuardedTransport(allow_private=self.settings.tools_allow_private_urls), follow_redirects=False
        )
        sealed = any(getattr(t, "headers_encrypted", None) for t in tools)
        runner = ToolRunner(tools, client=client, box=secret_box(self.settings) if sealed else None)
        steps = checkpoint.load(inp.checkpoint)  # what earlier attempts of this run recorded
        answer = Answer()
        iterations: list[dict[str, Any]] = []
        records: list[dict[str, Any]] = []
        keys: set[str] = set()
        final = ""
        try:
            for index in range(max_iterations):
                if index < len(steps):  # recorded by an earlier attempt: neither the model nor done tools again
                    step = steps[index]
                    choice = "auto"
                else:
                    choice = _tool_choice(index, max_iterations, first_choice, tool_specs, provider)
                    request = CompletionRequest(
                        model=model,
                        messages=messages,
                        tools=tool_specs,
                        tool_choice=choice,
                        temperature=version.temperature,
                        max_tokens=version.max_tokens,
                    )
                    started = time.perf_counter()
                    completion = await self._stream(provider, request, inp, index, progress, began)
                    step = Step(index, completion, round((time.perf_counter() - started) * 1000, 1))
                completion = step.completion
                answer.usage = answer.usage + completion.usage
                progress.usage, progress.iterations = answer.usage, index + 1
                iterations.append(_iteration(step, resumed=index < len(steps)))
                if not completion.tool_calls or choice == "none":
                    final = completion.text
                    break
                if index == len(steps):
                    steps.append(step)
                    await self._save_checkpoint(inp, steps)  # the model's calls, before any of them runs
                messages = (
                    *messages,
                    ChatMessage(role="assistant", content=completion.text, tool_calls=completion.tool_calls),
                )
                for position, call in enumerate(completion.tool_calls):
                    key = checkpoint.idempotency_key(str(inp.run_public_id), call.id, index, position, keys)
                    outcome = step.outcomes[position]
                    if outcome is None:
                        outcome = await runner.run(call, idempotency_key=key)
                        step.outcomes[position] = outcome
                        await self._save_checkpoint(inp, steps)  # done: never run again, whatever happens next
                        await self._transient(inp, EventType.MESSAGE_TOOL_CALL, {"iteration": index, **outcome.record})
                    progress.tool_calls += 1
                    records.append(outcome.record)
                    answer.actions.extend(outcome.actions)
                    messages = (*messages, ChatMessage(role="tool", content=outcome.content, tool_call_id=call.id))
        finally:
            if self.http is None:
                await client.aclose()
        if not final.strip():
            raise RunFailed("empty_output", "the model answered with no text", retryable=True)
        answer.replies.append(Reply(content=final, tool_calls=records or None, iterations=iterations))
        return answer

    async def _save_checkpoint(self, inp: RunInput, steps: list[Step]) -> None:
        async with self.sessionmaker() as session, session.begin():
            await RunRepository(session, inp.workspace_id).save_checkpoint(inp.run_id, checkpoint.dump(steps))

    async def _stream(
        self,
        provider: Any,
        request: CompletionRequest,
        inp: RunInput,
        index: int,
        progress: Progress,
        began: float,
    ) -> Completion:
        completion: Completion | None = None
        pending: list[str] = []
        last_sent = 0.0
        async for item in provider.stream(request):
            if progress.ttft_s is None:
                progress.ttft_s = time.perf_counter() - began
            if isinstance(item, TextDelta):
                pending.append(item.text)
                now = time.perf_counter()
                if now - last_sent >= DELTA_INTERVAL_S:
                    await self._delta(inp, index, "".join(pending))
                    pending.clear()
                    last_sent = now
            elif isinstance(item, Completion):
                completion = item
        if pending:
            await self._delta(inp, index, "".join(pending))
        if completion is None:
            raise RunFailed("provider_error", "the provider ended its answer without completing it", retryable=True)
        return completion

    async def _delta(self, inp: RunInput, index: int, text: str) -> None:
        await self._transient(inp, EventType.MESSAGE_DELTA, {"iteration": index, "delta": text})

    async def _transient(self, inp: RunInput, event_type: EventType, data: dict[str, Any]) -> None:
        """A transient event of this run (a token delta, a tool call as it happens) to the live streams."""
        try:
            await transient.publish(
                self.engine,
                inp.workspace_id,
                type=event_type,
                data={"run_id": str(inp.run_public_id), **data},
                thread_id=str(inp.thread_public_id),
            )
        except Exception as exc:  # a live view missing one must never fail the run
            log.warning("run.transient_failed", type=str(event_type), error=type(exc).__name__)

    # ------------------------------------------------------------------------------------ 3. finish

    async def _finish(self, inp: RunInput, answer: Answer, progress: Progress) -> RunStatus | None:
        async with self.sessionmaker() as session, session.begin():
            thread, run = await _lock(session, inp)
            if run is None or run.status in FINISHED:
                return None
            stop = _stop_reason(run, thread)
            thread_id = str(thread.public_id)
            if stop is not None:
                # Not even as a hidden message where the end user is being erased: the thread takes none.
                for reply in answer.replies if stop != ERASED else ():
                    if reply.content or reply.blocks:
                        await messages.append_message(
                            session,
                            workspace_id=inp.workspace_id,
                            thread_id=thread_id,
                            new=_as_message(reply, Role.HIDDEN, run.id, metadata={"not_sent": stop}),
                        )
                run.usage = _usage(answer.usage, tool_calls=progress.tool_calls)
                await _end(session, run, thread, RunStatus.CANCELLED, stop)
                return RunStatus.CANCELLED
            for reply in answer.replies:
                await messages.append_message(
                    session,
                    workspace_id=inp.workspace_id,
                    thread_id=thread_id,
                    new=_as_message(reply, Role.ASSISTANT, run.id, in_response_to_id=inp.reply_to_id),
                )
            if not answer.keep_flow_state:
                thread.flow_state = answer.flow_state
            await _apply(session, inp.workspace_id, thread, answer.actions)
            run.usage = _usage(answer.usage, tool_calls=progress.tool_calls)
            await _end(session, run, thread, RunStatus.COMPLETED, None)
            return RunStatus.COMPLETED

    async def _requeue(self, inp: RunInput) -> None:
        """A failed attempt that will be retried: the run waits as ``queued``, so it does not hold the
        thread's one running slot during the backoff (and picks up messages that arrive meanwhile)."""
        async with self.sessionmaker() as session, session.begin():
            await ExecutionRepository(session).requeue(inp.run_id, now=utcnow())

    async def _fail(self, inp: RunInput, failure: RunFailed, progress: Progress) -> RunStatus | None:
        """The run failed for good. Operators see why (the run's error, ``run.failed``, a system note in the
        thread, which is never a reply and never sent); the end user gets what the version says: its
        ``failure_reply`` as the agent's message, and/or a handoff to a human; nothing else."""
        async with self.sessionmaker() as session, session.begin():
            thread, run = await _lock(session, inp)
            if run is None or run.status in FINISHED:
                return None
            run.usage = _usage(progress.usage, tool_calls=progress.tool_calls)
            if thread.erased_at is not None:
                await _end(session, run, thread, RunStatus.CANCELLED, ERASED)
                return RunStatus.CANCELLED
            thread_id = str(thread.public_id)
            await messages.append_message(
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
            if inp.version.failure_reply and _stop_reason(run, thread) is None:
                await messages.append_message(
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
            await _end(session, run, thread, RunStatus.FAILED, None)
            return RunStatus.FAILED


# ---------------------------------------------------------------------------------------- helpers


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


def _tool_choice(index: int, max_iterations: int, first: str, tool_specs: Sequence[Any], provider: Provider) -> str:
    if not tool_specs or index == max_iterations - 1:
        return "none"  # the last call must answer
    choice = first if index == 0 else "auto"  # a forced or required tool is forced once, not on every call
    if choice == "auto" and not provider.supports_auto_tool_choice:
        return "none"
    return choice


def _iteration(step: Step, *, resumed: bool) -> dict[str, Any]:
    """What the reply's ``iterations`` keeps of one model call."""
    completion = step.completion
    out: dict[str, Any] = {
        "index": step.index,
        "text": completion.text or None,
        "reasoning": completion.reasoning,
        "tool_calls": [c.id for c in completion.tool_calls],
        "finish_reason": completion.finish_reason,
        "usage": _usage(completion.usage),
        "duration_ms": step.duration_ms,
    }
    if resumed:
        out["resumed"] = True  # recorded by an earlier attempt of the run, not asked again
    return out


def _as_failure(exc: BaseException) -> RunFailed:
    if isinstance(exc, RunFailed):
        return exc
    if isinstance(exc, ProviderError):
        return RunFailed(exc.code, str(exc), retryable=exc.retryable, from_provider=True)
    if isinstance(exc, ValueError):  # a version the runtime cannot use (bad tools, flow): trying again won't help
        return RunFailed("invalid_agent_version", str(exc)[:500], retryable=False)
    return RunFailed("internal_error", f"unexpected {type(exc).__name__}", retryable=True)


ERASED = "end_user_erased"


def _stop_reason(run: Run, thread: Thread) -> str | None:
    if thread.erased_at is not None:
        return ERASED
    if run.cancel_requested:
        return "cancelled"
    if thread.blocked:
        return "thread_blocked"
    if not thread.active:
        return "human_handoff"
    return None


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


def _usage(usage: Usage, *, tool_calls: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.estimated:
        out["estimated"] = True  # the server reported none: threadline counted the tokens itself
    if tool_calls:
        out["tool_calls"] = tool_calls
    return out


async def _lock(session: AsyncSession, inp: RunInput) -> tuple[Thread, Run | None]:
    """The thread, row-locked until commit (an operator taking over waits for us, or we see them)."""
    return await ExecutionRepository(session).lock(inp.thread_id, inp.run_id)


async def _end(session: AsyncSession, run: Run, thread: Thread, status: RunStatus, reason: str | None) -> None:
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
        tag = await _tag(session, workspace_id, ref)
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


async def _tag(session: AsyncSession, workspace_id: int, ref: str) -> Tag:
    """The tag with this id, else with this name (any case), else a new tag of that name."""
    uid = parse_uuid(ref)
    if uid is not None:
        by_id = (
            await session.execute(select(Tag).where(Tag.workspace_id == workspace_id, Tag.public_id == uid))
        ).scalar_one_or_none()
        if by_id is not None:
            return by_id
    name = ref.strip()[:100]
    existing = (
        await session.execute(select(Tag).where(Tag.workspace_id == workspace_id, func.lower(Tag.name) == name.lower()))
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    tag = Tag(workspace_id=workspace_id, name=name, color=TagColor.BLUE)
    session.add(tag)
    await session.flush()
    return tag
