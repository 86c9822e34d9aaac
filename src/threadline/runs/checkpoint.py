"""A run's progress through its tool loop, kept on the run as each step completes (``runs.checkpoint``).

A step is one model call that asked for tools, with the outcome of each of those calls as it completes.
The model's answer is recorded before any of its tools run, and each tool's outcome right after it runs,
each in a short transaction of its own. A retried attempt (the model server failed on the next call, the
worker died) resumes from what is recorded: it pays for no model call twice and never runs again a tool
call that completed. A call that was under way when the attempt died runs again, with the same
``Idempotency-Key``, so that its receiver can tell.

A final answer (a model call that asked for no tool) is not recorded: asking again costs tokens, not side
effects, and the run's reply is stored when the run finishes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from threadline.engines.providers.base import Completion, ToolCall, Usage
from threadline.engines.tools import Action, AddTag, EndConversation, Handoff, ToolOutcome

VERSION = 1


@dataclass(slots=True)
class Step:
    index: int
    completion: Completion
    duration_ms: float
    # One per tool call of the completion, in order; None until that call has completed.
    outcomes: list[ToolOutcome | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.outcomes:
            self.outcomes = [None] * len(self.completion.tool_calls)


def load(raw: dict[str, Any] | None) -> list[Step]:
    """The recorded steps; an unreadable or foreign checkpoint counts as none (the run starts over)."""
    if not raw or raw.get("v") != VERSION:
        return []
    try:
        return [_step(s) for s in raw.get("steps", [])]
    except (KeyError, TypeError, ValueError):
        return []


def dump(steps: list[Step]) -> dict[str, Any]:
    return {"v": VERSION, "steps": [_dump_step(s) for s in steps]}


def idempotency_key(run_id: str, call_id: str, index: int, position: int, seen: set[str]) -> str:
    """``<run id>:<call id>``, the same on every attempt; where a server reuses call ids within a run (some
    number them from 0 on every answer), the later ones also name the step and position to stay unique."""
    key = f"{run_id}:{call_id}"
    if key in seen:
        key = f"{run_id}:{call_id}:{index}.{position}"
    seen.add(key)
    return key


# ------------------------------------------------------------------------------------------ (de)serializing


def _dump_step(step: Step) -> dict[str, Any]:
    c = step.completion
    return {
        "index": step.index,
        "duration_ms": step.duration_ms,
        "completion": {
            "text": c.text,
            "reasoning": c.reasoning,
            "finish_reason": c.finish_reason,
            "tool_calls": [{"id": t.id, "name": t.name, "arguments": t.arguments} for t in c.tool_calls],
            "usage": {
                "input_tokens": c.usage.input_tokens,
                "output_tokens": c.usage.output_tokens,
                "estimated": c.usage.estimated,
            },
        },
        "outcomes": [None if o is None else _dump_outcome(o) for o in step.outcomes],
    }


def _step(raw: dict[str, Any]) -> Step:
    c = raw["completion"]
    usage = c.get("usage") or {}
    completion = Completion(
        text=str(c.get("text") or ""),
        tool_calls=tuple(ToolCall(str(t["id"]), str(t["name"]), str(t["arguments"])) for t in c["tool_calls"]),
        usage=Usage(
            int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)), bool(usage.get("estimated"))
        ),
        finish_reason=c.get("finish_reason"),
        reasoning=c.get("reasoning"),
    )
    outcomes = [None if o is None else _outcome(o) for o in raw["outcomes"]]
    if len(outcomes) != len(completion.tool_calls):
        raise ValueError("a step's outcomes do not match its tool calls")
    return Step(int(raw["index"]), completion, float(raw.get("duration_ms", 0)), outcomes)


def _dump_outcome(outcome: ToolOutcome) -> dict[str, Any]:
    return {"record": outcome.record, "content": outcome.content, "actions": [_dump_action(a) for a in outcome.actions]}


def _outcome(raw: dict[str, Any]) -> ToolOutcome:
    return ToolOutcome(dict(raw["record"]), str(raw["content"]), [_action(a) for a in raw.get("actions", [])])


def _dump_action(action: Action) -> dict[str, Any]:
    if isinstance(action, Handoff):
        return {
            "type": "handoff",
            "reason": action.reason,
            "assign_to": list(action.assign_to),
            "tags": list(action.tags),
        }
    if isinstance(action, AddTag):
        return {"type": "add_tag", "name": action.name}
    return {"type": "end_conversation", "reason": action.reason}


def _action(raw: dict[str, Any]) -> Action:
    kind = raw["type"]
    if kind == "handoff":
        return Handoff(str(raw["reason"]), tuple(raw.get("assign_to", ())), tuple(raw.get("tags", ())))
    if kind == "add_tag":
        return AddTag(str(raw["name"]))
    if kind == "end_conversation":
        return EndConversation(str(raw.get("reason", "")))
    raise ValueError(f"unknown action {kind!r}")
