"""The list commands' three outputs: a Rich table at a terminal, aligned plain text in a pipe (tests/cli/test_cli.py
reads it column by column), and ``--json`` for scripts."""

from __future__ import annotations

import json
import sys
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.cli.pty_term import Terminal
from tests.cli.test_cli import _cli_env, _create_key, _unique, run_cli


async def test_json_lists_keep_every_value_whole_and_never_a_secret(database_url: str, engine: AsyncEngine) -> None:
    workspace = _unique("json")
    assert (await run_cli(database_url, "workspaces", "create", workspace)).returncode == 0
    key_id, secret = await _create_key(database_url, workspace, scopes="read,write")

    listed = await run_cli(database_url, "workspaces", "list", "--json")
    assert listed.returncode == 0, listed
    (mine,) = [w for w in json.loads(listed.stdout) if w["name"] == workspace]
    assert set(mine) == {"id", "name", "created_at"}
    assert datetime.fromisoformat(mine["created_at"]).utcoffset() is not None

    keys = await run_cli(database_url, "keys", "list", "--workspace", workspace, "--json")
    assert keys.returncode == 0, keys
    assert json.loads(keys.stdout) == [
        {
            "id": key_id,
            "workspace": workspace,
            "prefix": secret[:10],
            "name": None,
            "scopes": ["read", "write"],
            "created_at": json.loads(keys.stdout)[0]["created_at"],
            "revoked_at": None,
        }
    ]
    assert secret not in keys.stdout

    for args in (["jobs", "list", "--limit", "5"], ["webhooks", "deliveries", "--limit", "5"]):
        result = await run_cli(database_url, *args, "--json")
        assert result.returncode == 0, result
        assert isinstance(json.loads(result.stdout), list)
        assert "\x1b" not in result.stdout


async def test_at_a_terminal_a_list_is_a_table_in_colour_and_in_a_pipe_plain_text(
    database_url: str, engine: AsyncEngine
) -> None:
    workspace = _unique("table")
    assert (await run_cli(database_url, "workspaces", "create", workspace)).returncode == 0

    term = Terminal(
        [sys.executable, "-m", "threadline.cli", "workspaces", "list"],
        _cli_env(THREADLINE_DATABASE_URL=database_url),
    )
    try:
        assert term.wait(timeout=60) == 0
        term.expect(workspace)
    finally:
        term.close()
    assert "\x1b[1m" in term.raw()  # the header in bold
    header = next(line for line in term.text().splitlines() if "NAME" in line)
    assert header.split() == ["ID", "NAME", "CREATED"]
    assert "─" in term.text()  # the rule under the header

    piped = await run_cli(database_url, "workspaces", "list")
    assert "\x1b" not in piped.stdout and "─" not in piped.stdout
    assert piped.stdout.splitlines()[0].split() == ["ID", "NAME", "CREATED"]
