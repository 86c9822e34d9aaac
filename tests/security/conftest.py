"""What the attacks in tests/security share: a real server process on the test database, and raw sockets
that send a request's head and then as little of its body as an attacker likes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from threadline.config import Settings


def server_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a server process for these tests: the run's secret key (it must read what the
    test process encrypted) and whatever the test adds."""
    assert settings.database.secret_keys is not None
    return {"THREADLINE_SECRET_KEYS": settings.database.secret_keys.get_secret_value(), **extra}


@dataclass
class SlowRequest:
    """A request whose head went out, and part of its body (or none of it), on its own connection."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def response(self, within_s: float) -> tuple[int, dict[str, str], bytes]:
        """The status, headers and body the server answers (read until it closes or the body is whole)."""
        status_line = await asyncio.wait_for(self.reader.readline(), within_s)
        assert status_line, "the server closed the connection without answering"
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while True:
            line = await asyncio.wait_for(self.reader.readline(), within_s)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), within_s) if length else b""
        return status, headers, body

    def answered(self) -> bool:
        """Whether anything came back yet (without waiting)."""
        return len(self.reader._buffer) > 0 or self.reader.at_eof()  # type: ignore[attr-defined]

    async def closed_by_server(self, within_s: float) -> bool:
        try:
            rest = await asyncio.wait_for(self.reader.read(), within_s)
        except (TimeoutError, ConnectionError):
            return False
        return rest == b""

    def close(self) -> None:
        self.writer.close()


async def slow_request(
    base: str,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    declared: int = 1000,
    sent: bytes = b"{",
) -> SlowRequest:
    """Send ``method path`` declaring a body of ``declared`` bytes, send ``sent`` of it, and stop there."""
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {url.netloc}", f"Content-Length: {declared}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + sent)
    await writer.drain()
    return SlowRequest(reader, writer)


async def open_slow_requests(count: int, base: str, method: str, path: str, **kwargs: Any) -> list[SlowRequest]:
    requests = [await slow_request(base, method, path, **kwargs) for _ in range(count)]
    await asyncio.sleep(0.3)  # let the server take every one of them in (and, were it wrong, hold something)
    return requests


def json_body(raw: bytes) -> Any:
    return json.loads(raw.decode())
