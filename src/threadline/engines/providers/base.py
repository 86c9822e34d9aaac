"""The provider interface the run loop talks to; every model backend implements it.

A provider turns a ``CompletionRequest`` (messages in OpenAI's chat roles, tools as JSON schemas) into a
stream of ``TextDelta`` items as the model writes, ending with exactly one ``Completion`` (the whole
text, the tool calls the model asked for, token usage, finish reason). Providers do not run tools and
do not touch the database: the run loop does both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal


class ProviderError(Exception):
    """A provider failed. ``retryable`` says whether trying again later may help (timeouts, 429, 5xx)
    or not (bad key, unknown model, a request the model refuses)."""

    def __init__(self, message: str, *, retryable: bool, code: str = "provider_error") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code


class UnsupportedFeature(ValueError):
    """An agent version asks a provider for something it cannot do (said at version creation)."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  # a JSON schema of type object


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, exactly as the model wrote it (it may be invalid JSON)


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()  # assistant messages that called tools
    tool_call_id: str | None = None  # tool messages: the call they answer
    name: str | None = None


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    model: str
    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...] = ()
    # "auto" | "none" | "required" | the name of one tool the model must call
    tool_choice: str = "auto"
    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    # True: the server reported none and threadline counted the tokens itself (a sum is estimated if any part is).
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.estimated or other.estimated,
        )


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None  # "stop", "tool_calls", "length", ...
    reasoning: str | None = None  # reasoning text, when the provider exposes it


StreamItem = TextDelta | Completion


class Provider(ABC):
    """A model backend. One instance per configuration, shared by concurrent runs."""

    name: str
    # False: only "none" or one named tool can be asked for (the run loop then never asks for "auto").
    supports_auto_tool_choice: bool = True
    # The model a version that names none gets (a provider serving one model of its own); None: a version of
    # this provider must name its model. Ask the registry's ``needs_model(name)``.
    default_model: str | None = None

    @abstractmethod
    def stream(self, request: CompletionRequest) -> AsyncIterator[StreamItem]:
        """Text deltas as they come, then one ``Completion``; raises ``ProviderError``."""

    @abstractmethod
    def count_tokens(
        self, messages: tuple[ChatMessage, ...], tools: tuple[ToolSpec, ...] = (), *, model: str | None = None
    ) -> int:
        """Tokens a request made of ``messages`` (and the tool definitions) takes in the model's context,
        counted with the tokenizer of ``model`` where it is known (pass it: without it a provider serving
        many models has to assume the worst). The count includes the few tokens every request adds to prime
        the reply, so counting messages one by one overstates the total a little, never understates it."""

    @abstractmethod
    def context_window(self, model: str) -> int:
        """The model's context size in tokens."""

    def check(self, *, model: str | None, tools: list[dict[str, Any]], settings: dict[str, Any]) -> None:
        """Raise ``UnsupportedFeature`` when an agent version asks for what this provider cannot do.
        Called when the version is created, so the problem shows there and not at run time."""
        return None

    async def warm_up(self) -> None:
        """Load whatever is loaded lazily (a local model) off the event loop, before counting tokens."""
        return None

    async def aclose(self) -> None:
        return None
