"""The ``end_users.erase`` job: one erasure, step by step (see privacy.erasure)."""

from __future__ import annotations

from typing import Any

import structlog

from threadline.jobs.registry import JobContext, task
from threadline.kit.secrets import secret_box
from threadline.privacy.erasure import ERASE_KIND, Eraser, ErasureGone, record_failure

log = structlog.get_logger(__name__)


class ErasureAttemptFailed(Exception):
    """An attempt failed; it carries only the kind of error, since the job's row (and its ``last_error``)
    outlives the erasure and an error's message could quote what is being erased."""


@task(ERASE_KIND)
async def erase_end_user(ctx: JobContext, payload: dict[str, Any]) -> None:
    # The batches commit in transactions of their own (an erasure of 100,000 messages is not one
    # transaction); the job's own transaction only marks the job done.
    if ctx.sessionmaker is None or ctx.workspace_id is None:
        raise RuntimeError("end_users.erase needs the worker's sessionmaker and the job's workspace")
    erasure_id = int(payload["erasure_id"])
    box = secret_box(ctx.settings)
    eraser = Eraser(ctx.sessionmaker, ctx.workspace_id, erasure_id, box)
    try:
        await eraser.run()
    except ErasureGone:
        return
    except Exception as exc:
        final = ctx.attempt >= ctx.max_attempts
        # Named by its public id once read (the logs never show row ids); before that, by the job's id.
        public_id = str(eraser.public_id) if eraser.public_id is not None else None
        log.warning(
            "erasure.attempt_failed",
            erasure_id=public_id,
            job_id=ctx.job_id,
            attempt=ctx.attempt,
            final=final,
            exc_info=True,
        )
        await record_failure(
            ctx.sessionmaker,
            workspace_id=ctx.workspace_id,
            erasure_id=erasure_id,
            error=type(exc).__name__,
            final=final,
        )
        named = f"erasure {public_id}" if public_id is not None else "erasure"
        raise ErasureAttemptFailed(f"{named}: {type(exc).__name__}") from None
