"""``create_app(settings)``: the ASGI application with every surface mounted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import Depends, FastAPI, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from threadline import __version__
from threadline.auth.service import LastUsedRecorder
from threadline.auth.watch import CredentialWatch
from threadline.config import Settings
from threadline.db import migrate
from threadline.db.engine import create_engine, create_sessionmaker, is_sqlite, read_engine, write_engine
from threadline.engines.providers.registry import close_providers
from threadline.events.hub import EventHub
from threadline.kit.clock import ago, days
from threadline.kit.pglisten import libpq_dsn
from threadline.kit.secrets import secret_box
from threadline.logging import configure_logging
from threadline.metrics import CONTENT_TYPE_LATEST, Metrics, refresh_periodically
from threadline.web.access import AccessMiddleware
from threadline.web.body import BufferedBodyMiddleware
from threadline.web.docs import add_docs
from threadline.web.errors import install_error_handlers
from threadline.web.idempotency import IdempotencyMiddleware, IdempotentReplay, purge_expired, replay_response
from threadline.web.limits import Limits
from threadline.web.openapi import ERROR_RESPONSES
from threadline.web.params import single_valued_query
from threadline.web.request_context import RequestContextMiddleware
from threadline.web.session import DatabaseSessionMiddleware
from threadline.web.surfaces import SurfaceRegistry, render_native

log = structlog.get_logger(__name__)

API_DESCRIPTION = """
threadline's native API. Conventions (see docs/api.md):

* **Auth**: `Authorization: Bearer KEY`, `Authorization: api-key KEY` or `X-API-Key: KEY`. Scopes:
  `read` for GET, `write` for changes, `admin` for API keys and the audit log; admin implies write, write implies read.
* **Errors**: `{"error": {"type", "code", "message", "param"}}` with a 4xx status; `param` names the field.
* **Lists**: `{"object": "list", "data", "first_id", "last_id", "has_more"}`; `limit` 1..100 (20),
  `order` asc|desc, `after`/`before` ids. `after=X` means created after X and `before=X` created before
  X, whatever `order` says; `order` only sorts the page, which holds the items nearest the cursor.
* **Idempotency**: send `Idempotency-Key` on any POST; the same key, API key and body replay the first
  response (header `Idempotent-Replayed: true`), a different body is a 422. Keys last 24 hours.
