"""A test-only task whose effect is idempotent: one row per job in ``job_effects`` (a table tests create).

Loaded into real worker processes with ``THREADLINE_TASK_MODULES=tests.jobs.effects_tasks``, so
production code carries no test hooks.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from threadline.jobs.registry import JobContext, task

EFFECT_KIND = "test.effect"

CREATE_EFFECTS_TABLE = """
CREATE TABLE IF NOT EXISTS job_effects (
    job_id BIGINT PRIMARY KEY,
    worker_id VARCHAR(200) NOT NULL,
    attempt INTEGER NOT NULL
)
"""


async def create_effects_table(conn: AsyncConnection) -> None:
    await conn.execute(text(CREATE_EFFECTS_TABLE))


@task(EFFECT_KIND)
async def record_effect(ctx: JobContext, payload: dict[str, Any]) -> None:
    await asyncio.sleep(float(payload.get("sleep_s", 0)))
    await ctx.session.execute(
        text("INSERT INTO job_effects (job_id, worker_id, attempt) VALUES (:id, :w, :a) ON CONFLICT DO NOTHING"),
        {"id": ctx.job_id, "w": ctx.worker_id, "a": ctx.attempt},
    )
