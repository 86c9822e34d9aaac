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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from threadline.config import Settings
from threadline.engines.providers.base import Provider
from threadline.engines.providers.registry import DEFAULT_PROVIDER
from threadline.kit.clock import utcnow
from threadline.models import RunStatus
from threadline.models.enums import AgentMode
from threadline.runs import claim, finish, turn
from threadline.runs.state import Progress, RunFailed, RunInput, as_failure

if TYPE_CHECKING:
    from threadline.metrics import Metrics

log = structlog.get_logger(__name__)


@dataclass
class Runtime:
    """What executing runs needs in a process: where to write, settings, and an HTTP client for tools."""

    sessionmaker: async_sessionmaker[AsyncSession]
    engine: AsyncEngine
    settings: Settings
    http: httpx.AsyncClient | None = None

    def provider(self, name: str) -> Provider:
        from threadline.engines.providers.registry import get_provider

        return get_provider(name, self.settings)

    # ------------------------------------------------------------------------------------ entry point

    async def execute(
        self, run_ref: str, *, attempt: int, max_attempts: int, metrics: Metrics | None = None
    ) -> RunStatus | None:
        """Execute the run with public id ``run_ref`` (one attempt of its job). Returns how the run ended, or
        None when this attempt did not end it (it had ended already)."""
        inp = await claim.claim(self, run_ref, first_attempt=attempt == 1)
        if inp is None:
            return None
        bound = log.bind(run_id=str(inp.run_public_id), thread_id=str(inp.thread_public_id), attempt=attempt)
        progress = Progress(provider=inp.version.provider or DEFAULT_PROVIDER, model=inp.version.model or "")
        if inp.version.mode is AgentMode.FLOW:
            progress.provider, progress.model = "flow", ""
        failure: RunFailed | None = None
        try:
            answer = await turn.answer(self, inp, progress)
        except Exception as exc:
            failure = as_failure(exc)
            if metrics is not None and failure.from_provider:
                metrics.observe_provider_error(provider=progress.provider, kind=failure.code)
            if failure.retryable and attempt < max_attempts:
                bound.warning("run.retry", code=failure.code, error=str(failure))
                await finish.requeue(self, inp)
                raise
            outcome = await finish.fail(self, inp, failure, progress)
        else:
            outcome = await finish.finish(self, inp, answer, progress)
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
