from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from threadline.kit.schemas import ListPage, OutputModel
from threadline.models import Run, RunStatus


class RunUsage(OutputModel):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    estimated: bool = Field(
        default=False,
        description="True when the model server reported no usage and threadline counted the tokens itself.",
    )


class RunError(OutputModel):
    code: str
    message: str


class RunRead(OutputModel):
    object: Literal["run"] = "run"
    id: str
    thread_id: str
    agent_version_id: str | None
    status: RunStatus
    trigger_message_id: str | None = Field(description="The first end-user message this run answers.")
    attempts: int
    usage: RunUsage
    error: RunError | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


RunPage = ListPage[RunRead]


def run_read(run: Run, refs: dict[str, dict[int, Any]]) -> RunRead:
    usage = run.usage or {}
    return RunRead(
        id=str(run.public_id),
        thread_id=str(refs["threads"][run.thread_id]),
        agent_version_id=(
            str(refs["agent_versions"][run.agent_version_id]) if run.agent_version_id is not None else None
        ),
        status=run.status,
        trigger_message_id=(
            str(refs["messages"][run.trigger_message_id])
            if run.trigger_message_id is not None and run.trigger_message_id in refs["messages"]
            else None
        ),
        attempts=run.attempts,
        usage=RunUsage(
            input_tokens=int(usage.get("input_tokens", 0)),
            output_tokens=int(usage.get("output_tokens", 0)),
            total_tokens=int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0)),
            estimated=bool(usage.get("estimated", False)),
        ),
        error=RunError(code=run.error_code, message=run.error_message or "") if run.error_code else None,
        cancel_requested=run.cancel_requested,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
    )
