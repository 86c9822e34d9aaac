"""threadline's rows as OpenAI's objects: a thread as a ``conversation``, its messages as items, a run as a
``response`` (docs/dialects/openai.md, "What maps to what").

Messages come as ORM objects or as the plain rows of a page; both have the same attributes but the metadata
(``metadata_`` on the one, ``metadata`` on the other).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from threadline.dialects.openai import ids
from threadline.models import Message, Run, RunStatus
from threadline.models.enums import MessageType, Role

# The roles this surface shows; hidden notes (operators' eyes only) are not shown, as on the vendors' mounts
# that have no word for them.
SHOWN_ROLES = frozenset({Role.USER, Role.ASSISTANT, Role.SYSTEM, Role.TOOL})
# A system message stored from an OpenAI ``developer`` message says so in its metadata, to read back as one.
ROLE_KEY = "openai_role"
DEVELOPER = "developer"
# A tool message's call id (a ``function_call_output`` item added through this surface).
CALL_ID_KEY = "call_id"

Item = dict[str, Any]


def epoch(at: datetime) -> int:
    return int(at.timestamp())


def metadata_of(m: Any) -> dict[str, Any]:
    value = m.metadata_ if isinstance(m, Message) else m.metadata
    return value if isinstance(value, dict) else {}


def conversation(thread: Any) -> dict[str, Any]:
    """A thread as OpenAI's ``conversation``: its metadata as stored (OpenAI's are strings; one set through /v1
    may hold any JSON)."""
    return {
        "id": ids.conversation_id(thread.public_id),
        "object": "conversation",
        "created_at": epoch(thread.created_at),
        "metadata": thread.metadata_ or {},
    }


# ------------------------------------------------------------------------------------------------ items


def prompt_reply(m: Any) -> bool:
    """Whether ``m`` is the reply a PROMPT agent's run wrote (its model calls recorded in ``iterations``): its items
    are named by its run (see ``ids``)."""
    return m.role is Role.ASSISTANT and m.run_id is not None and bool(m.iterations)


def runs_to_name(messages: Iterable[Any]) -> set[int]:
    """The runs whose public ids name the items of ``messages``."""
    return {m.run_id for m in messages if prompt_reply(m)}


def items_of(m: Any, run_uids: Mapping[int, uuid.UUID]) -> list[Item]:
    """The items one stored message shows as, in order (at least one for every shown role, none for others)."""
    role = Role(m.role)
    if role is Role.TOOL:
        meta = metadata_of(m)
        return [function_output(ids.output_item(m.public_id, None), str(meta.get(CALL_ID_KEY) or ""), m.content)]
    if role in (Role.USER, Role.SYSTEM):
        word = DEVELOPER if role is Role.SYSTEM and metadata_of(m).get(ROLE_KEY) == DEVELOPER else role.value
        return [input_message(ids.message_item(m.public_id), word, m)]
    if role is not Role.ASSISTANT:
        return []
    run_uid = run_uids.get(m.run_id) if prompt_reply(m) else None
    if run_uid is not None:
        return _reply_items(m, run_uid)
    out = call_items(m.public_id, list(enumerate(_calls(m))))
    if m.content or m.media_url or not out:
        out.append(assistant_message(ids.message_item(m.public_id), m.content or ""))
    return out


def _reply_items(m: Any, run_uid: uuid.UUID) -> list[Item]:
    """A PROMPT agent's reply as what happened, model call by model call: the text of each call that went on to
    call tools (``commentary``), those calls and their results, then the answer (``final_answer``)."""
    calls = _calls(m)
    position = {str(c.get("id")): j for j, c in enumerate(calls)}
    iterations = [i for i in m.iterations if isinstance(i, dict)]
    last = len(iterations) - 1
    used: set[int] = set()
    out: list[Item] = []
    for index, iteration in enumerate(iterations):
        text = iteration.get("text")
        if index < last and isinstance(text, str) and text:
            out.append(assistant_message(ids.text_item(run_uid, index), text, phase="commentary"))
        chosen = [position[str(c)] for c in iteration.get("tool_calls") or [] if str(c) in position]
        chosen = [j for j in chosen if j not in used]
        used.update(chosen)
        out += call_items(run_uid, [(j, calls[j]) for j in chosen])
    out += call_items(run_uid, [(j, c) for j, c in enumerate(calls) if j not in used])
    out.append(assistant_message(ids.text_item(run_uid, max(last, 0)), m.content or "", phase="final_answer"))
    return out


def _calls(m: Any) -> list[dict[str, Any]]:
    return [c for c in m.tool_calls or [] if isinstance(c, dict)]


def call_items(owner: uuid.UUID, calls: Sequence[tuple[int, dict[str, Any]]]) -> list[Item]:
    """Each recorded tool call as a ``function_call`` item, followed by its result when it has one."""
    out: list[Item] = []
    for j, call in calls:
        out.append(function_call(ids.call_item(owner, j), call))
        if "result" in call or "error" in call:
            out.append(function_output(ids.output_item(owner, j), str(call.get("id") or ""), call_output(call)))
    return out


def function_call(item_id: str, call: Mapping[str, Any], status: str = "completed") -> Item:
    arguments = call.get("arguments")
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": str(call.get("id") or ""),
        "name": str(call.get("name") or ""),
        "arguments": arguments if isinstance(arguments, str) else _json(arguments if arguments is not None else {}),
    }


def call_output(call: Mapping[str, Any]) -> str:
    """What the model was told a call returned (``runs.context`` tells it the same)."""
    if call.get("error"):
        return _json({"error": call["error"]})
    result = call.get("result")
    return result if isinstance(result, str) else _json(result)


def function_output(item_id: str, call_id: str, output: str) -> Item:
    return {"id": item_id, "type": "function_call_output", "status": "completed", "call_id": call_id, "output": output}


def assistant_message(item_id: str, text: str, *, phase: str | None = None, status: str = "completed") -> Item:
    item: Item = {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [output_text(text)] if text or status == "completed" else [],
    }
    if phase is not None:
        item["phase"] = phase
    return item


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def input_message(item_id: str, role: str, m: Any) -> Item:
    content: list[dict[str, Any]] = []
    if m.content:
        content.append({"type": "input_text", "text": m.content})
    if m.media_url:
        if m.type == MessageType.IMAGE:
            content.append({"type": "input_image", "image_url": m.media_url, "detail": "auto"})
        else:
            content.append({"type": "input_file", "file_url": m.media_url})
    return {"id": item_id, "type": "message", "status": "completed", "role": role, "content": content}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))


# ------------------------------------------------------------------------------------------------ responses

_STATUS = {
    RunStatus.QUEUED: "queued",
    RunStatus.RUNNING: "in_progress",
    RunStatus.COMPLETED: "completed",
    RunStatus.FAILED: "failed",
    RunStatus.CANCELLED: "cancelled",
}


def response(
    run: Run, *, thread_uid: uuid.UUID, agent_uid: uuid.UUID, output: list[Item], status: str | None = None
) -> dict[str, Any]:
    """A run as OpenAI's ``response``: its replies as ``output``, its tokens as ``usage``. ``status``: the status
    to show instead of the run's (a stream's first events show the response before anything of it is read)."""
    shown = status or _STATUS[run.status]
    error = None
    if run.status is RunStatus.FAILED and status is None:
        # OpenAI's error codes are its own (ResponseErrorCode); threadline's code is in the message.
        error = {"code": "server_error", "message": f"{run.error_code or 'failed'}: {run.error_message or ''}".strip()}
    return {
        "id": ids.response_id(run.public_id),
        "object": "response",
        "created_at": epoch(run.created_at),
        "status": shown,
        "background": False,
        "completed_at": epoch(run.finished_at) if shown == "completed" and run.finished_at else None,
        "conversation": {"id": ids.conversation_id(thread_uid)},
        "error": error,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "metadata": {},
        "model": f"agent:{agent_uid}",
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": None,
        "store": True,
        "temperature": None,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "truncation": "disabled",
        "usage": usage(run.usage or {}),
    }


def usage(recorded: Mapping[str, Any]) -> dict[str, Any]:
    input_tokens = int(recorded.get("input_tokens", 0) or 0)
    output_tokens = int(recorded.get("output_tokens", 0) or 0)
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def output_of(run: Run, replies: Sequence[Any]) -> list[Item]:
    """What ``run`` said, as a response's ``output``."""
    return [item for m in replies for item in items_of(m, {run.id: run.public_id})]
