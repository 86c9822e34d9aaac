"""A real ``threadline`` server process on a free loopback port, for tests that need real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

# A server process starts in a few seconds; on a loaded machine (CI's two cores, every test process busy)
# it has been seen to take 25. Only a server that never comes up waits this long.
START_TIMEOUT_S = 120.0


def agent_server_env(settings: Any, model_base_url: str) -> dict[str, str]:
    """What ``live_server`` needs for a process with its job workers, whose PROMPT agents answer through the OpenAI
    stand-in at ``model_base_url`` and whose tools may call the shop on 127.0.0.1; callers add their own bounds."""
    return {
        "THREADLINE_RUN_WORKERS": "true",
        "THREADLINE_WORKER_POLL_INTERVAL_S": "0.1",
        "THREADLINE_SECRET_KEYS": settings.database.secret_keys.get_secret_value(),
        "THREADLINE_OPENAI_BASE_URL": model_base_url,
        "THREADLINE_OPENAI_API_KEY": "sk-stand-in",
        "THREADLINE_TOOLS_ALLOW_PRIVATE_URLS": "true",
        "THREADLINE_EVENTS_POLL_INTERVAL_S": "0.2",
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(database_url: str, *, port: int | None = None, **env: str) -> Iterator[str]:
    """Run uvicorn on ``create_app`` against ``database_url`` (already migrated); yields the base URL.
    ``port``: a port chosen beforehand, for a server whose settings must name its own URL; else a free one."""
    port = port or free_port()
    environment = {
        **os.environ,
        "THREADLINE_DATABASE_URL": database_url,
        "THREADLINE_AUTO_MIGRATE": "false",
        "THREADLINE_BOOTSTRAP": "false",
        "THREADLINE_LOG_LEVEL": "warning",
        **env,
    }
    # stderr to a file, never a pipe nobody reads (a full pipe would stall the server); shown on failure.
    log_file = tempfile.NamedTemporaryFile(prefix="threadline-server-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "threadline.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            # Open event streams would hold a graceful shutdown forever (``threadline serve`` ends them).
            "--timeout-graceful-shutdown",
            "3",
        ],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    base = f"http://127.0.0.1:{port}"
    _LOGS[base] = log_file.name
    _PROCESSES[base] = proc
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {_tail(log_file.name)}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start in {START_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()
        _PROCESSES.pop(base, None)


def kill_server(base: str) -> None:
    """SIGKILL the server behind ``base``, as a crash would: no shutdown, nothing finished."""
    proc = _PROCESSES[base]
    proc.kill()
    proc.wait()


def server_log(base: str) -> str:
    """The end of the log of the server behind ``base`` (for a failing test's message)."""
    path = _LOGS.get(base)
    return _tail(path) if path else ""


_LOGS: dict[str, str] = {}
_PROCESSES: dict[str, subprocess.Popen[bytes]] = {}


def _tail(path: str, limit: int = 20_000) -> str:
    with open(path, errors="replace") as f:
        return f.read()[-limit:]


@contextmanager
def fuzzed_server(database_url: str, settings: Any) -> Iterator[str]:
    """A server for schemathesis runs: the test run's secret key (it must decrypt what the seeding
    encrypted, and never create a key file), and no worker, so a POST that waits for the agent (``wait``,
    ``stream=true``, Altur's POST) is capped short instead of holding each generated request."""
    with live_server(
        database_url,
        THREADLINE_SECRET_KEYS=settings.database.secret_keys.get_secret_value(),
        THREADLINE_MESSAGE_WAIT_MAX_S="0.2",
        # Event streams end at once, so that a generated request to one gets its whole answer.
        THREADLINE_SSE_MAX_DURATION_S="0.3",
        # One client sends thousands of requests, many with wrong keys on purpose: no budgets here (their
        # own tests are in tests/security/test_rate_limits.py).
        THREADLINE_RATE_LIMIT_PER_KEY="none",
        THREADLINE_RATE_LIMIT_PER_ADDRESS="none",
        THREADLINE_RATE_LIMIT_AUTH_FAILURES="none",
    ) as base:
        yield base
