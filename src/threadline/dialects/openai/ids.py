"""OpenAI's ids over threadline's UUIDs, both ways, with nothing stored: each id is a prefix and the 32 hex digits
of a UUID (``conv_`` + a thread's id, ``resp_`` + a run's id), plus an index where one stored message shows as
several items (docs/dialects/openai.md, "Ids").

| item | id | from |
|---|---|---|
| a message | ``msg_<message>`` | the message |
| the text the agent wrote in model call ``i`` of a run | ``msg_<run>_<i>`` | the run's reply (its ``iterations``) |
| the ``j``-th tool call a message records | ``fc_<message or run>_<j>`` | ``tool_calls[j]`` |
| its result | ``fco_<message or run>_<j>`` | ``tool_calls[j].result`` or ``.error`` |
| a tool message (role ``tool``) | ``fco_<message>`` | the message |

A reply a PROMPT agent wrote (a run's message with ``iterations``) is named by its run, so that the ids a
streamed response announces before the reply is stored are the ids it is stored under.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Literal

CONVERSATION = "conv_"
RESPONSE = "resp_"

_HEX = "[0-9a-f]{32}"
_ITEM = re.compile(rf"^(msg|fc|fco)_({_HEX})(?:_(0|[1-9][0-9]{{0,5}}))?$")

ItemKind = Literal["msg", "fc", "fco"]


def conversation_id(thread_uid: uuid.UUID) -> str:
    return CONVERSATION + thread_uid.hex


def response_id(run_uid: uuid.UUID) -> str:
    return RESPONSE + run_uid.hex


def _uuid(value: str, prefix: str) -> uuid.UUID | None:
    if not value.startswith(prefix):
        return None
    rest = value[len(prefix) :]
    if not re.fullmatch(_HEX, rest):
        return None
    return uuid.UUID(hex=rest)


def thread_of(conversation: str) -> uuid.UUID | None:
    """The thread a ``conv_`` id names; None for anything else (a 404 to the caller)."""
    return _uuid(conversation, CONVERSATION)


def run_of(response: str) -> uuid.UUID | None:
    """The run a ``resp_`` id names; None for anything else."""
    return _uuid(response, RESPONSE)


@dataclass(frozen=True, slots=True)
class ItemRef:
    """A parsed item id: its kind, the UUID it carries (a message's, or a run's for a PROMPT reply's items) and its
    index (None for an item that is a whole message)."""

    kind: ItemKind
    uid: uuid.UUID
    index: int | None


def parse_item(item_id: str) -> ItemRef | None:
    found = _ITEM.fullmatch(item_id)
    if found is None:
        return None
    kind, hex_, index = found.groups()
    return ItemRef(kind, uuid.UUID(hex=hex_), int(index) if index is not None else None)  # type: ignore[arg-type]


def message_item(uid: uuid.UUID) -> str:
    return f"msg_{uid.hex}"


def text_item(run_uid: uuid.UUID, iteration: int) -> str:
    return f"msg_{run_uid.hex}_{iteration}"


def call_item(owner: uuid.UUID, index: int) -> str:
    return f"fc_{owner.hex}_{index}"


def output_item(owner: uuid.UUID, index: int | None) -> str:
    return f"fco_{owner.hex}" if index is None else f"fco_{owner.hex}_{index}"
