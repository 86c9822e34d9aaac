"""The ``threadline`` command, run as a real subprocess against the test database, and first-start bootstrap."""

from __future__ import annotations

import asyncio
import io
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from threadline.auth.keys import hash_key
from threadline.config import Settings, normalize_database_url
from threadline.db import migrate
from threadline.db.engine import create_engine, create_sessionmaker, write_engine
from threadline.models import Agent, AgentVersion, ApiKey, EndUser, Thread, Workspace
from threadline.models.enums import AgentMode
from threadline.workspaces.bootstrap import bootstrap_if_empty

KEY_RE = re.compile(r"tl_[A-Za-z0-9_-]{20,}")


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def last_line(self) -> str:
        return self.stdout.strip().splitlines()[-1]


def _cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    env.update(THREADLINE_LOG_LEVEL="warning", **extra)
    return env


async def run_cli(database_url: str, *args: str) -> CliResult:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "threadline.cli",
        *args,
        env=_cli_env(THREADLINE_DATABASE_URL=database_url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _assert_clean_failure(result: CliResult, message: str) -> None:
    assert result.returncode != 0, result
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


async def _create_key(database_url: str, workspace: str, scopes: str = "read,write,admin") -> tuple[str, str]:
    """(key id, secret) of a key made through the CLI."""
    result = await run_cli(database_url, "keys", "create", "--workspace", workspace, "--scopes", scopes)
    assert result.returncode == 0, result
    secret = result.last_line
    assert KEY_RE.fullmatch(secret), result.stdout
    match = re.search(r"created API key (\S+)", result.stdout)
    assert match, result.stdout
    return match.group(1), secret


# ------------------------------------------------------------------------------------------ workspaces


async def test_workspaces_create_then_list_shows_it(database_url: str, engine: AsyncEngine) -> None:
    name = _unique("acme")
    created = await run_cli(database_url, "workspaces", "create", name)
    assert created.returncode == 0, created
    assert name in created.stdout

    listed = await run_cli(database_url, "workspaces", "list")
    assert listed.returncode == 0, listed
    assert listed.stdout.splitlines()[0].split() == ["ID", "NAME", "CREATED"]
    assert any(line.split()[1] == name for line in listed.stdout.splitlines()[1:])


async def test_creating_a_workspace_twice_fails_cleanly(database_url: str, engine: AsyncEngine) -> None:
    name = _unique("twice")
    assert (await run_cli(database_url, "workspaces", "create", name)).returncode == 0
    _assert_clean_failure(await run_cli(database_url, "workspaces", "create", name), "already exists")


# ------------------------------------------------------------------------------------------------ keys


async def test_created_key_is_the_last_line_and_authenticates(database_url: str, client: httpx.AsyncClient) -> None:
    workspace = _unique("keys")
    assert (await run_cli(database_url, "workspaces", "create", workspace)).returncode == 0
    _, secret = await _create_key(database_url, workspace)

    r = await client.get("/v1/tags", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 200, r.text


async def test_key_scopes_from_the_cli_are_enforced(database_url: str, client: httpx.AsyncClient) -> None:
    workspace = _unique("scopes")
    assert (await run_cli(database_url, "workspaces", "create", workspace)).returncode == 0
    _, secret = await _create_key(database_url, workspace, scopes="read")
    headers = {"X-API-Key": secret}
    assert (await client.get("/v1/tags", headers=headers)).status_code == 200
    assert (await client.post("/v1/tags", headers=headers, json={"name": "x"})).status_code == 403


async def test_keys_list_shows_prefix_and_scopes_but_never_the_secret(database_url: str, engine: AsyncEngine) -> None:
    workspace = _unique("list")
    assert (await run_cli(database_url, "workspaces", "create", workspace)).returncode == 0
    key_id, secret = await _create_key(database_url, workspace, scopes="read,write")

    listed = await run_cli(database_url, "keys", "list", "--workspace", workspace)
    assert listed.returncode == 0, listed
    assert secret not in listed.stdout and secret not in listed.stderr
    assert KEY_RE.search(listed.stdout) is None
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["ID", "WORKSPACE", "PREFIX", "NAME", "SCOPES", "CREATED", "REVOKED"]
    assert len(rows) == 1
    cells = rows[0].split()
    assert cells[0] == key_id and cells[1] == workspace
    assert cells[2] == secret[:10] + "..."
    assert "read,write" in cells


async def test_revoked_key_is_refused_on_the_next_request(database_url: str, client: httpx.AsyncClient) -> None:
    workspace = _unique("revoke")
    assert (await run_cli(database_url, "workspaces", "create", workspace)).returncode == 0
    key_id, secret = await _create_key(database_url, workspace)
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/v1/tags", headers=headers)).status_code == 200

    revoked = await run_cli(database_url, "keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked

    r = await client.get("/v1/tags", headers=headers)
    assert r.status_code == 401, r.text
    listed = await run_cli(database_url, "keys", "list", "--workspace", workspace)
    assert listed.stdout.splitlines()[1].split()[-1] != "-"  # the REVOKED column has a time


async def test_key_errors_are_one_clear_line_and_a_non_zero_exit(database_url: str, engine: AsyncEngine) -> None:
    workspace = _unique("errors")
    assert (await run_cli(database_url, "workspaces", "create", workspace)).returncode == 0
    _assert_clean_failure(
        await run_cli(database_url, "keys", "create", "--workspace", _unique("nope"), "--scopes", "read"),
        "no workspace named",
    )
    _assert_clean_failure(
        await run_cli(database_url, "keys", "create", "--workspace", workspace, "--scopes", "read,root"),
        "unknown scope 'root'",
    )
    _assert_clean_failure(await run_cli(database_url, "keys", "revoke", str(uuid.uuid4())), "no API key with id")
    _assert_clean_failure(await run_cli(database_url, "keys", "list", "--workspace", _unique("nope")), "no workspace")


# ------------------------------------------------------------------------------------------ migrations


async def test_migrate_is_idempotent(database_url: str, engine: AsyncEngine) -> None:
    for _ in range(2):
        result = await run_cli(database_url, "migrate")
        assert result.returncode == 0, result
        assert "nothing to do" in result.stdout
    assert await migrate.current_revision(engine) == migrate.head_revision()


async def test_migrate_up_down_and_commands_refuse_an_old_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    _assert_clean_failure(await run_cli(url, "workspaces", "list"), "no database at")
    assert not (tmp_path / "cli.db").exists()

    up = await run_cli(url, "migrate")
    assert up.returncode == 0 and "migrated from base to" in up.stdout, up
    assert (await run_cli(url, "workspaces", "create", "w")).returncode == 0

    down = await run_cli(url, "migrate", "--downgrade", "base")
    assert down.returncode == 0 and "to base" in down.stdout, down
    _assert_clean_failure(await run_cli(url, "workspaces", "list"), "run `threadline migrate` first")
    _assert_clean_failure(await run_cli(url, "serve", "--no-migrate"), "run `threadline migrate` first")

    _assert_clean_failure(await run_cli(url, "migrate", "--revision", "no-such-rev"), "no-such-rev")
    assert (await run_cli(url, "migrate")).returncode == 0
    assert (await run_cli(url, "workspaces", "list")).returncode == 0


async def test_unreachable_database_is_a_clean_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    result = await run_cli(f"postgresql://postgres@127.0.0.1:{port}/x", "workspaces", "list")
    _assert_clean_failure(result, "cannot reach the database")


# ------------------------------------------------------------------------------------------- bootstrap


def _admin_url() -> Any:
    return make_url(normalize_database_url(os.environ["THREADLINE_TEST_DATABASE_URL"]))


async def _admin_execute(sql: str) -> None:
    engine = create_async_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres_only)])
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database of its own, migrated and empty (on PostgreSQL: created here and dropped after)."""
    if request.param == "sqlite":
        url = normalize_database_url(f"sqlite:///{tmp_path / 'boot.db'}")
        cleanup = None
    else:
        name = f"threadline_test_boot_{secrets.token_hex(6)}"
        await _admin_execute(f'CREATE DATABASE "{name}"')
        url = _admin_url().set(database=name).render_as_string(hide_password=False)
        cleanup = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    engine = create_engine(Settings(database_url=url))
    await migrate.upgrade(engine)
    await engine.dispose()
    try:
        yield url
    finally:
        if cleanup:
            await _admin_execute(cleanup)


async def _counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            model.__tablename__: (await conn.execute(select(func.count()).select_from(model))).scalar_one()
            for model in (Workspace, ApiKey, Agent, AgentVersion, EndUser)
        }


def _write_maker(engine: AsyncEngine) -> Any:
    return create_sessionmaker(write_engine(engine), Settings())


async def test_bootstrap_seeds_an_empty_database_once_and_prints_the_key_once(
    empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # An Ollama-style server is configured (no key needed): the PROMPT demo agent answers with it.
    settings = Settings(
        database_url=empty_database_url,
        host="0.0.0.0",
        port=8123,
        openai_base_url="http://127.0.0.1:11434/v1",
        openai_model="llama3.2",
    )
    engine = create_engine(settings)
    try:
        with structlog.testing.capture_logs() as logs:
            await bootstrap_if_empty(_write_maker(engine), settings)
        out = capsys.readouterr().out
        keys = set(KEY_RE.findall(out))
        assert len(keys) == 1, out
        secret = keys.pop()
        assert out.count("first start") == 1
        assert f'curl -H "Authorization: Bearer {secret}" http://127.0.0.1:8123/v1/threads' in out
        assert secret not in repr(logs)  # the key goes to stdout only, never to the logs

        assert await _counts(engine) == {
            "workspaces": 1,
            "api_keys": 1,
            "agents": 2,
            "agent_versions": 2,
            "end_users": 1,
        }
        async with engine.connect() as conn:
            ws = (await conn.execute(select(Workspace))).one()
            key = (await conn.execute(select(ApiKey))).one()
            agent, assistant = (await conn.execute(select(Agent).order_by(Agent.id))).all()
            version, prompt = (await conn.execute(select(AgentVersion).order_by(AgentVersion.id))).all()
            end_user = (await conn.execute(select(EndUser))).one()
        assert assistant.name == "Demo assistant" and assistant.current_version_id == prompt.id
        assert (prompt.mode, prompt.provider, prompt.model) == (AgentMode.PROMPT, "openai", "llama3.2")
        assert "Demo assistant' answers with openai model llama3.2" in out
        assert ws.name == "default"
        assert key.key_hash == hash_key(secret) and key.name == "bootstrap admin"
        assert sorted(key.scopes) == ["admin", "read", "write"] and key.workspace_id == ws.id
        assert agent.name == "Demo agent" and agent.current_version_id == version.id
        assert version.number == 1 and version.mode == AgentMode.FLOW and version.provider == "flow"
        assert version.flow["start"] in version.flow["nodes"]
        assert end_user.display_name == "Demo user" and end_user.channel == "api"

        await bootstrap_if_empty(_write_maker(engine), settings)
        assert capsys.readouterr().out == ""
        assert (await _counts(engine))["workspaces"] == 1
    finally:
        await engine.dispose()


async def test_the_prompt_demo_agent_gets_a_thread_and_a_curl_line_that_works(
    empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(
        database_url=empty_database_url, openai_base_url="http://127.0.0.1:11434/v1", openai_model="llama3.2"
    )
    engine = create_engine(settings)
    try:
        await bootstrap_if_empty(_write_maker(engine), settings)
        out = capsys.readouterr().out
        async with engine.connect() as conn:
            assistant = (await conn.execute(select(Agent).where(Agent.name == "Demo assistant"))).one()
            threads = (await conn.execute(select(Thread).where(Thread.agent_id == assistant.id))).all()
            end_user = (await conn.execute(select(EndUser))).one()
    finally:
        await engine.dispose()
    assert len(threads) == 1
    thread = threads[0]
    assert thread.agent_version_id == assistant.current_version_id and thread.end_user_id == end_user.id
    secret = KEY_RE.findall(out)[0]
    line = (
        f'curl -H "Authorization: Bearer {secret}" -H "Content-Type: application/json" '
        f'-d \'{{"content": "Hello! What can you do?"}}\' '
        f'"http://127.0.0.1:8000/v1/threads/{thread.public_id}/messages?wait=30"'
    )
    assert line in out, out
    assert out.index("Demo assistant' answers with openai model llama3.2") < out.index(line)
    # The flow demo's lines are still there, and the two curl lines name two different threads.
    assert len(set(re.findall(r"/v1/threads/([0-9a-f-]{36})/messages\?wait", out))) == 2
    # Without a model, the assistant has no version, no thread and no curl line.
    plain = Settings(database_url=empty_database_url)
    from threadline.workspaces.bootstrap import Bootstrapped, banner

    quiet = banner(Bootstrapped("default", "w", "k", "tl_x", "a", "e", "t", prompt_agent_note="inactive"), plain)
    assert quiet.count("curl ") == 2 and "Hello! What can you do?" not in quiet


async def test_bootstrap_from_two_processes_at_once_seeds_once(empty_database_url: str) -> None:
    settings = Settings(database_url=empty_database_url)
    engines = [create_engine(settings) for _ in range(4)]  # one engine (pool) per "process"
    outs = [io.StringIO() for _ in engines]
    try:
        await asyncio.gather(
            *(bootstrap_if_empty(_write_maker(e), settings, out=o) for e, o in zip(engines, outs, strict=True))
        )
        assert sum(1 for o in outs if KEY_RE.search(o.getvalue())) == 1
        from threadline.workspaces.bootstrap import prompt_demo_provider

        assert await _counts(engines[0]) == {
            "workspaces": 1,
            "api_keys": 1,
            "agents": 2,  # the FLOW demo agent and the PROMPT demo assistant
            "agent_versions": 2 if prompt_demo_provider(settings) else 1,  # the assistant: a version if a model
            "end_users": 1,
        }
    finally:
        for e in engines:
            await e.dispose()


# --------------------------------------------------------------------------------------------- serve


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_for_health(base: str, proc: subprocess.Popen[bytes], deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"threadline serve exited early with {proc.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("threadline serve did not answer /healthz in time")


@pytest.mark.slow
def test_serve_bootstraps_answers_and_stops_cleanly_on_sigterm(tmp_path: Path, state_home: str) -> None:
    port = _free_port()
    stdout_path, stderr_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "threadline.cli", "serve", "--port", str(port)],
            env=_cli_env(THREADLINE_DATA_DIR=str(tmp_path / "data")),
            cwd=tmp_path,
            stdout=out,
            stderr=err,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_health(base, proc)
        printed = stdout_path.read_text()
        keys = set(KEY_RE.findall(printed))
        assert len(keys) == 1, printed
        secret = keys.pop()
        assert f'curl -H "Authorization: Bearer {secret}" {base}/v1/threads' in printed
        assert secret not in stderr_path.read_text()  # not in the logs
        assert (tmp_path / "data" / "threadline.db").exists()
        # Written down, so that the other commands find this database from any directory (test_data_dir.py).
        assert (Path(state_home) / "threadline" / "data_dir").read_text().strip() == str(tmp_path / "data")

        ready = httpx.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        r = httpx.get(f"{base}/v1/tags", headers={"Authorization": f"Bearer {secret}"}, timeout=5)
        assert r.status_code == 200, r.text
        # The printed curl line works as pasted: it lists the demo thread's messages.
        curl_url = re.search(r'curl -H "Authorization: Bearer \S+" (\S+)', printed)
        assert curl_url is not None, printed
        # The embedded worker lets the demo FLOW agent answer the demo thread's first message at once.
        deadline = time.monotonic() + 20
        while True:
            r = httpx.get(curl_url.group(1), headers={"Authorization": f"Bearer {secret}"}, timeout=5)
            assert r.status_code == 200, r.text
            messages = r.json()["data"]
            if len(messages) > 1 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert [m["role"] for m in messages] == ["user", "assistant"], messages
        assert "demo agent" in messages[1]["content"] and messages[1]["type"] == "button"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, stderr_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_without_a_model_the_prompt_demo_agent_is_created_inactive_and_says_how_to_turn_it_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from threadline.workspaces import bootstrap

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("THREADLINE_OPENAI_API_KEY", raising=False)
    assert bootstrap.prompt_demo_provider(Settings()) is None
    assert bootstrap.prompt_demo_provider(Settings(openai_api_key="sk-x")) == ("openai", "gpt-4o-mini")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "llama_cpp" else None)
    assert bootstrap.prompt_demo_provider(Settings()) == ("local", "gemma-3-270m")
