"""Defect 8 of issue 12, staged against a real server: a request whose path holds ``%1B`` or ``%00`` put raw ESC
and NUL bytes in the server's log (the access line logs the decoded path), so a client could write terminal
escape sequences, or with ``%0A`` a line of its own, into whatever shows or parses the log. Every control
character and line separator is now escaped, in the console format and in the JSON one (where the JSON
escapes alone gave the raw byte back to whoever read the value)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.livesrv import _LOGS, live_server

# The path as a client sends it, its access-log value as the server decodes it, and as the log must show it.
# A CSI "clear screen", NUL, DEL, C1's CSI and NEL, the Unicode separators: no space, so no quoting either.
BYTES = ("/v1/bytes%1B[2J%00%7F%C2%9B%C2%85%E2%80%A8%E2%80%A9x", "/v1/bytes\\x1b[2J\\x00\\x7f\\x9b\\x85\\u2028\\u2029x")
# A line of the attacker's own: LF, a time stamp and a level, then CR.
LINE = ("/v1/line%0A2030-01-01T00:00:00Z [info ] FORGED%0D", "/v1/line\\n2030-01-01T00:00:00Z [info ] FORGED\\r")
# What may never be in the log: every C0 but the newline ending each line, DEL, C1, U+2028, U+2029.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


@pytest.fixture(scope="module", params=["console", "json"])
def server(request: pytest.FixtureRequest, database_url: str, engine: Any) -> Iterator[tuple[str, str]]:
    """(base URL, log format) of a server logging at info, in each format."""
    with live_server(database_url, THREADLINE_LOG_LEVEL="info", THREADLINE_LOG_FORMAT=request.param) as url:
        yield url, request.param


def _log(base: str) -> str:
    return Path(_LOGS[base]).read_text(encoding="utf-8", errors="surrogateescape")


def test_control_characters_in_a_request_path_are_escaped_in_the_log(server: tuple[str, str]) -> None:
    base, log_format = server
    url = httpx.URL(base + "/")
    with httpx.Client(timeout=10) as client:
        for raw, _ in (BYTES, LINE):
            # The raw target, as an attacker's client sends it (httpx would re-encode a path given as text).
            r = client.get(url.copy_with(raw_path=raw.encode("ascii")))
            assert r.status_code in (401, 404), r.text
        client.get(base + "/healthz")  # a line after them: their access lines have been written

    log = _log(base)
    assert RAW.search(log) is None, [line for line in log.splitlines() if RAW.search(line)]
    lines = log.split("\n")
    assert not any(line.startswith("2030-01-01") for line in lines), "the request wrote a line of its own"
    for raw, escaped in (BYTES, LINE):
        (line,) = [line for line in lines if raw.split("%")[0] in line]
        if log_format == "json":
            assert json.loads(line)["path"] == escaped, line
        elif raw == BYTES[0]:
            assert f"path={escaped} " in line, line  # nothing to quote: as it is
        else:
            assert f"path='{escaped.replace(chr(92), chr(92) * 2)}'" in line, line  # quoted by the renderer
