"""Which database a command works on when none is named: ./data, else the one `threadline serve` last used;
and when there is none, an error that says where it looked and how to point at the right one."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.cli.test_cli import CliResult, _cli_env


async def run_in(cwd: Path, *args: str, **env: str) -> CliResult:
    """The CLI run from ``cwd`` with no database named, as a person runs it from a shell."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "threadline.cli",
        *args,
        cwd=cwd,
        env=_cli_env(**env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())


def _record(state_home: str, data_dir: Path) -> None:
    """What `threadline serve` writes down when it starts (checked in test_cli's serve test)."""
    path = Path(state_home) / "threadline" / "data_dir"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{data_dir}\n")


async def _served_database(tmp_path: Path) -> Path:
    """A data dir with a migrated database holding workspace 'served', as `serve` would leave it."""
    data_dir = tmp_path / "project" / "data"
    project = data_dir.parent
    project.mkdir(parents=True)
    assert (await run_in(project, "migrate")).returncode == 0
    assert (await run_in(project, "workspaces", "create", "served")).returncode == 0
    return data_dir


async def test_commands_elsewhere_use_the_database_serve_last_used(tmp_path: Path, state_home: str) -> None:
    data_dir = await _served_database(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _record(state_home, data_dir)

    listed = await run_in(elsewhere, "workspaces", "list")
    assert listed.returncode == 0, listed
    assert "served" in listed.stdout
    assert f"using {data_dir / 'threadline.db'}" in listed.stderr  # said, on stderr, which one
    assert "served" not in listed.stderr

    # migrate too works on that database, rather than making a second, empty one here.
    migrated = await run_in(elsewhere, "migrate")
    assert migrated.returncode == 0 and "nothing to do" in migrated.stdout, migrated
    assert str(data_dir / "threadline.db") in migrated.stdout
    assert not (elsewhere / "data").exists()

    # A database named by the user wins over the recorded one: ./data, --data-dir, THREADLINE_DATA_DIR.
    other = tmp_path / "other"
    other.mkdir()
    # With a recorded database, a new one here is made by naming it.
    assert (await run_in(other, "migrate", "--data-dir", "data")).returncode == 0
    assert (await run_in(other, "workspaces", "create", "local")).returncode == 0
    here = await run_in(other, "workspaces", "list")  # ./data now has one: it wins
    assert "local" in here.stdout and "served" not in here.stdout and "using" not in here.stderr, here
    by_option = await run_in(elsewhere, "workspaces", "list", "--data-dir", str(other / "data"))
    assert "local" in by_option.stdout and "served" not in by_option.stdout, by_option
    by_env = await run_in(elsewhere, "workspaces", "list", THREADLINE_DATA_DIR=str(other / "data"))
    assert "local" in by_env.stdout and "served" not in by_env.stdout, by_env


async def test_no_database_anywhere_says_where_it_looked_and_how_to_point_at_one(
    tmp_path: Path, state_home: str
) -> None:
    for args in (["keys", "list"], ["worker"]):
        result = await run_in(tmp_path, *args)
        assert result.returncode == 1, result
        message = result.stderr
        assert "Traceback" not in message
        assert f"no database at {tmp_path / 'data' / 'threadline.db'}" in message, message
        assert "--data-dir" in message and "THREADLINE_DATA_DIR" in message and "--database-url" in message
        assert "new, empty database" in message  # migrate is not offered as the fix
    assert not (tmp_path / "data").exists()  # nothing left behind

    # A recorded data dir whose database is gone is not used either.
    _record(state_home, tmp_path / "gone")
    result = await run_in(tmp_path, "workspaces", "list")
    assert result.returncode == 1 and "no database at" in result.stderr, result

    named = await run_in(tmp_path, "workspaces", "list", "--data-dir", str(tmp_path / "typo"))
    assert named.returncode == 1, named
    assert f"no database at {tmp_path / 'typo' / 'threadline.db'} (from --data-dir or THREADLINE_DATA_DIR)" in (
        named.stderr
    )


async def test_migrate_is_quiet_unless_asked(tmp_path: Path) -> None:
    quiet = await run_in(tmp_path, "migrate")
    assert quiet.returncode == 0, quiet
    assert "migrated from base to" in quiet.stdout
    assert "INFO" not in quiet.stderr and "Running upgrade" not in quiet.stderr, quiet.stderr
    assert (await run_in(tmp_path, "migrate", "--downgrade", "base")).returncode == 0
    verbose = await run_in(tmp_path, "migrate", "-v")
    assert verbose.returncode == 0, verbose
    assert "Running upgrade" in verbose.stderr, verbose.stderr
    assert (await run_in(tmp_path, "migrate", "--verbose", "--downgrade", "base")).stderr.count("Running downgrade")
