"""An event stream opened with a key ends within 5 s of the key's revocation, or of its workspace's deletion,
whichever process the stream and the revocation are on (issue 12, defect 5), staged against two real server
processes on one database.

Before the fix a stream opened before the revocation went on receiving every later event, message contents
included, for as long as it stayed open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from sqlalchemy import delete

from tests.conftest import Tenant, add_key, make_tenant
from tests.factories import create_thread
from tests.livesrv import live_server, server_log
from tests.security.conftest import server_env
from threadline.models import Workspace
from threadline.models.enums import Scope

ENDS_WITHIN_S = 5.0  # what the issue asks; the server checks every THREADLINE_CREDENTIAL_CHECK_INTERVAL_S (1 s)


@pytest.fixture(scope="module")
def two_servers(database_url: str, settings: Any) -> Iterator[tuple[str, str]]:
    env = server_env(settings, THREADLINE_RUN_WORKERS="false", THREADLINE_SSE_KEEPALIVE_S="0.5")
    with ExitStack() as stack:
        yield (
            stack.enter_context(live_server(database_url, **env)),
            stack.enter_context(live_server(database_url, **env)),
        )


class OpenStream:
    """A stream read in the background; ``ended`` is when the server ended it."""

    def __init__(self, client: httpx.AsyncClient, path: str, key: str) -> None:
        self.received = b""
        self.ended: float | None = None
        self.status: int | None = None
        self._opened = asyncio.Event()
        self._task = asyncio.create_task(self._read(client, path, key))

    async def _read(self, client: httpx.AsyncClient, path: str, key: str) -> None:
        async with client.stream("GET", path, headers={"Authorization": f"Bearer {key}"}) as response:
            self.status = response.status_code
            self._opened.set()
            async for chunk in response.aiter_raw():
                self.received += chunk
        self.ended = time.monotonic()

    async def opened(self) -> None:
        await asyncio.wait_for(self._opened.wait(), 30)
        assert self.status == 200

    async def ends_within(self, seconds: float) -> float:
        try:
            await asyncio.wait_for(asyncio.shield(self._task), seconds)
        except TimeoutError:
            self._task.cancel()
            pytest.fail(f"the stream was still open {seconds} s later")
        assert self.ended is not None
        return self.ended


async def _revoke(base: str, admin: Tenant, key: str) -> None:
    async with httpx.AsyncClient(base_url=base, headers=admin.headers, timeout=30) as api:
        keys = (await api.get("/v1/api_keys", params={"limit": 100})).json()["data"]
        key_id = next(k["id"] for k in keys if key.startswith(k["prefix"]))
        r = await api.post(f"/v1/api_keys/{key_id}/revoke")
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("where", ["same process", "another process"])
async def test_a_revoked_keys_event_stream_ends_within_5_s(
    two_servers: tuple[str, str], sessionmaker: Any, where: str
) -> None:
    streaming, revoking = two_servers if where == "another process" else (two_servers[0], two_servers[0])
    admin = await make_tenant(sessionmaker)
    reader_key = await add_key(sessionmaker, admin, (Scope.READ,))
    async with httpx.AsyncClient(base_url=streaming, timeout=None) as client:
        stream = OpenStream(client, "/v1/events", reader_key)
        await stream.opened()
        async with httpx.AsyncClient(base_url=revoking, headers=admin.headers, timeout=30) as api:
            thread = await create_thread(api)
            before = await api.post(f"/v1/threads/{thread['id']}/messages", json={"content": "before revocation"})
            assert before.status_code == 201
        deadline = time.monotonic() + 30
        while b"before revocation" not in stream.received:
            assert time.monotonic() < deadline, server_log(streaming)
            await asyncio.sleep(0.05)

        await _revoke(revoking, admin, reader_key)
        revoked_at = time.monotonic()
        ended = await stream.ends_within(ENDS_WITHIN_S + 5)
        assert ended - revoked_at <= ENDS_WITHIN_S, f"ended {ended - revoked_at:.1f} s after the revocation"

        async with httpx.AsyncClient(base_url=revoking, headers=admin.headers, timeout=30) as api:
            r = await api.post(f"/v1/threads/{thread['id']}/messages", json={"content": "after the stream ended"})
            assert r.status_code == 201
        reopened = await client.get("/v1/events", headers={"Authorization": f"Bearer {reader_key}"})
        assert reopened.status_code == 401
        assert b"after the stream ended" not in stream.received


async def test_a_deleted_workspaces_streams_end_within_5_s(two_servers: tuple[str, str], sessionmaker: Any) -> None:
    doomed = await make_tenant(sessionmaker)
    async with httpx.AsyncClient(base_url=two_servers[0], timeout=None) as client:
        streams = [OpenStream(client, "/v1/events", doomed.key) for _ in range(3)]
        for stream in streams:
            await stream.opened()
        async with sessionmaker() as session, session.begin():
            await session.execute(delete(Workspace).where(Workspace.id == doomed.workspace_id))
        deleted_at = time.monotonic()
        for stream in streams:
            assert await stream.ends_within(ENDS_WITHIN_S + 5) - deleted_at <= ENDS_WITHIN_S
