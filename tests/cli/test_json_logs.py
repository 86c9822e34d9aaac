"""``THREADLINE_LOG_FORMAT=json``: every line a real process writes is a JSON object, uvicorn's own included
(its start-up and shutdown lines, its warning about a request it cannot parse), on a fresh data dir."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.test_cli import _free_port, _wait_for_health


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    env.update(THREADLINE_LOG_FORMAT="json", THREADLINE_LOG_LEVEL="debug", **extra)
    return env


def _json_lines(text: str, where: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as a JSON object; a line that is not one fails the test, naming it."""
    objects = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            value = json.loads(line)
        except ValueError:
            pytest.fail(f"{where} line {number} is not JSON: {line!r}\n--- all of it:\n{text[-5000:]}")
        assert isinstance(value, dict), f"{where} line {number} is JSON but not an object: {line!r}"
        assert value.get("event") and value.get("level") and value.get("timestamp"), line
        objects.append(value)
    return objects


def _garbage_request(port: int) -> None:
    """Bytes that are not HTTP: uvicorn answers 400 and logs a warning of its own."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"NOT HTTP AT ALL\x00\r\n\r\n")
        try:
            s.recv(1024)
        except OSError:
            pass


@pytest.mark.slow
@pytest.mark.parametrize("command", ["serve", "api"])
def test_every_line_of_a_server_is_json_uvicorns_included(tmp_path: Path, command: str) -> None:
    port = _free_port()
    stdout_path, stderr_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "threadline.cli", command, "--port", str(port), "--no-bootstrap"],
            env=_env(THREADLINE_DATA_DIR=str(tmp_path / "data")),
            cwd=tmp_path,
            stdout=out,
            stderr=err,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_health(base, proc)
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
        assert httpx.get(f"{base}/v1/tags", timeout=5).status_code == 401  # an error answered by threadline
        _garbage_request(port)
        time.sleep(0.3)  # the warning about it is written before the next line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, stderr_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert stdout_path.read_text() == ""  # stdout is only for the first-start banner (not asked for here)
    lines = _json_lines(stderr_path.read_text(), f"threadline {command} stderr")
    uvicorn = [line for line in lines if str(line.get("logger", "")).startswith("uvicorn")]
    said = " | ".join(str(line["event"]) for line in uvicorn)
    for expected in ("Started server process", "Application startup complete", "Uvicorn running on", "Shutting down"):
        assert expected in said, said
    assert any("Invalid HTTP request" in str(line["event"]) and line["level"] == "warning" for line in uvicorn), said
    # threadline's own lines, in the same format: the access line of each request, with its request id.
    access = [line for line in lines if line["event"] == "request" or line.get("path") == "/v1/tags"]
    assert any(
        line.get("path") == "/v1/tags" and line.get("status") == 401 and line.get("request_id") for line in access
    )


@pytest.mark.slow
def test_every_line_of_a_worker_is_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    migrate = subprocess.run(
        [sys.executable, "-m", "threadline.cli", "migrate"],
        env=_env(THREADLINE_DATABASE_URL=url),
        capture_output=True,
        timeout=60,
    )
    assert migrate.returncode == 0, migrate.stderr
    _json_lines(migrate.stderr.decode(), "threadline migrate stderr")
    log = tmp_path / "worker.log"
    port = _free_port()
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "threadline.cli", "worker", "--metrics-port", str(port)],
            env=_env(THREADLINE_DATABASE_URL=url),
            stdout=subprocess.PIPE,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 30
        while '"worker.running"' not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out == b""
    lines = _json_lines(log.read_text(), "threadline worker stderr")
    events = {line["event"] for line in lines}
    assert {"worker.running", "worker.metrics_served", "worker.started", "worker.stopped"} <= events, events
