"""The ``webhooks.deliver`` job: one attempt of one delivery (see webhooks.delivery), in the outbound pool."""

from __future__ import annotations

from typing import Any

from threadline.jobs.registry import OUTBOUND_POOL, JobContext, task
from threadline.webhooks.delivery import attempt_delivery
from threadline.webhooks.service import DELIVER_KIND


@task(DELIVER_KIND, pool=OUTBOUND_POOL)
async def deliver(ctx: JobContext, payload: dict[str, Any]) -> None:
    if ctx.workspace_id is None:
        raise ValueError("a webhooks.deliver job needs its workspace_id")
    await attempt_delivery(
        ctx.session,
        workspace_id=ctx.workspace_id,
        delivery_id=int(payload["delivery_id"]),
        series=int(payload.get("series", 0)),
        settings=ctx.settings,
        metrics=ctx.metrics,
    )
