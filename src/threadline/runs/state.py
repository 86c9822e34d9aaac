"""What a run's three steps (runs.claim, runs.turn, runs.finish) hand each other, and the rules they share."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from threadline.config import Settings
from threadline.engines.providers.base import Provider, ProviderError, Usage
from threadline.engines.tools import Action
from threadline.models import Run, Thread
from threadline.models.enums import AgentMode, MessageType
from threadline.runs.context import HistoryItem, Participant


class Executor(Protocol):
    """What the steps need of the process that runs them (runs.runtime.Runtime)."""

    sessionmaker: async_sessionmaker[AsyncSession]
    engine: AsyncEngine
    settings: Settings
    http: httpx.AsyncClient | None

    def provider(self, name: str) -> Provider: ...


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


def as_failure(exc: BaseException) -> RunFailed:
    if isinstance(exc, RunFailed):
        return exc
    if isinstance(exc, ProviderError):
        return RunFailed(exc.code, str(exc), retryable=exc.retryable, from_provider=True)
    if isinstance(exc, ValueError):  # a version the runtime cannot use (bad tools, flow): trying again won't help
        return RunFailed("invalid_agent_version", str(exc)[:500], retryable=False)
    return RunFailed("internal_error", f"unexpected {type(exc).__name__}", retryable=True)


ERASED = "end_user_erased"


def stop_reason(run: Run, thread: Thread) -> str | None:
    if thread.erased_at is not None:
        return ERASED
    if run.cancel_requested:
        return "cancelled"
    if thread.blocked:
        return "thread_blocked"
    if not thread.active:
        return "human_handoff"
    return None


def usage_dict(usage: Usage, *, tool_calls: int | None = None) -> dict[str, Any]:
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
