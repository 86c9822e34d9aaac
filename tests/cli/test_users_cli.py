"""``threadline users``: operators of the console from the command line, and the first start's sign-in link."""

from __future__ import annotations

import asyncio
import io
import re
import sys
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.cli import test_cli
from tests.cli.test_cli import CliResult, _cli_env, _write_maker
from tests.conftest import Tenant, make_tenant
from tests.console.conftest import browser_client, csrf_of, make_operator, sign_in, submit_sign_in
from threadline.app import create_app
from threadline.config import Settings
from threadline.console.web import FORM_COOKIE
from threadline.db.engine import create_engine
from threadline.workspaces.bootstrap import bootstrap_if_empty

empty_database_url = test_cli.empty_database_url  # the fixture: a migrated, empty database of its own
LINK_RE = re.compile(r"(https?://\S+/console/welcome\?token=[A-Za-z0-9_-]{40,})")


async def run_cli(database_url: str, *args: str, stdin: str = "", **env: str) -> CliResult:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "threadline.cli",
        *args,
        env=_cli_env(THREADLINE_DATABASE_URL=database_url, **env),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), timeout=60)
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())


async def _use_link(client: httpx.AsyncClient, link: str, password: str) -> httpx.Response:
    path = urlsplit(link).path + "?" + urlsplit(link).query
    landing = await client.get(path)
    assert landing.status_code == 200, landing.text
    token = urlsplit(link).query.removeprefix("token=")
    data = {"csrf_token": csrf_of(landing.text), "token": token, "password": password, "confirm": password}
    return await client.post("/console/welcome", data=data)


def _email() -> str:
    return f"cli-{uuid.uuid4().hex[:8]}@example.com"


async def test_users_create_prints_a_one_time_link_that_signs_in_as_that_role(
    database_url: str, app: Any, tenant: Tenant, api: httpx.AsyncClient
) -> None:
    email = _email()
    result = await run_cli(
        database_url, "users", "create", "--workspace", tenant.name, "--email", email, "--role", "admin"
    )
    assert result.returncode == 0, result
    link = result.last_line
    assert LINK_RE.fullmatch(link) and link.startswith("http://127.0.0.1:8000/console/welcome?token="), result.stdout
    assert f"({email}, admin) in workspace {tenant.name}" in result.stdout
    users = (await api.get("/v1/users", params={"email": email})).json()["data"]
    assert [u["role"] for u in users] == ["admin"]
    async with browser_client(app) as client:
        r = await _use_link(client, link, "chosen at the link")
        assert r.status_code == 303, r.text
        inbox = (await client.get("/console/inbox")).text
        assert tenant.name in inbox and ">admin<" in inbox
    async with browser_client(app) as client:
        assert (await client.get(urlsplit(link).path + "?" + urlsplit(link).query)).status_code == 410
    # With a public base URL, the link names it.
    other = await run_cli(
        database_url,
        "users",
        "create",
        "--workspace",
        tenant.name,
        "--email",
        _email(),
        THREADLINE_PUBLIC_BASE_URL="https://chat.example.com/",
    )
    assert other.returncode == 0 and other.last_line.startswith("https://chat.example.com/console/welcome?token=")


async def test_users_create_with_password_prompts_for_it_twice(
    database_url: str, app: Any, tenant: Tenant, engine: AsyncEngine
) -> None:
    email = _email()
    result = await run_cli(
        database_url, "users", "create", "--workspace", tenant.name, "--email", email, "--password",
        stdin="typed twice here\ntyped twice here\n",
    )  # fmt: skip
    assert result.returncode == 0, result
    assert "typed twice here" not in result.stdout + result.stderr
    assert not LINK_RE.search(result.stdout) and "/console/sign-in" in result.stdout
    async with browser_client(app) as client:
        assert (await submit_sign_in(client, email, "typed twice here")).status_code == 303
    for stdin, message in [
        ("short\nshort\n", "at least 8 characters"),
        ("one password\nanother one\n", "Error"),  # click says the two entries do not match, then runs out
    ]:
        failed = await run_cli(
            database_url, "users", "create", "--workspace", tenant.name, "--email", _email(), "--password",
            stdin=stdin,
        )  # fmt: skip
        assert failed.returncode != 0 and message in failed.stderr, failed
        assert "Traceback" not in failed.stderr
    for args, message in [
        (("--workspace", "no-such-workspace", "--email", _email()), "no workspace named"),
        (("--workspace", tenant.name, "--email", email), "already exists"),
        (("--workspace", tenant.name, "--email", "not an email"), "email"),
    ]:
        failed = await run_cli(database_url, "users", "create", *args)
        assert failed.returncode == 1 and message in failed.stderr and "Traceback" not in failed.stderr, failed


