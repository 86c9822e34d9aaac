"""Step 2 of a run, with no transaction open: the agent answers. A PROMPT agent calls its provider in a loop
with its tools, streaming token deltas to live subscribers as transient ``message.delta`` events and recording
the loop's progress as it goes (runs.checkpoint); a FLOW agent advances its flow (runs.flow_agent)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx
import structlog

from threadline.engines.providers.base import ChatMessage, Completion, CompletionRequest, Provider, TextDelta
from threadline.engines.providers.registry import DEFAULT_PROVIDER
from threadline.engines.tools import ToolRunner, parse_tools, specs
from threadline.events import transient
from threadline.events.types import EventType
from threadline.kit.secrets import secret_box
from threadline.kit.ssrf import GuardedTransport
from threadline.models.enums import AgentMode
from threadline.runs import checkpoint, context
from threadline.runs.checkpoint import Step
from threadline.runs.flow_agent import answer_with_flow
from threadline.runs.repository import RunRepository
from threadline.runs.state import Answer, Executor, Progress, Reply, RunFailed, RunInput, usage_dict

log = structlog.get_logger(__name__)

DELTA_INTERVAL_S = 0.05  # token deltas are sent at most this often (the first at once)


async def answer(rt: Executor, inp: RunInput, progress: Progress) -> Answer:
    if inp.version.mode is AgentMode.FLOW:
        return await answer_with_flow(inp, allow_private=rt.settings.runs.tools_allow_private_urls)
    return await prompt(rt, inp, progress)


async def prompt(rt: Executor, inp: RunInput, progress: Progress) -> Answer:
    version = inp.version
    try:
        provider = rt.provider(version.provider or DEFAULT_PROVIDER)
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
    max_iterations = int(version.settings.get("max_iterations") or rt.settings.runs.max_iterations)
    client = rt.http or httpx.AsyncClient(
        transport=GuardedTransport(allow_private=rt.settings.runs.tools_allow_private_urls), follow_redirects=False
    )
    sealed = any(getattr(t, "headers_encrypted", None) for t in tools)
    runner = ToolRunner(tools, client=client, box=secret_box(rt.settings) if sealed else None)
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
                completion = await stream(rt, provider, request, inp, index, progress, began)
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
                await save_checkpoint(rt, inp, steps)  # the model's calls, before any of them runs
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
                    await save_checkpoint(rt, inp, steps)  # done: never run again, whatever happens next
                    await transient_event(rt, inp, EventType.MESSAGE_TOOL_CALL, {"iteration": index, **outcome.record})
                progress.tool_calls += 1
                records.append(outcome.record)
                answer.actions.extend(outcome.actions)
                messages = (*messages, ChatMessage(role="tool", content=outcome.content, tool_call_id=call.id))
    finally:
        if rt.http is None:
            await client.aclose()
    if not final.strip():
        raise RunFailed("empty_output", "the model answered with no text", retryable=True)
    answer.replies.append(Reply(content=final, tool_calls=records or None, iterations=iterations))
    return answer


async def save_checkpoint(rt: Executor, inp: RunInput, steps: list[Step]) -> None:
    async with rt.sessionmaker() as session, session.begin():
        await RunRepository(session, inp.workspace_id).save_checkpoint(inp.run_id, checkpoint.dump(steps))


async def stream(
    rt: Executor,
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
                await delta(rt, inp, index, "".join(pending))
                pending.clear()
                last_sent = now
        elif isinstance(item, Completion):
            completion = item
    if pending:
        await delta(rt, inp, index, "".join(pending))
    if completion is None:
        raise RunFailed("provider_error", "the provider ended its answer without completing it", retryable=True)
    return completion


async def delta(rt: Executor, inp: RunInput, index: int, text: str) -> None:
    await transient_event(rt, inp, EventType.MESSAGE_DELTA, {"iteration": index, "delta": text})


async def transient_event(rt: Executor, inp: RunInput, event_type: EventType, data: dict[str, Any]) -> None:
    """A transient event of this run (a token delta, a tool call as it happens) to the live streams."""
    try:
        await transient.publish(
            rt.engine,
            inp.workspace_id,
            type=event_type,
            data={"run_id": str(inp.run_public_id), **data},
            thread_id=str(inp.thread_public_id),
        )
    except Exception as exc:  # a live view missing one must never fail the run
        log.warning("run.transient_failed", type=str(event_type), error=type(exc).__name__)


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
        "usage": usage_dict(completion.usage),
        "duration_ms": step.duration_ms,
    }
    if resumed:
        out["resumed"] = True  # recorded by an earlier attempt of the run, not asked again
    return out
