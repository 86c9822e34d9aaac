"""A deterministic provider for run-loop tests (the `openai` provider's own tests use the real SDK against
an OpenAI-compatible server): each model call takes the next scripted step."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from threadline.engines.providers.base import (
    ChatMessage,
    Completion,
    CompletionRequest,
    Provider,
    StreamItem,
    TextDelta,
    ToolCall,
    ToolSpec,
    Usage,
)


@dataclass
class Step:
    text: str = ""
    tool_calls: list[tuple[str, str]] = field(default_factory=list)  # (name, JSON arguments)
    error: Exception | None = None
    gate: asyncio.Event | None = None  # the call waits for it before answering


class ScriptedProvider(Provider):
    name = "scripted"

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.requests: list[CompletionRequest] = []
        self.default = Step(text="ok")
        self.started = asyncio.Event()

    def script(self, *steps: Step) -> None:
        self.steps.extend(steps)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamItem]:  # type: ignore[override]
        self.requests.append(request)
        self.started.set()
        step = self.steps.pop(0) if self.steps else self.default
        if step.gate is not None:
            await step.gate.wait()
        if step.error is not None:
            raise step.error
        for word in step.text.split(" ") if step.text else []:
            yield TextDelta(word + " ")
        calls = tuple(ToolCall(f"call_{len(self.requests)}_{i}", n, a) for i, (n, a) in enumerate(step.tool_calls))
        yield Completion(
            text=step.text,
            tool_calls=calls,
            usage=Usage(input_tokens=10, output_tokens=max(1, len(step.text.split()))),
            finish_reason="tool_calls" if calls else "stop",
        )

    def count_tokens(
        self, messages: tuple[ChatMessage, ...], tools: tuple[ToolSpec, ...] = (), *, model: str | None = None
    ) -> int:
        return sum(4 + len((m.content or "").split()) for m in messages) + 10 * len(tools)

    def context_window(self, model: str) -> int:
        return 4096

    @property
    def seen(self) -> list[Any]:
        return self.requests