async def test_set_password_signs_the_user_out_everywhere(
    database_url: str, app: Any, sessionmaker: Any, tenant: Tenant
) -> None:
    account = await make_operator(sessionmaker, tenant)
    async with browser_client(app) as client:
        await sign_in(client, account)
        result = await run_cli(database_url, "users", "set-password", account.email.upper(), stdin="new pass 123\n" * 2)
        assert result.returncode == 0, result
        assert "sessions were ended" in result.stdout and "new pass 123" not in result.stdout + result.stderr
        assert (await client.get("/console/inbox")).status_code == 303
        assert (await submit_sign_in(client, account.email, account.password)).status_code == 401
        assert (await submit_sign_in(client, account.email, "new pass 123")).status_code == 303
    # The same email in a second workspace: the command asks which one.
    elsewhere = await make_tenant(sessionmaker)
    await make_operator(sessionmaker, elsewhere, email=account.email)
    ambiguous = await run_cli(database_url, "users", "set-password", account.email, stdin="whatever pw\n" * 2)
    assert ambiguous.returncode == 1 and "--workspace" in ambiguous.stderr, ambiguous
    named = await run_cli(
        database_url, "users", "set-password", account.email, "--workspace", elsewhere.name, stdin="whatever pw\n" * 2
    )
    assert named.returncode == 0, named
    unknown = await run_cli(database_url, "users", "set-password", _email(), stdin="whatever pw\n" * 2)
    assert unknown.returncode == 1 and "no user with email" in unknown.stderr


async def test_sign_in_link_gives_a_new_link_and_leaves_the_password(
    database_url: str, app: Any, sessionmaker: Any, tenant: Tenant
) -> None:
    account = await make_operator(sessionmaker, tenant)
    result = await run_cli(database_url, "users", "sign-in-link", account.email, "--workspace", tenant.name)
    assert result.returncode == 0, result
    link = result.last_line
    assert LINK_RE.fullmatch(link), result.stdout
    async with browser_client(app) as client:
        r = await _use_link(client, link, "")
        assert r.status_code == 303, r.text
        assert (await client.get("/console/inbox")).status_code == 200
    async with browser_client(app) as client:
        assert (await submit_sign_in(client, account.email, account.password)).status_code == 303


async def test_first_start_prints_the_console_and_a_one_time_link_for_an_admin(empty_database_url: str) -> None:
    settings = Settings(database_url=empty_database_url, host="0.0.0.0", port=8123, bootstrap=False)
    engine = create_engine(settings)
    try:
        out = io.StringIO()
        await bootstrap_if_empty(_write_maker(engine), settings, out=out)
        printed = out.getvalue()
        assert "The operator console: http://127.0.0.1:8123/console" in printed, printed
        links = LINK_RE.findall(printed)
        assert len(links) == 1 and links[0].startswith("http://127.0.0.1:8123/console/welcome?token="), printed
        again = io.StringIO()
        await bootstrap_if_empty(_write_maker(engine), settings, out=again)
        assert again.getvalue() == ""  # shown once

        app = create_app(settings.replace(auto_migrate=False), engine=engine)
        async with browser_client(app) as client:
            landing = await client.get(urlsplit(links[0]).path + "?" + urlsplit(links[0]).query)
            assert "admin@localhost" in landing.text and "default" in landing.text
            assert FORM_COOKIE in client.cookies
            r = await _use_link(client, links[0], "the admin's password")
            assert r.status_code == 303, r.text
            inbox = (await client.get("/console/inbox")).text
            assert ">default<" in inbox and ">admin<" in inbox
        async with browser_client(app) as client:
            assert (await submit_sign_in(client, "admin@localhost", "the admin's password")).status_code == 303
    finally:
        await engine.dispose()
