"""The event envelope, the same on the live stream and in webhook bodies.

Stored events carry ``id`` (a UUID, also the ``webhook-id`` of their deliveries) and ``seq`` (their
position in the workspace's log: what SSE's ``id:`` carries and what ``after`` resumes from).
Transient events (token deltas of a reply being generated) travel the same streams with both
``null``: they are never stored, cannot be resumed, and a stream that reconnects does not replay them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic_core import to_json

from threadline.kit.clock import utcnow


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
