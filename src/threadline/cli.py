"""The ``threadline`` command: serve (or api + worker), migrate, jobs, and manage workspaces and API keys.

Commands that only read or change rows refuse to run on a schema that is not at the latest
migration (``serve`` and ``migrate`` are the ones that apply migrations). Failures a user can act on
print one line to stderr and exit 1; they never show a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from threadline import __version__
from threadline.config import Settings, explain
from threadline.errors import ThreadlineError
from threadline.logging import configure_logging

T = TypeVar("T")

GRACEFUL_SHUTDOWN_S = 10


class CliError(click.ClickException):
    """A failure the user can act on: ``error: <message>`` on stderr, exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


# --------------------------------------------------------------------------------------------- helpers


def _settings(
    database_url: str | None = None, *, alembic_logs: bool = False, recall: bool = True, **overrides: Any
) -> Settings:
    """The process's settings, with the command line's options over the environment. With ``recall`` (every
    command but the servers) and no database named, a missing ``./data`` falls back to the data dir that
    ``threadline serve`` last used (see ``_locate``)."""
    values = {k: v for k, v in overrides.items() if v is not None}
    if database_url:
        values["database_url"] = database_url
    data_dir = _given_data_dir()
    if data_dir is not None:
        values["data_dir"] = data_dir
    try:
        settings = Settings(**values)
    except ValidationError as exc:  # a bad THREADLINE_* variable (or option)
        raise CliError(f"invalid settings: {explain(exc)}") from None
    configure_logging(settings.server.log_level, settings.server.log_format)
    # Alembic says "Context impl SQLiteImpl" each time anything looks at the schema, and "Running upgrade"
    # for each migration: `migrate --verbose` shows them, nothing else does.
    logging.getLogger("alembic").setLevel(logging.INFO if alembic_logs else logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if recall and not _database_named(settings):
        settings = _locate(settings, values)
    return settings


# ------------------------------------------------------------------------------------------- data dir
# `threadline serve` makes its SQLite database in ./data, relative to the directory it was started in (the
# repository, with ./dev serve). Run from anywhere else, the other commands would look in another ./data,
# find nothing and suggest `migrate`, which would make a second, empty database. So `serve` writes down the
# data dir it used, and the other commands fall back to it when no database is named and ./data has none.

DATA_DIR_META = "threadline.data_dir"  # click's context meta: --data-dir (or THREADLINE_DATA_DIR) when given
DATABASE_FILE = "threadline.db"


def _keep_data_dir(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    if value is not None:
        ctx.meta[DATA_DIR_META] = value
    return value


def _given_data_dir() -> Path | None:
    """--data-dir, or THREADLINE_DATA_DIR (click reads it for the option), when the command was given one."""
    ctx = click.get_current_context(silent=True)
    value = ctx.meta.get(DATA_DIR_META) if ctx is not None else None
    return value if isinstance(value, Path) else None


def _database_named(settings: Settings) -> bool:
    """Whether the user said which database: a URL, or a data dir (option or environment)."""
    return bool(settings.database.url) or _given_data_dir() is not None or bool(os.environ.get("THREADLINE_DATA_DIR"))


def _state_file() -> Path:
    """Where `serve` writes down its data dir: $XDG_STATE_HOME/threadline/data_dir (~/.local/state/...)."""
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "threadline" / "data_dir"


def _recorded_data_dir() -> Path | None:
    """The data dir `threadline serve` last used on this account, if it still holds a database."""
    try:
        recorded = Path(_state_file().read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    return recorded if recorded.is_absolute() and (recorded / DATABASE_FILE).is_file() else None


def _record_data_dir(settings: Settings) -> None:
    """Write down the data dir a server uses (SQLite in a data dir only; a URL is the user's to repeat)."""
    if settings.database.url:
        return
    path = _state_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(settings.database.data_dir.resolve()) + "\n", encoding="utf-8")
    except OSError:  # a read-only home: the other commands then only look in ./data
        pass


def _locate(settings: Settings, values: dict[str, Any]) -> Settings:
    """``settings``, or, when ./data holds no database, the same pointed at the data dir `serve` last used."""
    here = settings.database.data_dir.resolve()
    if (here / DATABASE_FILE).exists():
        return settings
    recorded = _recorded_data_dir()
    if recorded is None or recorded == here:
        return settings
    _announce(
        settings,
        f"using {recorded / DATABASE_FILE}, the database `threadline serve` last used "
        f"({here} has none; --data-dir or THREADLINE_DATA_DIR choose another)",
        "cli.data_dir_recalled",
        data_dir=str(recorded),
    )
    return Settings(**{**values, "data_dir": recorded})


def _missing_database(settings: Settings, path: Path) -> CliError:
    """The error for a SQLite database that is not there: where it looked, and how to point at the right one."""
    if settings.database.url:
        return CliError(
            f"no database at {path} (from --database-url or THREADLINE_DATABASE_URL): check the path, or run "
            "`threadline migrate` to create a new, empty database there"
        )
    if _database_named(settings):
        return CliError(
            f"no database at {path} (from --data-dir or THREADLINE_DATA_DIR): check the directory, or run "
            "`threadline migrate` to create a new, empty database there"
        )
    return CliError(
        f"no database at {path}: ./data is looked for in the current directory, and `threadline serve` has "
        f"recorded no other data dir that holds one ({_state_file()}). Point at yours with --data-dir DIR "
        "(or THREADLINE_DATA_DIR=DIR, the directory `threadline serve` ran with), or --database-url URL; "
        "`threadline migrate` would create a new, empty database here"
    )


def _require_database_file(settings: Settings) -> None:
    """Refuse a SQLite database file that does not exist (rather than leave an empty one behind)."""
    path = _sqlite_path(settings)
    if path is not None and not path.exists():
        raise _missing_database(settings, path)


def _announce(settings: Settings, text: str, event: str, **fields: Any) -> None:
    """A line for whoever runs the process, on stderr: as ``text`` in the console log format, and as a log line
    (``event`` with ``fields``) in the JSON one, where every line must parse as JSON."""
    if settings.server.log_format == "json":
        import structlog

        structlog.get_logger("threadline.cli").info(event, **fields)
    else:
        click.echo(text, err=True)


def _display_url(settings: Settings) -> str:
    return make_url(settings.database.resolved_url).render_as_string(hide_password=True)


def _sqlite_path(settings: Settings) -> Path | None:
    url = make_url(settings.database.resolved_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def _run(func: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine; turn the errors a user can act on into a clean message."""
    try:
        return asyncio.run(func())
    except ThreadlineError as exc:
        raise CliError(exc.message) from None
    except (OSError, ConnectionError) as exc:
        raise CliError(f"cannot reach the database: {exc}") from None
    except Exception as exc:
        from sqlalchemy.exc import DBAPIError

        if isinstance(exc, DBAPIError):
            raise CliError(f"database error: {exc.orig or exc}") from None
        raise


async def _with_engine(settings: Settings, body: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    from threadline.db.engine import create_engine

    engine = create_engine(settings)
    try:
        return await body(engine)
    finally:
        await engine.dispose()


def _write_maker(engine: AsyncEngine, settings: Settings) -> async_sessionmaker[AsyncSession]:
    from threadline.db.engine import create_sessionmaker, write_engine

    return create_sessionmaker(write_engine(engine), settings)


async def _require_schema_at_head(engine: AsyncEngine) -> None:
    from threadline.db import migrate

    current = await migrate.current_revision(engine)
    head = migrate.head_revision()
    if current is None:
        raise CliError("the database has no threadline schema yet: run `threadline migrate` first")
    if current != head:
        raise CliError(
            f"the database schema is at revision {current}, not at the latest ({head}): run `threadline migrate` first"
        )


def _with_data(settings: Settings, body: Callable[[AsyncSession], Awaitable[T]], *, write: bool = False) -> T:
    """Run ``body`` in one transaction on a database whose schema is current."""
    _require_database_file(settings)

    async def run(engine: AsyncEngine) -> T:
        from threadline.db.engine import create_sessionmaker

        await _require_schema_at_head(engine)
        maker = _write_maker(engine, settings) if write else create_sessionmaker(engine, settings)
        async with maker() as session, session.begin():
            return await body(session)

    return _run(lambda: _with_engine(settings, run))


def _fmt_time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "-"


_json_option = click.option("--json", "as_json", is_flag=True, help="Print a JSON array (for scripts).")


def _parse_scopes(raw: str) -> list[Any]:
    from threadline.models.enums import Scope

    names = [s.strip().lower() for s in raw.split(",") if s.strip()]
    if not names:
        raise CliError("--scopes needs at least one of: read, write, admin")
    unknown = [s for s in names if s not in Scope._value2member_map_]
    if unknown:
        raise CliError(f"unknown scope {', '.join(repr(s) for s in unknown)}: choose from read, write, admin")
    return [Scope(s) for s in dict.fromkeys(names)]


_database_url_option = click.option(
    "--database-url",
    envvar="THREADLINE_DATABASE_URL",
    show_envvar=True,
    help="postgresql://... or sqlite:///...; default: SQLite in the data dir.",
)
_data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="THREADLINE_DATA_DIR",
    show_envvar=True,
    expose_value=False,
    callback=_keep_data_dir,
    help="Directory of the SQLite database (threadline.db); default: ./data, or else the one `threadline serve` "
    "last used.",
)


def database_url_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--database-url and --data-dir: which database a command works on."""
    return _database_url_option(_data_dir_option(func))


# --------------------------------------------------------------------------------------------- commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="threadline")
def main() -> None:
    """threadline: a self-hostable conversation backend for AI agents."""


def _http_options(func: Callable[..., Any]) -> Callable[..., Any]:
    decorators: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("--host", help="Address to bind [env THREADLINE_HOST; default 127.0.0.1]."),
        click.option("--port", type=int, help="Port to listen on [env THREADLINE_PORT; default 8000]."),
        database_url_option,
        click.option("--no-migrate", is_flag=True, help="Do not apply pending migrations on start."),
        click.option("--no-bootstrap", is_flag=True, help="Do not seed an empty database with a workspace and key."),
    ]
    for option in reversed(decorators):
        func = option(func)
    return func


@main.command()
@_http_options
@click.option("--no-workers", is_flag=True, help="Run the API only, like `threadline api`.")
def serve(
    host: str | None, port: int | None, database_url: str | None, no_migrate: bool, no_bootstrap: bool, no_workers: bool
) -> None:
    """Run the API server and job workers in one process (migrations applied on start unless --no-migrate)."""
    _serve_http(host, port, database_url, no_migrate, no_bootstrap, run_workers=not no_workers)


@main.command()
@_http_options
def api(host: str | None, port: int | None, database_url: str | None, no_migrate: bool, no_bootstrap: bool) -> None:
    """Run the API server only; run jobs with `threadline worker` processes against the same database."""
    _serve_http(host, port, database_url, no_migrate, no_bootstrap, run_workers=False)


def _serve_http(
    host: str | None,
    port: int | None,
    database_url: str | None,
    no_migrate: bool,
    no_bootstrap: bool,
    *,
    run_workers: bool,
) -> None:
    import uvicorn

    from threadline.app import create_app

    overrides: dict[str, Any] = {"host": host, "port": port, "run_workers": run_workers}
    if no_migrate:
        overrides["auto_migrate"] = False
    if no_bootstrap:
        overrides["bootstrap"] = False
    settings = _settings(database_url, recall=False, **overrides)
    if not _database_named(settings) and not (settings.database.data_dir / DATABASE_FILE).exists():
        recorded = _recorded_data_dir()
        if recorded is not None and recorded != settings.database.data_dir.resolve():
            _announce(
                settings,
                f"no database in {settings.database.data_dir.resolve()}: creating one (the last server ran with "
                f"--data-dir {recorded})",
                "cli.new_data_dir",
                data_dir=str(settings.database.data_dir.resolve()),
                last_data_dir=str(recorded),
            )
    # Fail here, in one line, rather than in the app's start-up with a traceback.
    _run(
        lambda: _with_engine(settings, _check_reachable if settings.database.auto_migrate else _require_schema_at_head)
    )
    _record_data_dir(settings)
    if run_workers:
        _import_tasks(settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_config=None,  # keep the logging set up above (stderr; structlog for our own lines)
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        server_header=False,
    )

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # Event streams never finish on their own; end them so the graceful shutdown can complete
            # (their clients reconnect, with Last-Event-ID, to another process).
            app.state.events.close_streams()
            super().handle_exit(sig, frame)

    with _exit_zero_on_signals():
        Server(config).run()


def _import_tasks(settings: Settings) -> None:
    from threadline.jobs.registry import import_task_modules, parse_modules

    try:
        import_task_modules(parse_modules(settings.jobs.task_modules))
    except ImportError as exc:
        raise CliError(f"cannot import a task module ({settings.jobs.task_modules}): {exc}") from None


@main.command()
@database_url_option
@click.option("--concurrency", type=int, help="Jobs run at once [env THREADLINE_WORKER_CONCURRENCY; default 4].")
@click.option("--kind", "kinds", multiple=True, help="Only claim jobs of this kind (repeatable); default: all.")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve Prometheus metrics (job outcomes, durations, queue depth) on this port; default: off.",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address the metrics server binds.")
def worker(
    database_url: str | None,
    concurrency: int | None,
    kinds: tuple[str, ...],
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Run a job worker (no HTTP API). SIGTERM/SIGINT: stop claiming, finish or release running jobs, exit 0."""
    from threadline.db.engine import create_sessionmaker, write_engine
    from threadline.jobs.worker import WorkerGroup
    from threadline.metrics import Metrics, refresh_periodically

    settings = _settings(database_url, worker_concurrency=concurrency)
    if settings.jobs.concurrency < 1:
        raise CliError("--concurrency must be at least 1")
    _require_database_file(settings)
    _import_tasks(settings)

    async def run(engine: AsyncEngine) -> None:
        await _require_schema_at_head(engine)
        maker = create_sessionmaker(write_engine(engine), settings)
        metrics = Metrics() if metrics_port is not None else None
        job_worker = WorkerGroup.from_settings(maker, settings, metrics=metrics, kinds=kinds or None)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, job_worker.stop)
        server, refresher = None, None
        if metrics is not None and metrics_port is not None:
            server = _start_metrics_server(metrics, metrics_host, metrics_port)
            refresher = asyncio.create_task(
                refresh_periodically(metrics, maker, settings.server.metrics_refresh_interval_s)
            )
            url = f"http://{metrics_host}:{server.server_port}/metrics"
            _announce(settings, f"metrics on {url}", "worker.metrics_served", url=url)
        where = _display_url(settings)
        _announce(
            settings,
            f"worker {job_worker.id} running on {where}",
            "worker.running",
            worker_id=job_worker.id,
            database=where,
        )
        try:
            await job_worker.run()
        finally:
            if refresher is not None:
                refresher.cancel()
                await asyncio.gather(refresher, return_exceptions=True)
            if server is not None:
                server.shutdown()
                server.server_close()

    _run(lambda: _with_engine(settings, run))


def _start_metrics_server(metrics: Any, host: str, port: int) -> Any:
    """prometheus-client's HTTP server (a daemon thread) for this process's registry."""
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        raise CliError(f"cannot serve metrics on {host}:{port}: {exc}") from None
    return server


async def _check_reachable(engine: AsyncEngine) -> None:
    from threadline.db.engine import ping

    await ping(engine)


@contextmanager
def _exit_zero_on_signals() -> Iterator[None]:
    """uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal to the handler
    that was there before it; with the default handler the process would die by the signal after a
    clean shutdown. A no-op handler lets ``serve`` return and exit 0 instead."""

    def ignore(_signum: int, _frame: Any) -> None:
        return None

    previous = {sig: signal.signal(sig, ignore) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@main.command()
@database_url_option
@click.option("--revision", default="head", show_default=True, help="Upgrade to this revision.")
@click.option("--downgrade", "downgrade_to", metavar="REV", help="Downgrade to REV instead (e.g. base).")
@click.option("-v", "--verbose", is_flag=True, help="Show each migration as alembic runs it.")
def migrate(database_url: str | None, revision: str, downgrade_to: str | None, verbose: bool) -> None:
    """Apply pending migrations (or downgrade with --downgrade REV)."""
    from threadline.db import migrate as migrations

    settings = _settings(database_url, alembic_logs=verbose)

    async def run(engine: AsyncEngine) -> tuple[str | None, str | None]:
        before = await migrations.current_revision(engine)
        if downgrade_to is not None:
            await migrations.downgrade(engine, downgrade_to)
        else:
            await migrations.upgrade(engine, revision)
        return before, await migrations.current_revision(engine)

    try:
        before, after = _run(lambda: _with_engine(settings, run))
    except CliError:
        raise
    except Exception as exc:  # alembic's CommandError for an unknown revision, among others
        from alembic.util import CommandError

        if isinstance(exc, CommandError):
            raise CliError(str(exc)) from None
        raise
    where = _display_url(settings)
    if before == after:
        click.echo(f"{where}: already at revision {after or 'base'}; nothing to do")
    else:
        click.echo(f"{where}: migrated from {before or 'base'} to {after or 'base'}")


@main.group()
def workspaces() -> None:
    """Create and list workspaces (tenants)."""


@workspaces.command("create")
@click.argument("name")
@database_url_option
def workspaces_create(name: str, database_url: str | None) -> None:
    """Create workspace NAME."""
    from threadline.workspaces.service import create_workspace

    settings = _settings(database_url)

    async def body(session: AsyncSession) -> tuple[str, str]:
        ws = await create_workspace(session, name=name)
        return ws.name, str(ws.public_id)

    ws_name, ws_id = _with_data(settings, body, write=True)
    click.echo(f"created workspace {ws_name} (id {ws_id})")


@workspaces.command("list")
@_json_option
@database_url_option
def workspaces_list(as_json: bool, database_url: str | None) -> None:
    """List workspaces."""
    from threadline.terminal.output import Column, print_records
    from threadline.workspaces.service import list_workspaces

    settings = _settings(database_url)

    async def body(session: AsyncSession) -> list[dict[str, Any]]:
        return [
            {"id": str(w.public_id), "name": w.name, "created_at": w.created_at} for w in await list_workspaces(session)
        ]

    columns = [Column("ID", "id", whole=True), Column("NAME", "name"), Column("CREATED", "created_at")]
    print_records(columns, _with_data(settings, body), as_json=as_json)


@main.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.option("--workspace", "workspace_name", required=True, help="Name of the workspace the key belongs to.")
@click.option("--scopes", required=True, help="Comma-separated: read, write, admin (admin implies write and read).")
@click.option("--name", default="", help="A label to tell keys apart.")
@database_url_option
def keys_create(workspace_name: str, scopes: str, name: str, database_url: str | None) -> None:
    """Create an API key; the secret is the last line of output and is never shown again."""
    from threadline.api_keys.service import create_key
    from threadline.audit.service import Actor
    from threadline.workspaces.service import find_workspace

    scope_list = _parse_scopes(scopes)
    settings = _settings(database_url)

    async def body(session: AsyncSession) -> tuple[str, list[str], str]:
        ws = await find_workspace(session, name=workspace_name)
        if ws is None:
            raise CliError(f"no workspace named '{workspace_name}' (see `threadline workspaces list`)")
        key, secret = await create_key(session, workspace_id=ws.id, scopes=scope_list, name=name, actor=Actor.cli())
        return str(key.public_id), list(key.scopes), secret

    key_id, key_scopes, secret = _with_data(settings, body, write=True)
    click.echo(f"created API key {key_id} in workspace {workspace_name} (scopes: {','.join(key_scopes)})")
    click.echo("the key is shown only this once; store it now:")
    click.echo(secret)


@keys.command("list")
@click.option("--workspace", "workspace_name", help="Only this workspace's keys.")
@_json_option
@database_url_option
def keys_list(workspace_name: str | None, as_json: bool, database_url: str | None) -> None:
    """List API keys (prefixes only, never the secrets)."""
    from threadline.api_keys.service import all_keys
    from threadline.terminal.output import Column, print_records
    from threadline.workspaces.service import find_workspace, list_workspaces

    settings = _settings(database_url)

    async def body(session: AsyncSession) -> list[dict[str, Any]]:
        workspace_id = None
        if workspace_name is not None:
            ws = await find_workspace(session, name=workspace_name)
            if ws is None:
                raise CliError(f"no workspace named '{workspace_name}' (see `threadline workspaces list`)")
            workspace_id = ws.id
        names = {w.id: w.name for w in await list_workspaces(session)}
        return [
            {
                "id": str(k.public_id),
                "workspace": names.get(k.workspace_id, "?"),
                "prefix": k.prefix,
                "name": k.name or None,
                "scopes": [str(s) for s in k.scopes],
                "created_at": k.created_at,
                "revoked_at": k.revoked_at,
            }
            for k in await all_keys(session, workspace_id=workspace_id)
        ]

    columns = [
        Column("ID", "id", whole=True),
        Column("WORKSPACE", "workspace"),
        Column("PREFIX", "prefix", lambda k: f"{k['prefix']}...", whole=True),
        Column("NAME", "name"),
        Column("SCOPES", "scopes"),
        Column("CREATED", "created_at"),
        Column("REVOKED", "revoked_at"),
    ]
    print_records(columns, _with_data(settings, body), as_json=as_json)


@keys.command("revoke")
@click.argument("key_id")
@database_url_option
def keys_revoke(key_id: str, database_url: str | None) -> None:
    """Revoke the key with id KEY_ID (from `threadline keys list`); it is refused from the next request on."""
    from threadline.api_keys.service import revoke_key_by_public_id
    from threadline.audit.service import Actor

    settings = _settings(database_url)

    async def body(session: AsyncSession) -> str:
        key = await revoke_key_by_public_id(session, key_id=key_id, actor=Actor.cli())
        if key is None:
            raise CliError(f"no API key with id '{key_id}' (see `threadline keys list`)")
        return _fmt_time(key.revoked_at)

    revoked_at = _with_data(settings, body, write=True)
    click.echo(f"revoked API key {key_id} (at {revoked_at})")


@main.group()
def users() -> None:
    """Operators of the console (a workspace's users): create them, give them a password or a sign-in link."""


async def _find_operator(session: AsyncSession, email: str, workspace_name: str | None) -> Any:
    """The user with this email in the workspace named, or in the only workspace that has one."""
    from threadline.users.service import find_user
    from threadline.workspaces.service import list_workspaces

    if workspace_name is not None:
        found = await find_user(session, workspace_id=await _workspace_key(session, workspace_name), ref=email)
        if found is None:
            raise CliError(f"no user with email '{email}' in workspace '{workspace_name}'")
        return found
    matches = [
        u for w in await list_workspaces(session) if (u := await find_user(session, workspace_id=w.id, ref=email))
    ]
    if not matches:
        raise CliError(f"no user with email '{email}' in any workspace")
    if len(matches) > 1:
        raise CliError(f"'{email}' is a user of {len(matches)} workspaces: name one with --workspace")
    return matches[0]


def _prompt_password() -> str:
    from threadline.errors import ValidationFailed
    from threadline.users.passwords import check_acceptable

    password: str = click.prompt("Password", hide_input=True, confirmation_prompt="Repeat it", err=True)
    try:
        check_acceptable(password)
    except ValidationFailed as exc:
        raise CliError(exc.message) from None
    return password


def _site(settings: Settings) -> str:
    from threadline.workspaces.bootstrap import site_url

    return site_url(settings)


def _sign_in_link(settings: Settings, token: str) -> str:
    from threadline.console.service import link_path

    return _site(settings) + link_path(token)


def _link_ttl(settings: Settings) -> Any:
    from datetime import timedelta

    return timedelta(hours=settings.console.link_ttl_hours)


@users.command("create")
@click.option("--workspace", "workspace_name", required=True, help="Name of the user's workspace.")
@click.option("--email", required=True, help="The email they sign in with (unique in the workspace, any case).")
@click.option("--role", type=click.Choice(["operator", "admin"]), default="operator", show_default=True)
@click.option("--first-name", default=None)
@click.option("--last-name", default=None)
@click.option("--password", "ask_password", is_flag=True, help="Prompt for their password instead of printing a link.")
@database_url_option
def users_create(
    workspace_name: str,
    email: str,
    role: str,
    first_name: str | None,
    last_name: str | None,
    ask_password: bool,
    database_url: str | None,
) -> None:
    """Create an operator; prints a one-time sign-in link (its last line) unless --password."""
    from threadline.console.service import create_operator, issue_link
    from threadline.models import UserRole
    from threadline.users.service import set_password

    settings = _settings(database_url)
    password = _prompt_password() if ask_password else None

    async def body(session: AsyncSession) -> tuple[str, str | None]:
        workspace_id = await _workspace_key(session, workspace_name)
        user = await create_operator(
            session,
            workspace_id=workspace_id,
            email=email,
            role=UserRole(role),
            first_name=first_name,
            last_name=last_name,
        )
        if password is not None:
            await set_password(session, user=user, password=password)
            return str(user.public_id), None
        return str(user.public_id), await issue_link(session, user=user, ttl=_link_ttl(settings))

    user_id, token = _with_data(settings, body, write=True)
    click.echo(f"created user {user_id} ({email}, {role}) in workspace {workspace_name}")
    if token is None:
        click.echo(f"they sign in at {_site(settings)}/console/sign-in with that password")
        return
    click.echo(
        f"a one-time sign-in link (works once, within {settings.console.link_ttl_hours:g} hours), shown only now:"
    )
    click.echo(_sign_in_link(settings, token))


@users.command("set-password")
@click.argument("email")
@click.option(
    "--workspace", "workspace_name", default=None, help="The user's workspace (needed when several have one)."
)
@database_url_option
def users_set_password(email: str, workspace_name: str | None, database_url: str | None) -> None:
    """Set the console password of the user with EMAIL (prompted twice); signs them out everywhere."""
    from threadline.users.service import set_password

    settings = _settings(database_url)
    password = _prompt_password()

    async def body(session: AsyncSession) -> str:
        user = await _find_operator(session, email, workspace_name)
        await set_password(session, user=user, password=password)
        return str(user.public_id)

    user_id = _with_data(settings, body, write=True)
    click.echo(f"password set for user {user_id} ({email}); their console sessions were ended")


@users.command("sign-in-link")
@click.argument("email")
@click.option(
    "--workspace", "workspace_name", default=None, help="The user's workspace (needed when several have one)."
)
@database_url_option
def users_sign_in_link(email: str, workspace_name: str | None, database_url: str | None) -> None:
    """Print a one-time sign-in link for the user with EMAIL (a forgotten password, a first sign-in)."""
    from threadline.console.service import issue_link

    settings = _settings(database_url)

    async def body(session: AsyncSession) -> str:
        user = await _find_operator(session, email, workspace_name)
        return await issue_link(session, user=user, ttl=_link_ttl(settings))

    token = _with_data(settings, body, write=True)
    click.echo(f"a one-time sign-in link for {email} (works once, within {settings.console.link_ttl_hours:g} hours):")
    click.echo(_sign_in_link(settings, token))


@main.group()
def jobs() -> None:
    """Inspect, retry and purge background jobs."""


@jobs.command("list")
@click.option("--state", type=click.Choice(["queued", "running", "succeeded", "dead"]), help="Only jobs in this state.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@_json_option
@database_url_option
def jobs_list(state: str | None, limit: int, as_json: bool, database_url: str | None) -> None:
    """List jobs, newest first."""
    from threadline.jobs.service import list_jobs
    from threadline.models.enums import JobState
    from threadline.terminal.output import Column, first_line, print_records

    settings = _settings(database_url)

    async def body(session: AsyncSession) -> list[dict[str, Any]]:
        return [
            {
                "id": str(j.public_id),
                "kind": j.kind,
                "state": str(j.state),
                "attempts": j.attempts,
                "max_attempts": j.max_attempts,
                "run_at": j.run_at,
                "locked_by": j.locked_by,
                "last_error": j.last_error,
            }
            for j in await list_jobs(session, state=JobState(state) if state else None, limit=limit)
        ]

    columns = [
        Column("ID", "id", whole=True),
        Column("KIND", "kind"),
        Column("STATE", "state"),
        Column("ATTEMPTS", "attempts", lambda j: f"{j['attempts']}/{j['max_attempts']}"),
        Column("RUN_AT", "run_at"),
        Column("LOCKED_BY", "locked_by"),
        Column("LAST_ERROR", "last_error", lambda j: first_line(j["last_error"])),
    ]
    print_records(columns, _with_data(settings, body), as_json=as_json)


@jobs.command("retry")
@click.argument("job_id")
@database_url_option
def jobs_retry(job_id: str, database_url: str | None) -> None:
    """Queue dead job JOB_ID again with a fresh set of attempts."""
    from threadline.jobs.service import retry_job

    settings = _settings(database_url)

    async def body(session: AsyncSession) -> str:
        job = await retry_job(session, job_id=job_id)
        return str(job.public_id)

    public_id = _with_data(settings, body, write=True)
    click.echo(f"job {public_id} queued again")


@jobs.command("purge")
@click.option("--older-than-days", type=click.FloatRange(min=0), required=True, help="Finished more than N days ago.")
@database_url_option
def jobs_purge(older_than_days: float, database_url: str | None) -> None:
    """Delete succeeded and dead jobs that finished more than N days ago."""
    from threadline.jobs.service import purge_jobs
    from threadline.kit.clock import days

    settings = _settings(database_url)

    async def body(session: AsyncSession) -> int:
        return await purge_jobs(session, older_than=days(older_than_days))

    count = _with_data(settings, body, write=True)
    click.echo(f"purged {count} finished job{'s' if count != 1 else ''}")


@main.group()
def webhooks() -> None:
    """Inspect webhook deliveries (every workspace's)."""


@webhooks.command("deliveries")
@click.option("--webhook", "webhook_id", metavar="ID", help="Only the deliveries of this webhook endpoint.")
@click.option("--status", type=click.Choice(["pending", "succeeded", "failed"]), help="Only deliveries in this status.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@_json_option
@database_url_option
def webhooks_deliveries(
    webhook_id: str | None, status: str | None, limit: int, as_json: bool, database_url: str | None
) -> None:
    """List recent webhook deliveries, newest first."""
    from threadline.kit.ids import parse_uuid
    from threadline.models.enums import WebhookDeliveryStatus
    from threadline.terminal.output import Column, first_line, print_records
    from threadline.webhooks.repository import recent_deliveries

    endpoint_uid = parse_uuid(webhook_id) if webhook_id is not None else None
    if webhook_id is not None and endpoint_uid is None:
        raise CliError(f"--webhook: '{webhook_id}' is not a webhook id (a UUID)")
    settings = _settings(database_url)

    async def body(session: AsyncSession) -> list[dict[str, Any]]:
        rows = await recent_deliveries(
            session,
            endpoint_public_id=endpoint_uid,
            status=WebhookDeliveryStatus(status) if status else None,
            limit=limit,
        )
        return [
            {
                "id": str(d.public_id),
                "webhook_id": str(e.public_id),
                "event_type": d.event_type,
                "status": str(d.status),
                "attempts": d.attempts,
                "last_status_code": d.last_status_code,
                "next_attempt_at": d.next_attempt_at,
                "updated_at": d.updated_at,
                "last_error": d.last_error,
            }
            for d, e in rows
        ]

    columns = [
        Column("ID", "id", whole=True),
        Column("WEBHOOK", "webhook_id", whole=True),
        Column("EVENT", "event_type"),
        Column("STATUS", "status"),
        Column("ATTEMPTS", "attempts"),
        Column("LAST_CODE", "last_status_code"),
        Column("NEXT_ATTEMPT", "next_attempt_at"),
        Column("UPDATED", "updated_at"),
        Column("LAST_ERROR", "last_error", lambda d: first_line(d["last_error"])),
    ]
    print_records(columns, _with_data(settings, body), as_json=as_json)


@main.command()
@click.option("--agent", metavar="NAME", help="The agent to talk to: its name or id (the thread's, with --thread).")
@click.option("--thread", "thread_id", metavar="ID", help="Continue this thread instead of starting a new one.")
@click.option(
    "--end-user",
    metavar="NAME",
    help="Who you are in a new thread: a name for a new end user, or an end user's id; default: your login name.",
)
@click.option(
    "--url",
    envvar="THREADLINE_URL",
    show_envvar=True,
    default="http://127.0.0.1:8000",
    show_default=True,
    help="The running threadline server.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=120,
    show_default=True,
    help="Seconds to wait for each answer of the agent.",
)
def chat(agent: str | None, thread_id: str | None, end_user: str | None, url: str, timeout: float) -> None:
    """Chat with an agent in the terminal, as an end user, over a running server's API (the key comes from
    THREADLINE_API_KEY). Replies stream as they are written; /history, /handoff, /back, /quit. With standard
    input not a terminal (echo hi | threadline chat --agent NAME), each line is one message and only the
    replies are printed; the exit status is 1 when a message got no answer. See docs/cli.md."""
    from threadline.terminal.chat import ChatOptions, run_chat
    from threadline.terminal.client import ChatError

    options = ChatOptions(url=url, agent=agent, thread=thread_id, end_user=end_user, timeout_s=timeout)
    try:
        status = run_chat(options)
    except ChatError as exc:
        raise CliError(str(exc)) from None
    if status:
        raise SystemExit(status)


@main.group()
def secrets() -> None:
    """Manage the encryption of stored secrets (THREADLINE_SECRET_KEYS)."""


@secrets.command("rotate")
@click.option(
    "--batch-size", type=click.IntRange(1, 10_000), default=200, show_default=True, help="Rows per transaction."
)
@database_url_option
def secrets_rotate(batch_size: int, database_url: str | None) -> None:
    """Re-encrypt every stored secret with the first key of THREADLINE_SECRET_KEYS (every workspace's
    integration secrets, webhook signing secrets and agent HTTP tool headers), so older keys can be dropped."""
    from threadline.audit.service import Actor
    from threadline.integrations.rotation import RotationReport, rotate_secret_keys
    from threadline.kit.secrets import secret_box

    settings = _settings(database_url)
    _require_database_file(settings)
    try:
        secret_box(settings)
    except ValueError as exc:  # a malformed key, named by its position (never echoed)
        raise CliError(str(exc)) from None

    async def run(engine: AsyncEngine) -> RotationReport:
        await _require_schema_at_head(engine)
        return await rotate_secret_keys(
            _write_maker(engine, settings), settings=settings, actor=Actor.cli(), batch_size=batch_size
        )

    report = _run(lambda: _with_engine(settings, run))
    counts = report.rotated
    click.echo(
        f"re-encrypted with the first key: {counts['integration']} integrations, "
        f"{counts['webhook_endpoint']} webhook endpoints, {counts['agent_version']} agent versions"
    )
    if report.unreadable:
        for where in report.unreadable:
            click.echo(f"not decryptable with any configured key, left as it was: {where}", err=True)
        raise CliError(
            f"{len(report.unreadable)} left as they were: no configured key decrypts them (was a key removed too soon?)"
        )


@main.group("end-users")
def end_users() -> None:
    """Export or erase an end user's data (GDPR articles 15, 17 and 20); see docs/privacy.md."""


async def _workspace_key(session: AsyncSession, name: str) -> int:
    from threadline.workspaces.service import find_workspace

    ws = await find_workspace(session, name=name)
    if ws is None:
        raise CliError(f"no workspace named '{name}' (see `threadline workspaces list`)")
    return ws.id


@end_users.command("export")
@click.option("--workspace", "workspace_name", required=True, help="Name of the end user's workspace.")
@click.argument("end_user_id")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the export to FILE (written whole or not at all); default: standard output.",
)
@database_url_option
def end_users_export(workspace_name: str, end_user_id: str, output: Path | None, database_url: str | None) -> None:
    """Everything held about end user END_USER_ID, as JSON Lines: what GET /v1/end_users/{id}/export answers."""
    import sys

    from threadline.audit.service import Actor
    from threadline.privacy.export import open_export
    from threadline.privacy.service import record_export

    settings = _settings(database_url)
    partial = output.with_name(f".{output.name}.partial") if output is not None else None

    async def body(session: AsyncSession) -> int:
        export = await open_export(
            session, workspace_id=await _workspace_key(session, workspace_name), end_user_id=end_user_id
        )
        with partial.open("wb") if partial is not None else contextlib.nullcontext(sys.stdout.buffer) as out:
            async for chunk in export.chunks():
                out.write(chunk)
            out.flush()
        return sum(export.counts.values())

    try:
        items = _with_data(settings, body)
    except BaseException:
        if partial is not None:
            partial.unlink(missing_ok=True)
        raise

    async def audited(session: AsyncSession) -> None:
        await record_export(
            session,
            workspace_id=await _workspace_key(session, workspace_name),
            end_user_id=end_user_id,
            actor=Actor.cli(),
        )

    _with_data(settings, audited, write=True)
    if output is not None and partial is not None:
        partial.replace(output)
        click.echo(f"exported end user {end_user_id} to {output} ({items} items)", err=True)


@end_users.command("erase")
@click.option("--workspace", "workspace_name", required=True, help="Name of the end user's workspace.")
@click.argument("end_user_id")
@click.option(
    "--wait",
    is_flag=True,
    help="Carry the erasure out in this process (unless a worker has taken it) and return when it is done.",
)
@database_url_option
def end_users_erase(workspace_name: str, end_user_id: str, wait: bool, database_url: str | None) -> None:
    """Erase end user END_USER_ID and everything that holds their words: what DELETE
    /v1/end_users/{id}?erase=true does. A job does the work; without --wait, a worker (`threadline serve` or
    `threadline worker`) carries it out. Asking again for the same end user shows the same erasure."""
    from threadline.audit.service import Actor
    from threadline.privacy.service import request_erasure

    settings = _settings(database_url)

    async def body(session: AsyncSession) -> tuple[int, str, str]:
        workspace_id = await _workspace_key(session, workspace_name)
        erasure = await request_erasure(session, workspace_id=workspace_id, end_user_id=end_user_id, actor=Actor.cli())
        return workspace_id, str(erasure.public_id), str(erasure.status)

    workspace_id, erasure_id, status = _with_data(settings, body, write=True)
    click.echo(f"erasure {erasure_id} of end user {end_user_id}: {status}")
    if not wait or status == "completed":
        return
    _import_tasks(settings)
    result = _run(lambda: _with_engine(settings, lambda engine: _carry_out(engine, settings, workspace_id, erasure_id)))
    if result.status != "completed":
        raise CliError(f"erasure {erasure_id} failed ({result.error or 'unknown error'}); run this again to resume it")
    erased = result.erased
    click.echo(
        f"erasure {erasure_id}: completed; erased {erased.messages} messages in {erased.threads} threads, "
        f"{erased.events} events, {erased.webhook_deliveries} webhook deliveries, "
        f"{erased.idempotency_keys} stored responses"
    )


async def _carry_out(engine: AsyncEngine, settings: Settings, workspace_id: int, erasure_id: str) -> Any:
    """Run erasures in this process until erasure ``erasure_id`` is done (another worker may do it instead)."""
    from threadline.jobs.worker import Worker, WorkerOptions
    from threadline.privacy.erasure import ERASE_KIND
    from threadline.privacy.schemas import ErasureRead
    from threadline.privacy.service import get_erasure

    maker = _write_maker(engine, settings)
    worker = Worker(maker, WorkerOptions.from_settings(settings, kinds=(ERASE_KIND,), concurrency=1), settings=settings)
    running = asyncio.create_task(worker.run())
    step = None
    try:
        while True:
            async with maker() as session:
                erasure, stopped = await get_erasure(session, workspace_id=workspace_id, erasure_id=erasure_id)
                shown = ErasureRead.of(erasure, job_dead=stopped)
            if shown.step != step:
                step = shown.step
                erased = shown.erased
                click.echo(f"  {step}: {erased.messages} messages, {erased.threads} threads erased", err=True)
            if shown.status in ("completed", "failed"):
                return shown
            if running.done():
                running.result()  # the worker stopped: say why
            await asyncio.sleep(0.2)
    finally:
        worker.stop()
        await running


if __name__ == "__main__":
    main()
