"""``threadline end-users export`` and ``threadline end-users erase``, run as real subprocesses against the
test database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.cli.test_cli import CliResult, _assert_clean_failure, _cli_env
from tests.conftest import Tenant
from tests.factories import create_end_user, create_thread, post_message
from tests.privacy.conftest import distinctive, scan
from threadline.config import Settings


async def run_cli(database_url: str, settings: Settings, *args: str) -> CliResult:
    """The CLI with the test run's secret key (an erasure decrypts stored responses; no key file is made)."""
    import asyncio
    import sys

    assert settings.database.secret_keys is not None
    env = _cli_env(
        THREADLINE_DATABASE_URL=database_url, THREADLINE_SECRET_KEYS=settings.database.secret_keys.get_secret_value()
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "threadline.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def _person(api: httpx.AsyncClient, phrase: str) -> tuple[dict[str, Any], dict[str, Any]]:
    person = await create_end_user(api, display_name=phrase)
    thread = await create_thread(api, end_user_id=person["id"])
    for i in range(3):
        await post_message(api, thread["id"], f"{phrase} {i}")
    return person, thread


async def test_export_writes_what_the_api_answers_to_a_file_or_stdout(
    api: httpx.AsyncClient, tenant: Tenant, database_url: str, settings: Settings, tmp_path: Path
) -> None:
    phrase = distinctive("cli-export")
    person, _ = await _person(api, phrase)
    target = tmp_path / "export.jsonl"

    result = await run_cli(
        database_url, settings, "end-users", "export", "--workspace", tenant.name, person["id"], "--output", str(target)
    )

    assert result.returncode == 0, result
    assert result.stdout == "" and str(target) in result.stderr
    from_file = [json.loads(line) for line in target.read_text().splitlines()]
    from_api = [json.loads(line) for line in (await api.get(f"/v1/end_users/{person['id']}/export")).text.splitlines()]
    assert from_file[1:] == from_api[1:] and from_file[0]["end_user_id"] == person["id"]  # all but exported_at
    assert [line["data"]["content"] for line in from_file if line["type"] == "message"] == [
        f"{phrase} {i}" for i in range(3)
    ]
    assert _files(tmp_path) == [target.name]

    to_stdout = await run_cli(database_url, settings, "end-users", "export", "--workspace", tenant.name, person["id"])
    assert to_stdout.returncode == 0, to_stdout
    assert [json.loads(line) for line in to_stdout.stdout.splitlines()][1:] == from_api[1:]
    # Each export is in the audit log: the two by the CLI as the CLI, the one by the API as its key.
    audit = (await api.get("/v1/audit_events", params={"action": "end_user.exported"})).json()["data"]
    assert [e["actor"]["type"] for e in audit] == ["cli", "api_key", "cli"]
    assert {e["target"]["id"] for e in audit} == {person["id"]}


async def test_export_errors_are_one_clear_line_and_leave_no_file(
    api: httpx.AsyncClient, tenant: Tenant, database_url: str, settings: Settings, tmp_path: Path
) -> None:
    person, _ = await _person(api, distinctive("cli-errors"))
    target = tmp_path / "out.jsonl"
    for args, message in (
        (["--workspace", "no-such-workspace", person["id"]], "no workspace named 'no-such-workspace'"),
        (["--workspace", tenant.name, "00000000-0000-0000-0000-000000000000"], "no end user with id"),
    ):
        result = await run_cli(database_url, settings, "end-users", "export", *args, "--output", str(target))
        _assert_clean_failure(result, message)
    assert _files(tmp_path) == []  # not even a partial file


async def test_erase_with_wait_carries_the_erasure_out_and_asking_again_shows_it(
    api: httpx.AsyncClient, tenant: Tenant, database_url: str, settings: Settings, sessionmaker: Any
) -> None:
    phrase = distinctive("cli-erase")
    person, thread = await _person(api, phrase)

    erase = ("end-users", "erase", "--workspace", tenant.name, person["id"])
    result = await run_cli(database_url, settings, *erase, "--wait")

    assert result.returncode == 0, result
    assert f"of end user {person['id']}: queued" in result.stdout
    assert "completed; erased 3 messages in 1 threads" in result.stdout
    assert (await api.get(f"/v1/end_users/{person['id']}")).status_code == 410
    assert (await api.get(f"/v1/threads/{thread['id']}")).status_code == 404
    assert await scan(sessionmaker, settings, phrase) == []

    again = await run_cli(database_url, settings, *erase)
    assert again.returncode == 0, again
    assert again.stdout.splitlines()[0] == result.stdout.splitlines()[0].replace("queued", "completed")
    missing = await run_cli(database_url, settings, "end-users", "erase", "--workspace", tenant.name, "not-an-end-user")
    _assert_clean_failure(missing, "no end user with id 'not-an-end-user'")
    # One erasure begun, by the CLI; asking again about a finished one is not another.
    audit = (await api.get("/v1/audit_events", params={"action": "end_user.erased"})).json()["data"]
    assert [(e["actor"]["type"], e["target"]["id"], e["details"]["resumed"]) for e in audit] == [
        ("cli", person["id"], False)
    ]
