"""The event envelope, the same on the live stream and in webhook bodies.

Stored events carry ``id`` (a UUID, also the ``webhook-id`` of their deliveries) and ``seq`` (their
position in the workspace's log: what SSE's ``id:`` carries and what ``after`` resumes from).
Transient events (token deltas of a reply being generated) travel the same streams with both
``null``: they are never stored, cannot be resumed, and a stream that reconnects does not replay them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field
from pydantic_core import to_json

from threadline.events.types import EventType
from threadline.kit.clock import utcnow
from threadline.kit.schemas import OutputModel

_TYPES: dict[str, Any] = {"enum": [t.value for t in EventType]}


# For the document only: ``envelope`` builds the events sent.
class EventEnvelope(OutputModel):
    """An event, as the live streams and webhook deliveries send it."""

    object: Literal["event"] = "event"
    id: str | None = Field(description="The event's id (a UUID); null on transient events.")
    seq: int | None = Field(description="Its place in the workspace's log, 1, 2, 3...; null on transient events.")
    type: str = Field(json_schema_extra=_TYPES)
    timestamp: datetime
    thread_id: str | None
    data: dict[str, Any] = Field(description="The object the event is about, as the API shows it.")
    changes: list[str] | None = Field(default=None, description="On `*.updated` events: the fields that changed.")


SSE_EVENT_SCHEMA: dict[str, Any] = {
    "description": "One Server-Sent Event: `id: <seq>` (none on transient events), `event: <type>`, "
    "`data: <envelope>`. Lines starting with `:` are keep-alives.",
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", **_TYPES},
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": EventEnvelope.model_json_schema(),
        },
        "retry": {"type": "integer", "minimum": 0},
    },
}
"""The OpenAPI ``schema`` of a ``text/event-stream`` response: under OpenAPI 3.1 it describes each event."""


def envelope(row: Any) -> dict[str, Any]:
    """The envelope of a stored event (an ``EventRepository`` row)."""
    body: dict[str, Any] = {
        "object": "event",
        "id": str(row.public_id),
        "seq": row.seq,
        "type": row.type,
        "timestamp": row.created_at,
        "thread_id": str(row.thread_id) if row.thread_id is not None else None,
        "data": row.data,
    }
    if row.changes is not None:
        body["changes"] = row.changes
    return body


def transient_envelope(
    *, type: str, data: dict[str, Any], thread_id: str | None, timestamp: datetime | None = None
) -> dict[str, Any]:
    return {
        "object": "event",
        "id": None,
        "seq": None,
        "type": type,
        "timestamp": timestamp or utcnow(),
        "thread_id": thread_id,
        "data": data,
    }


def encode(body: dict[str, Any]) -> bytes:
    return to_json(body)


def sse_frame(event_type: str, data: bytes, seq: int | None) -> bytes:
    """One Server-Sent Events message; transient events (no seq) carry no ``id:``, so a client's
    Last-Event-ID stays on the last stored event."""
    head = f"id: {seq}\nevent: {event_type}\n" if seq is not None else f"event: {event_type}\n"
    return head.encode() + b"data: " + data + b"\n\n"
