"""The fan-out: each recorded event becomes one delivery per enabled endpoint that subscribes to its type.

Registered as an events sink (``events.service.BUILTIN_SINK_MODULES``), so it runs in the transaction
that records the events, as they are written: the deliveries and their first jobs commit with the
change and its events, or not at all. Its guard (are there enabled endpoints?) rides on the statement
that numbers the events, so in a workspace without webhooks it costs no round trip at all.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from threadline.events.service import PendingEvent, add_sink
from threadline.events.types import matches
from threadline.webhooks.repository import WebhookRepository, has_enabled_endpoints
from threadline.webhooks.service import enqueue_attempt


async def fan_out(session: AsyncSession, workspace_id: int, events: list[PendingEvent]) -> None:
    repo = WebhookRepository(session, workspace_id)
    endpoints = await repo.enabled_endpoints()
    if not endpoints:
        return
    rows = [
        {"endpoint_id": endpoint.id, "event_id": event.public_id, "event_type": event.type}
        for event in events
        for endpoint in endpoints
        if any(matches(pattern, event.type) for pattern in endpoint.event_types)
    ]
    for delivery_id in await repo.insert_deliveries(rows):
        await enqueue_attempt(session, workspace_id=workspace_id, delivery_id=delivery_id, series=0)


add_sink(fan_out, guard=has_enabled_endpoints)
