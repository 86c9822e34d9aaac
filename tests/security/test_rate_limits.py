"""Rate limits per API key and per client address, the slowing down of wrong keys, and caps on open
streams and waiting requests: 429 with ``Retry-After`` and ``RateLimit-*`` headers, in each surface's
format, and budgets that N API processes share through Redis."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest

from tests.conftest import add_key, make_tenant
from tests.factories import create_agent, create_thread
from tests.livesrv import free_port, live_server
from tests.security.conftest import server_env
from threadline.app import create_app
from threadline.models.enums import Scope
from threadline.workspaces.bootstrap import DEMO_FLOW

REDIS_URL = "redis://127.0.0.1:6379/0"


@asynccontextmanager
async def client_of(settings: Any, engine: Any, address: str = "10.0.0.1", **overrides: Any) -> AsyncIterator[Any]:
    """A client of an app of its own (its own budgets), as seen from ``address``."""
    app = create_app(settings.replace(**overrides), engine=engine)
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        client.app = app  # type: ignore[attr-defined]
        yield client
    await app.state.limits.close()
    await app.state.last_used.drain()


def _limit_headers(r: httpx.Response) -> tuple[int, int, int]:
    return int(r.headers["ratelimit-limit"]), int(r.headers["ratelimit-remaining"]), int(r.headers["ratelimit-reset"])


async def test_an_api_keys_budget_is_counted_down_then_429_with_retry_after(
    settings: Any, engine: Any, sessionmaker: Any
) -> None:
    tenant, other = await make_tenant(sessionmaker), await make_tenant(sessionmaker)
    async with client_of(settings, engine, rate_limit_per_key="5/minute") as client:
        remaining = []
        for _ in range(5):
            r = await client.get("/v1/tags", headers=tenant.headers)
            assert r.status_code == 200
            limit, left, _ = _limit_headers(r)
            assert limit == 5
            remaining.append(left)
        assert remaining == [4, 3, 2, 1, 0]
        r = await client.get("/v1/tags", headers=tenant.headers)
        assert r.status_code == 429
        assert r.json()["error"] == {
            "type": "rate_limit_error",
            "code": "rate_limited",
            "message": "too many requests; slow down",
            "param": None,
        }
        assert int(r.headers["retry-after"]) >= 1 and _limit_headers(r)[1] == 0
        # Another key (another workspace here) has a budget of its own.
        assert (await client.get("/v1/tags", headers=other.headers)).status_code == 200


async def test_the_vendor_mounts_answer_a_rate_limit_in_their_own_format(
    settings: Any, engine: Any, sessionmaker: Any
) -> None:
    tenant = await make_tenant(sessionmaker)
    surfaces = [
        ("/camelai/api/v1/threads/1/messages", {"Authorization": f"Bearer {tenant.key}"}, 429),
        (f"/aitronos/v1/threads/{uuid.uuid4()}/messages", {"X-API-Key": tenant.key}, 429),
        # Altur's and Feather's documents list no 429: their client-error status, with the same headers.
        (f"/altur/api/v1.0/message/{uuid.uuid4()}", {"Authorization": f"api-key {tenant.key}"}, 400),
        (f"/feather/api/v1/threads/{uuid.uuid4()}/messages", {"X-API-Key": tenant.key}, 400),
    ]
    for path, headers, status in surfaces:
        async with client_of(settings, engine, rate_limit_per_key="1/minute") as client:
            assert (await client.get(path, headers=headers)).status_code == 404
            r = await client.get(path, headers=headers)
            assert r.status_code == status, (path, r.text)
            assert "retry-after" in r.headers and r.headers["ratelimit-remaining"] == "0", path
            assert "too many requests" in r.text


async def test_requests_without_a_key_are_counted_per_address(settings: Any, engine: Any) -> None:
    async with client_of(settings, engine, rate_limit_per_address="3/minute", address="10.0.0.7") as client:
        webhook = f"/channels/twilio/{uuid.uuid4()}/sms"
        statuses = [(await client.post(webhook, data={"Body": "x"})).status_code for _ in range(4)]
        assert statuses[:3] != [429] * 3 and statuses[3] == 429
        assert (await client.get("/v1/tags")).status_code == 429  # the same address, the same budget
        assert (await client.get("/healthz")).status_code == 200  # probes are never counted
    async with client_of(settings, engine, rate_limit_per_address="3/minute", address="10.0.0.8") as client:
        assert (await client.get("/v1/tags")).status_code == 401


async def test_an_address_that_keeps_sending_wrong_keys_is_slowed_down(
    settings: Any, engine: Any, sessionmaker: Any
) -> None:
    tenant = await make_tenant(sessionmaker)
    async with client_of(settings, engine, rate_limit_auth_failures="3/minute", address="10.0.0.9") as client:
        for _ in range(3):
            r = await client.get("/v1/tags", headers={"Authorization": f"Bearer tl_{secrets.token_urlsafe(30)}"})
            assert r.status_code == 401
        r = await client.get("/v1/tags", headers={"Authorization": f"Bearer tl_{secrets.token_urlsafe(30)}"})
        assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_failed_authentications"
        assert int(r.headers["retry-after"]) >= 1
        # Every request with a key from that address waits its turn now, answered without a lookup.
        assert (await client.get("/v1/tags", headers=tenant.headers)).status_code == 429
    async with client_of(settings, engine, rate_limit_auth_failures="3/minute", address="10.0.0.10") as client:
        assert (await client.get("/v1/tags", headers=tenant.headers)).status_code == 200


async def test_open_event_streams_are_capped_per_key_and_per_workspace(
    database_url: str, settings: Any, sessionmaker: Any
) -> None:
    tenant = await make_tenant(sessionmaker)
    second_key = {"Authorization": f"Bearer {await add_key(sessionmaker, tenant, (Scope.READ,))}"}
    env = server_env(settings, THREADLINE_STREAMS_PER_KEY="2", THREADLINE_STREAMS_PER_WORKSPACE="3")
    with live_server(database_url, **env) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            async with (
                client.stream("GET", "/v1/events", headers=tenant.headers) as one,
                client.stream("GET", "/v1/events", headers=tenant.headers) as two,
            ):
                assert one.status_code == two.status_code == 200
                third = await client.get("/v1/events", headers=tenant.headers)
                assert third.status_code == 429 and third.json()["error"]["code"] == "too_many_streams"
                assert "retry-after" in third.headers and "this API key" in third.json()["error"]["message"]
                async with client.stream("GET", "/v1/events", headers=second_key) as three:
                    assert three.status_code == 200
                    fourth = await client.get("/v1/events", headers=second_key)
                    assert fourth.status_code == 429 and "this workspace" in fourth.json()["error"]["message"]
            # The places come back as the streams end.
            for _ in range(50):
                async with client.stream("GET", "/v1/events", headers=tenant.headers) as again:
                    if again.status_code == 200:
                        break
                await asyncio.sleep(0.1)
            assert again.status_code == 200


async def test_waiting_requests_are_capped_and_a_refused_one_stores_nothing(
    settings: Any, engine: Any, sessionmaker: Any
) -> None:
    tenant = await make_tenant(sessionmaker)
    async with client_of(settings, engine, waits_per_key=1, message_wait_max_s=3) as client:
        client.headers.update(tenant.headers)
        agent = await create_agent(client, version={"mode": "FLOW", "provider": "flow", "flow": DEMO_FLOW})
        thread = await create_thread(client, agent_id=agent["id"])
        url = f"/v1/threads/{thread['id']}/messages"
        # No worker here: the run stays queued, so this request waits its whole ``wait``.
        waiting = asyncio.create_task(client.post(url, params={"wait": 3}, json={"content": "first"}))
        await asyncio.sleep(0.5)
        refused = await client.post(url, params={"wait": 3}, json={"content": "refused"})
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_waits"
        assert (await waiting).status_code == 201
        contents = [m["content"] for m in (await client.get(url, params={"limit": 100})).json()["data"]]
        assert "first" in contents and "refused" not in contents
        assert (await client.post(url, json={"content": "no wait, no cap"})).status_code == 201


@pytest.fixture
def redis_prefix() -> str:
    return f"threadline-test-{secrets.token_hex(6)}"


def _redis_available() -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", 6379)) == 0


async def test_two_api_processes_share_one_budget_through_redis(
    database_url: str, settings: Any, sessionmaker: Any, redis_prefix: str
) -> None:
    if not _redis_available():
        pytest.fail("Redis is not running on 127.0.0.1:6379 (CI and this machine start it)")
    tenant = await make_tenant(sessionmaker)
    env = server_env(
        settings,
        THREADLINE_REDIS_URL=REDIS_URL,
        THREADLINE_REDIS_PREFIX=redis_prefix,
        THREADLINE_RATE_LIMIT_PER_KEY="10/minute",
        THREADLINE_STREAMS_PER_KEY="1",
    )
    with ExitStack() as stack:
        bases = [stack.enter_context(live_server(database_url, **env)) for _ in range(2)]
        async with httpx.AsyncClient(headers=tenant.headers, timeout=30) as client:
            statuses = [(await client.get(f"{bases[i % 2]}/v1/tags")).status_code for i in range(14)]
            assert statuses.count(200) == 10 and statuses.count(429) == 4, statuses
            # One stream's place, held in one process, is what the other process sees.
            thread_events = f"{bases[0]}/v1/events"
            async with httpx.AsyncClient(timeout=30) as streams:
                other = await make_tenant(sessionmaker)
                async with streams.stream("GET", thread_events, headers=other.headers) as held:
                    assert held.status_code == 200
                    r = await streams.get(f"{bases[1]}/v1/events", headers=other.headers)
                    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_streams"


async def test_an_unreachable_redis_lets_requests_through(database_url: str, settings: Any, sessionmaker: Any) -> None:
    tenant = await make_tenant(sessionmaker)
    env = server_env(settings, THREADLINE_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with live_server(database_url, **env) as base:
        async with httpx.AsyncClient(base_url=base, headers=tenant.headers, timeout=30) as client:
            assert (await client.get("/v1/tags")).status_code == 200
            async with client.stream("GET", "/v1/events") as stream:
                assert stream.status_code == 200


async def test_a_tenant_over_its_budget_slows_no_one_else(settings: Any, engine: Any, sessionmaker: Any) -> None:
    noisy, quiet = await make_tenant(sessionmaker), await make_tenant(sessionmaker)
    async with client_of(settings, engine, rate_limit_per_key="20/minute") as client:
        results = await asyncio.gather(*[client.get("/v1/tags", headers=noisy.headers) for _ in range(40)])
        assert sum(r.status_code == 429 for r in results) == 20
        assert (await client.get("/v1/tags", headers=quiet.headers)).status_code == 200
