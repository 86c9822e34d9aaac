"""``/healthz`` (the process answers) and ``/readyz`` (the database answers and its schema is current)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from threadline.db import migrate
from threadline.db.engine import ping

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the database is reachable and migrations are current")
async def readyz(request: Request) -> JSONResponse:
    engine = request.app.state.engine
    body: dict[str, Any] = {"status": "ok", "database": engine.dialect.name}
    try:
        await ping(engine)
        current = await migrate.current_revision(engine)
    except Exception as exc:
        body.update(status="unavailable", reason=f"database unreachable: {type(exc).__name__}")
        return JSONResponse(body, status_code=503)
    head = migrate.head_revision()
    body.update(migration=current, migration_head=head)
    if current != head:
        body.update(status="unavailable", reason="database schema is not at the latest migration")
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)
