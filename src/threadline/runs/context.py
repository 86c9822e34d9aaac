"""What a PROMPT agent sees: its system prompt, who it talks to, and as much recent history as fits.

History is counted in the model's own tokens (``Provider.count_tokens``), newest first, until the budget
(the context window less the reply's ``max_tokens``, the tool definitions and the system prompt) is
spent. Roles map as the chat APIs expect: the end user is ``user``; the agent's replies and the human
operators' messages are ``assistant`` (an operator's marked as such, so the model knows a human spoke);
system notes, hidden messages, tool records and discarded messages are left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from threadline.engines.providers.base import ChatMessage, Provider, ToolCall, ToolSpec
from threadline.models.enums import MessageStatus, Role, SentBy

OPERATOR_NOTE = (
    "Part of this conversation was handled by a human operator (their messages are marked "
    "'[human operator]'). Do not repeat or contradict what they said; continue from where they left off."
)


@dataclass(frozen=True, slots=True)
class HistoryItem:
    seq: int
    role: Role
    sent_by: SentBy
    content: str
    status: MessageStatus
    tool_calls: list[dict[str, Any]] | None = None  # an agent reply's record: id, name, arguments, result|error


@dataclass(frozen=True, slots=True)
class Participant:
    display_name: str | None = None
    address: str | None = None
    channel: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


def system_prompt(base: str | None, end_user: Participant, *, operator_spoke: bool) -> str:
    parts = [base.strip()] if base and base.strip() else []
    about: dict[str, Any] = {k: v for k, v in (("name", end_user.display_name), ("channel", end_user.channel)) if v}
    if end_user.info:
        about["info"] = end_user.info
    if about:
        parts.append("About the person you are talking to: " + json.dumps(about, ensure_ascii=False, default=str))
    if operator_spoke:
        parts.append(OPERATOR_NOTE)
    return "\n\n".join(parts)


def _chat(item: HistoryItem) -> tuple[ChatMessage, ...]:
    """One stored message as chat messages: an agent reply that called tools becomes the assistant's call,
    each tool's result, then its answer, so the model sees what it did before (kept or dropped together)."""
    if item.status is MessageStatus.DISCARDED:
        return ()
    if item.role is Role.USER:
        return (ChatMessage(role="user", content=item.content),) if item.content else ()
    if item.role is not Role.ASSISTANT:
        return ()  # system notes, hidden and tool messages are not the conversation
    if item.sent_by is SentBy.OPERATOR:
        return (ChatMessage(role="assistant", content=f"[human operator] {item.content}"),) if item.content else ()
    out: list[ChatMessage] = []
    calls = [c for c in item.tool_calls or [] if isinstance(c, dict) and c.get("id") and c.get("name")]
    if calls:
        out.append(
            ChatMessage(
                role="assistant",
                tool_calls=tuple(ToolCall(str(c["id"]), str(c["name"]), _json(c.get("arguments"))) for c in calls),
            )
        )
        for c in calls:
            result = {"error": c["error"]} if c.get("error") else c.get("result")
            out.append(ChatMessage(role="tool", content=_json(result), tool_call_id=str(c["id"])))
    if item.content:
        out.append(ChatMessage(role="assistant", content=item.content))
    return tuple(out)


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def build(
    provider: Provider,
    *,
    model: str,
    base_prompt: str | None,
    end_user: Participant,
    history: list[HistoryItem],
    tools: tuple[ToolSpec, ...],
    max_tokens: int | None,
    context_window: int | None = None,
) -> tuple[ChatMessage, ...]:
    """The messages of the first model call: system, then the newest history that fits, oldest first.
    ``history`` is in the order the model is to read it (``runs.runtime`` puts a reply right after the
    message it answers, which may be before double texts stored ahead of the reply).

    ``max_tokens`` must be the value the call will send (on an SMS thread the version's ``sms_max_tokens``
    when set): the room kept for the reply is the room the reply may take."""
    operator_spoke = any(h.sent_by is SentBy.OPERATOR for h in history)
    system = ChatMessage(role="system", content=system_prompt(base_prompt, end_user, operator_spoke=operator_spoke))
    window = context_window or provider.context_window(model)
    budget = window - (max_tokens or 0) - provider.count_tokens((system,), tools, model=model)
    chosen: list[tuple[ChatMessage, ...]] = []
    for item in reversed(history):  # in the order given: a reply may sit before messages stored ahead of it
        unit = _chat(item)
        if not unit:
            continue
        cost = provider.count_tokens(unit, model=model)
        if cost > budget:
            break
        budget -= cost
        chosen.append(unit)
    chosen.reverse()
    flat = [m for unit in chosen for m in unit]
    # A chat must not open with the assistant on some servers; the dropped prefix is older history anyway.
    while flat and flat[0].role != "user":
        flat.pop(0)
    return (system, *flat)
