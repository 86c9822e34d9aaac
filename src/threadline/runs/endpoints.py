from __future__ import annotations

from fastapi import APIRouter

from threadline.models import Run
from threadline.runs import service
from threadline.runs.repository import RunRepository
from threadline.runs.schemas import RunPage, RunRead, run_read
from threadline.web.deps import ReadAuth, SessionDep, WriteAuth
from threadline.web.params import ListQueryDep, list_envelope

router = APIRouter(tags=["runs"])


@router.get("/threads/{thread_id}/runs", response_model=RunPage, summary="List a thread's runs")
async def list_runs(thread_id: str, session: SessionDep, auth: ReadAuth, query: ListQueryDep) -> RunPage:
    repo = RunRepository(session, auth.workspace_id)
    page = await query.resolve(repo, Run, label="run")
    result = await service.list_runs(session, workspace_id=auth.workspace_id, thread_id=thread_id, page=page)
    refs = await repo.references(result.items)
    return RunPage(**list_envelope(result, lambda r: run_read(r, refs)))


@router.get("/runs/{run_id}", response_model=RunRead, summary="Get a run")
async def get_run(run_id: str, session: SessionDep, auth: ReadAuth) -> RunRead:
    run = await service.get_run(session, workspace_id=auth.workspace_id, run_id=run_id)
    return run_read(run, await RunRepository(session, auth.workspace_id).references([run]))


@router.post(
    "/runs/{run_id}/cancel",
    response_model=RunRead,
    summary="Cancel a run",
    description="A queued run ends at once. A running one is asked to stop: its answer, if it comes, is kept "
    "as a hidden message and not sent, and the run ends `cancelled`. 409 when the run has already finished.",
)
async def cancel_run(run_id: str, session: SessionDep, auth: WriteAuth) -> RunRead:
    run = await service.cancel_run(session, workspace_id=auth.workspace_id, run_id=run_id)
    return run_read(run, await RunRepository(session, auth.workspace_id).references([run]))