"""


def create_app(settings: Settings | None = None, *, engine: AsyncEngine | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.server.log_level, settings.server.log_format)
    engine = engine or create_engine(settings)
    if settings.database.secret_keys is not None:
        secret_box(settings)  # a malformed key fails here, naming its position (never echoing it)
    read_maker = create_sessionmaker(read_engine(engine), settings)
    write_maker = create_sessionmaker(write_engine(engine), settings)
    events_hub = EventHub(read_maker=read_maker, postgres_dsn=_listen_dsn(engine))
    metrics = Metrics()  # a registry of this app's own, never prometheus-client's global one

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.database.auto_migrate:
            await migrate.upgrade(engine)
        if settings.server.bootstrap:
            from threadline.workspaces.bootstrap import bootstrap_if_empty

            await bootstrap_if_empty(write_maker, settings)
        purger = asyncio.create_task(_housekeeping(write_maker, settings))
        refresher = (
            asyncio.create_task(refresh_periodically(metrics, read_maker, settings.server.metrics_refresh_interval_s))
            if settings.server.metrics_enabled
            else None
        )
        worker, worker_task = (
            _start_worker(settings, write_maker, metrics) if settings.jobs.run_workers else (None, None)
        )
        log.info("app.started", database=engine.dialect.name, workers=settings.jobs.run_workers)
        try:
            yield
        finally:
            purger.cancel()
            if refresher is not None:
                refresher.cancel()
            if worker is not None and worker_task is not None:
                worker.stop()
                await worker_task
            await app.state.last_used.drain()
            await app.state.credentials.close()
            await app.state.limits.close()
            await events_hub.close()
            await close_providers()
            await engine.dispose()
            log.info("app.stopped")

    app = FastAPI(
        title="threadline",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by web.docs, from the package rather than a CDN
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = write_maker
    app.state.read_sessionmaker = read_maker
    app.state.surfaces = SurfaceRegistry([("/v1", render_native)])
    app.state.last_used = LastUsedRecorder(write_maker, settings.server.api_key_touch_interval_s)
    app.state.metrics = metrics
    app.state.events = events_hub
    app.state.credentials = CredentialWatch(read_maker, settings.events.credential_check_interval_s)
    app.state.limits = Limits.from_settings(settings)

    install_error_handlers(app)
    app.add_exception_handler(IdempotentReplay, replay_response)
    _include_routers(app)
    add_docs(app, title=app.title, openapi_url="/openapi.json")
    if settings.server.metrics_enabled:
        _add_metrics_endpoint(app, metrics)

    app.add_middleware(
        IdempotencyMiddleware, ttl_hours=settings.server.idempotency_ttl_hours, box=lambda: secret_box(settings)
    )
    app.add_middleware(
        DatabaseSessionMiddleware, read_maker=read_maker, write_maker=write_maker, serialize_writes=is_sqlite(engine)
    )
    # Outside the session and the write queue: no request holds a connection or a lock before its body has
    # arrived whole and its key has been checked.
    app.add_middleware(
        AccessMiddleware,
        read_maker=read_maker,
        last_used=app.state.last_used,
        rates=app.state.limits.rates,
        trust_forwarded=settings.server.trust_forwarded_headers,
    )
    app.add_middleware(
        BufferedBodyMiddleware,
        max_bytes=settings.server.max_request_bytes,
        timeout_s=settings.server.request_body_timeout_s,
    )
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics if settings.server.metrics_enabled else None,
        unmetered_paths=frozenset({METRICS_PATH}),
    )
    if settings.console.enabled:
        from threadline.console.routes import install as install_console

        install_console(app, settings)  # last: its security headers wrap every other layer
    return app


METRICS_PATH = "/metrics"


def _add_metrics_endpoint(app: FastAPI, metrics: Metrics) -> None:
    """``GET /metrics``: the Prometheus text format; no auth (bind or firewall it, or turn it off)."""

    async def prometheus_metrics() -> Response:
        return Response(content=metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route(METRICS_PATH, prometheus_metrics, methods=["GET"], include_in_schema=False)


def _listen_dsn(engine: AsyncEngine) -> str | None:
    """The plain libpq URL the event listener connects with (PostgreSQL only)."""
    return libpq_dsn(engine.url) if engine.dialect.name == "postgresql" else None


async def _housekeeping(write_maker: Any, settings: Settings) -> None:
    """Delete expired idempotency keys and events past their retention, every purge interval."""
    while True:
        for name, purge in (
            ("idempotency_keys", lambda: purge_expired(write_maker)),
            ("events", lambda: _purge_events(write_maker, settings.events.retention_days)),
            ("audit_events", lambda: _purge_audit_events(write_maker, settings.events.audit_retention_days)),
        ):
            try:
                purged = await purge()
                if purged:
                    log.info("housekeeping.purged", table=name, count=purged)
            except Exception as exc:  # a housekeeping miss is retried next round
                log.warning("housekeeping.purge_failed", table=name, error=type(exc).__name__)
        await asyncio.sleep(settings.server.idempotency_purge_interval_s)


async def _purge_audit_events(write_maker: Any, retention_days: float) -> int:
    from threadline.audit.repository import purge_audit_events

    async with write_maker() as session, session.begin():
        return await purge_audit_events(session, before=ago(days(retention_days)))


async def _purge_events(write_maker: Any, retention_days: float) -> int:
    from threadline.events.repository import purge_events

    async with write_maker() as session, session.begin():
        return await purge_events(session, before=ago(days(retention_days)))


def _start_worker(settings: Settings, write_maker: Any, metrics: Metrics) -> tuple[Any, asyncio.Task[None]]:
    """The embedded worker of ``threadline serve``: jobs run in the API's process."""
    from threadline.jobs.registry import import_task_modules, parse_modules
    from threadline.jobs.worker import WorkerGroup

    import_task_modules(parse_modules(settings.jobs.task_modules))
    worker = WorkerGroup.from_settings(write_maker, settings, metrics=metrics)
    return worker, asyncio.create_task(worker.run(), name="threadline-worker")


def _include_routers(app: FastAPI) -> None:
    from threadline import dialects
    from threadline.agents.endpoints import router as agents
    from threadline.api_keys.endpoints import router as api_keys
    from threadline.audit.endpoints import router as audit_events
    from threadline.channels.endpoints import router as channels
    from threadline.end_users.endpoints import router as end_users
    from threadline.events.endpoints import router as events
    from threadline.health.endpoints import router as health
    from threadline.integrations.endpoints import router as integrations
    from threadline.messages.endpoints import router as messages
    from threadline.privacy.endpoints import router as privacy
    from threadline.runs.endpoints import router as runs
    from threadline.search.endpoints import router as search
    from threadline.tags.endpoints import router as tags
    from threadline.threads.endpoints import counts_router as thread_counts
    from threadline.threads.endpoints import router as threads
    from threadline.usage.endpoints import router as usage
    from threadline.users.endpoints import router as users
    from threadline.webhooks.endpoints import router as webhooks

    app.include_router(health)
    app.include_router(channels)  # the providers' signed webhooks, at the root: /channels/...
    dialects.install(app)
    for router in (
        agents,
        end_users,
        integrations,
        users,
        tags,
        threads,
        thread_counts,
        messages,
        search,
        runs,
        events,
        webhooks,
        api_keys,
        audit_events,
        privacy,
        usage,
    ):
        app.include_router(router, prefix="/v1", responses=ERROR_RESPONSES, dependencies=[Depends(single_valued_query)])
