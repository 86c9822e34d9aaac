from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from threadline.kit.schemas import OutputModel
from threadline.models import Erasure, ErasureStatus
from threadline.web.openapi import ErrorBody

EXPORT_MEDIA_TYPE = "application/x-ndjson"
EXPORT_FORMAT = "threadline.end_user_export"
EXPORT_VERSION = 1
# For the OpenAPI document of the routes that answer 410 for an erased end user (or their threads).
ERASED_RESPONSES: dict[int | str, dict[str, Any]] = {
    410: {
        "model": ErrorBody,
        "description": "The end user was erased, or is being erased (code `end_user_erased`).",
    }
}


class ErasurePlan(OutputModel):
    threads: int = Field(description="The end user's threads when the erasure began.")
    messages: int = Field(description="The messages in those threads then.")


class ErasedCounts(OutputModel):
    """Rows deleted so far: the erasure's progress."""

    threads: int = 0
    messages: int = 0
    runs: int = 0
    events: int = 0
    webhook_deliveries: int = 0
    idempotency_keys: int = 0
    jobs: int = 0


class KeptFigures(OutputModel):
    """What is kept after the erasure, without content: how much was said, and what it cost."""

    threads: int = 0
    messages: int = 0
    messages_inbound: int = 0
    messages_outbound: int = 0
    runs: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    sms_segments: int = 0
    provider_cost: dict[str, str] = Field(
        default_factory=dict, description="The providers' prices of the messages, summed per currency."
    )


class ErasureRead(OutputModel):
    object: Literal["erasure"] = "erasure"
    id: str
    end_user_id: str = Field(description="The erased end user's id (nothing else about them is kept).")
    status: ErasureStatus
    step: str = Field(description="What the job is doing: queued, planning, threads, events, ..., done.")
    planned: ErasurePlan | None
    erased: ErasedCounts
    kept: KeptFigures
    error: str | None = Field(description="Why the last attempt failed (the kind of error, never any content).")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, erasure: Erasure, *, job_dead: bool = False) -> ErasureRead:
        """``job_dead``: its job has used up its attempts, whatever the erasure row last said."""
        status = erasure.status
        if job_dead and status in (ErasureStatus.QUEUED, ErasureStatus.RUNNING):
            status = ErasureStatus.FAILED
        planned: dict[str, Any] | None = erasure.planned
        return cls(
            id=str(erasure.public_id),
            end_user_id=str(erasure.end_user_id),
            status=status,
            step=erasure.step,
            planned=ErasurePlan(**planned) if planned else None,
            erased=ErasedCounts(**(erasure.erased or {})),
            kept=KeptFigures(**(erasure.kept or {})),
            error=erasure.error,
            created_at=erasure.created_at,
            started_at=erasure.started_at,
            finished_at=erasure.finished_at,
        )
