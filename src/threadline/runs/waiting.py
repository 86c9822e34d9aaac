"""Waiting for a run to finish (POST a message with ``wait``), woken by the event hub, not by polling."""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from threadline.events.hub import EventHub
from threadline.models import Message, Run
from threadline.models.run import FINISHED
from threadline.runs.repository import RunRepository


async def wait_for_run(
    hub: EventHub,
    read_maker: async_sessionmaker[AsyncSession],
    workspace_id: int,
    run: Run,
    *,
    seconds: float,
    poll_s: float,
) -> tuple[Run, list[Message]]:
    """The run as it is once finished (or when ``seconds`` have passed), and its replies so far."""
    deadline = time.monotonic() + seconds
    sub = await hub.subscribe(workspace_id)
    try:
        while True:
            sub.changed.clear()
            async with read_maker() as session:
                repo = RunRepository(session, workspace_id)
                current = await repo.fresh(run.id)
                if current is None:  # the thread was deleted meanwhile
                    return run, []
                replies = await repo.replies(run.id)
            remaining = deadline - time.monotonic()
            if current.status in FINISHED or remaining <= 0 or sub.closed:
                return current, replies
            await sub.wait(min(remaining, poll_s))
    finally:
        hub.unsubscribe(sub)
