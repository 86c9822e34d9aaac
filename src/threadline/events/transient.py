"""Publishing transient events (token deltas) from any process: API or worker.

They are never stored. They are handed to this process's hubs at once and, on PostgreSQL, sent with
``NOTIFY threadline_transient`` to the other processes (each notification names its origin, so a hub
skips its own process's echo). On SQLite only this process's streams get them (``threadline serve``
runs the workers in the API process).
"""

from __future__ import annotations

import secrets
import weakref
from typing import Any, Protocol

from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncEngine

from threadline.events import repository
from threadline.events.schemas import transient_envelope

TRANSIENT_CHANNEL = "threadline_transient"
# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
MAX_TRANSIENT_BYTES = 7900


class TransientReceiver(Protocol):
    """What takes this process's transient events: its hubs (``events.hub.EventHub``)."""

    def deliver_transient(self, workspace_id: int, envelope: dict[str, Any]) -> None: ...


_local_hubs: weakref.WeakSet[TransientReceiver] = weakref.WeakSet()


def register_hub(hub: TransientReceiver) -> None:
    _local_hubs.add(hub)


# This process, in the notifications it sends: its own hubs got the event already and skip the echo.
ORIGIN = secrets.token_hex(8)


def notify_payload(workspace_id: int, envelope: dict[str, Any]) -> str:
    payload = to_json({"w": workspace_id, "o": ORIGIN, "e": envelope}).decode()
    if len(payload.encode()) > MAX_TRANSIENT_BYTES:
        raise ValueError(f"a transient event must encode to under {MAX_TRANSIENT_BYTES} bytes")
    return payload


async def publish(
    engine: AsyncEngine, workspace_id: int, *, type: str, data: dict[str, Any], thread_id: str | None = None
) -> None:
    """Hand a transient event to every live stream of the workspace (or thread), in every process."""
    envelope = transient_envelope(type=type, data=data, thread_id=thread_id)
    # This process's streams at once (the API and the worker share it in `threadline serve`)...
    for hub in list(_local_hubs):
        hub.deliver_transient(workspace_id, envelope)
    if engine.dialect.name != "postgresql":
        return
    # ...and the other processes' through PostgreSQL.
    await repository.notify(engine, TRANSIENT_CHANNEL, notify_payload(workspace_id, envelope))
