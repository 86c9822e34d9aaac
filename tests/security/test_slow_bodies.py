"""A client that sends its body slowly, or never finishes it, holds nothing: no database connection, no
write lock, on any surface. Staged against a real server process (issue 12, defects 1 and 2).

The proofs are about order, not time: while the slow requests are still waiting for their bodies (none
of them has been answered yet), other tenants' writes and reads, the readiness check, and a request on the
same surface are all answered. Before the fix, defect 1 (SQLite, the default) queued every write behind a
body that never came; defect 2 (PostgreSQL) let partial bodies with an ``Idempotency-Key`` each hold a pooled
connection, so other tenants' requests waited for the pool and failed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import Tenant, add_key, make_tenant
from tests.livesrv import live_server, server_log
from tests.security.conftest import SlowRequest, json_body, open_slow_requests, slow_request
from threadline.models.enums import Scope

SLOW = 20  # more than the server's pool (2 on PostgreSQL here; SQLite's 5 + 10)
ANSWER_WITHIN_S = 15.0  # a bound on a request that must not wait for the slow ones; never a timing check


@dataclass(frozen=True)
class Surface:
    name: str
    method: str
    path: str  # {thread} is filled with an unknown thread id of the surface's kind
    credentials: Callable[[str], dict[str, str]]  # the surface's own way of sending a key
    content_type: str = "application/json"

    def url(self) -> str:
        return self.path.format(thread=uuid.uuid4(), number=987654321, integration=uuid.uuid4())


SURFACES = [
    Surface("v1", "POST", "/v1/tags", lambda key: {"Authorization": f"Bearer {key}"}),
    Surface(
        "v1 with Idempotency-Key",
        "POST",
        "/v1/tags",
        lambda key: {"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex},
    ),
    Surface("v1 without a key", "POST", "/v1/agents", lambda key: {}),
    Surface("altur", "POST", "/altur/api/v1.0/message", lambda key: {"Authorization": f"api-key {key}"}),
    Surface(
        "camelai", "GET", "/camelai/api/v1/threads/{number}/messages", lambda key: {"Authorization": f"Bearer {key}"}
    ),
    Surface("aitronos", "GET", "/aitronos/v1/threads/{thread}/messages", lambda key: {"X-API-Key": key}),
    Surface("feather", "GET", "/feather/api/v1/threads/{thread}/messages", lambda key: {"X-API-Key": key}),
    Surface(
        "twilio webhook",
        "POST",
        "/channels/twilio/{integration}/sms",
        lambda key: {},
        content_type="application/x-www-form-urlencoded",
    ),
    Surface("whatsapp webhook", "POST", "/channels/whatsapp/{integration}/webhook", lambda key: {}),
    Surface(
        "console sign-in", "POST", "/console/sign-in", lambda key: {}, content_type="application/x-www-form-urlencoded"
    ),
]


def _headers(surface: Surface, key: str) -> dict[str, str]:
    return {"Content-Type": surface.content_type, **surface.credentials(key)}


@pytest.fixture(scope="module")
def holding_server(database_url: str, settings: Any) -> Iterator[str]:
    """A server with a small pool and a long body timeout: a request that held a connection while its body
    dribbled in would starve everyone else long before its own 408."""
    from tests.security.conftest import server_env

    env = server_env(
        settings, THREADLINE_DB_POOL_SIZE="2", THREADLINE_DB_MAX_OVERFLOW="0", THREADLINE_REQUEST_BODY_TIMEOUT_S="120"
    )
    with live_server(database_url, **env) as base:
        yield base


@pytest.fixture(scope="module")
def impatient_server(database_url: str, settings: Any) -> Iterator[str]:
    from tests.security.conftest import server_env

    with live_server(database_url, **server_env(settings, THREADLINE_REQUEST_BODY_TIMEOUT_S="1")) as base:
        yield base


async def _others_still_served(base: str, other: Tenant, surface: Surface, other_key: str) -> None:
    """Another tenant's write and read, the readiness check, and a request on the same surface answer."""
    async with httpx.AsyncClient(base_url=base, timeout=ANSWER_WITHIN_S) as client:
        try:
            wrote = await client.post("/v1/tags", json={"name": uuid.uuid4().hex[:12]}, headers=other.headers)
            read = await client.get("/v1/threads", headers=other.headers)
            ready = await client.get("/readyz")
            same_surface = await client.request(
                surface.method, surface.url(), headers=_headers(surface, other_key), content=b"{}"
            )
        except httpx.TimeoutException:
            pytest.fail(f"a request waited behind bodies that never arrived ({surface.name})\n{server_log(base)}")
    assert wrote.status_code == 201, wrote.text
    assert read.status_code == 200, read.text
    assert ready.status_code == 200, ready.text
    assert same_surface.status_code < 500, same_surface.text


@pytest.mark.parametrize("surface", SURFACES, ids=lambda s: s.name)
async def test_bodies_that_never_arrive_hold_no_connection_and_no_lock(
    holding_server: str, sessionmaker: Any, surface: Surface
) -> None:
    attacker, other = await make_tenant(sessionmaker), await make_tenant(sessionmaker)
    read_only = await add_key(sessionmaker, attacker, (Scope.READ,))
    slow = await open_slow_requests(
        SLOW, holding_server, surface.method, surface.url(), headers=_headers(surface, read_only)
    )
    try:
        await _others_still_served(holding_server, other, surface, other.key)
        # The order is the proof: all that was answered while every slow request still waited for its body.
        assert not any(s.answered() for s in slow), "a slow request was answered before its body arrived"
    finally:
        for s in slow:
            s.close()


async def test_a_keyless_body_that_never_arrives_stops_no_tenants_writes(
    holding_server: str, sessionmaker: Any
) -> None:
    """Defect 1 as reported: one socket, no key, ``POST /v1/agents`` with one byte of a 1,000-byte body."""
    admin = await make_tenant(sessionmaker)
    attacker = await slow_request(holding_server, "POST", "/v1/agents", declared=1000, sent=b"{")
    try:
        async with httpx.AsyncClient(base_url=holding_server, headers=admin.headers, timeout=ANSWER_WITHIN_S) as api:
            try:
                r = await api.post("/v1/agents", json={"name": "after-the-attack", "type": "TEXT"})
            except httpx.TimeoutException:
                pytest.fail(f"an admin's write waited behind a body that never arrived\n{server_log(holding_server)}")
        assert r.status_code == 201, r.text
        assert not attacker.answered()
    finally:
        attacker.close()


# What each surface answers a body that did not arrive in time: its own error format.
EXPECTED_408: dict[str, Callable[[int, Any], bool]] = {
    "v1": lambda status, body: status == 408 and body["error"]["code"] == "request_timeout",
    "altur": lambda status, body: status == 400 and body["error"] == 400 and "seconds" in body["message"],
    "camelai": lambda status, body: status == 408 and "seconds" in body["error"],
    "aitronos": lambda status, body: status == 408 and body["error"]["code"] == "request_timeout",
    "feather": lambda status, body: status == 400 and body["code"] == "BAD_REQUEST" and body["success"] is False,
    "twilio webhook": lambda status, body: status == 408 and body["error"]["code"] == "request_timeout",
    "whatsapp webhook": lambda status, body: status == 408 and body["error"]["code"] == "request_timeout",
}


@pytest.mark.parametrize("surface", [s for s in SURFACES if s.name in EXPECTED_408], ids=lambda s: s.name)
async def test_a_body_not_sent_in_time_is_refused_in_the_surfaces_format_and_the_connection_closed(
    impatient_server: str, sessionmaker: Any, surface: Surface
) -> None:
    tenant = await make_tenant(sessionmaker)
    slow: SlowRequest = await slow_request(
        impatient_server, surface.method, surface.url(), headers=_headers(surface, tenant.key)
    )
    try:
        status, headers, body = await slow.response(within_s=ANSWER_WITHIN_S)
        assert EXPECTED_408[surface.name](status, json_body(body)), (status, body)
        assert headers.get("connection") == "close"
        assert await slow.closed_by_server(within_s=ANSWER_WITHIN_S)
    finally:
        slow.close()


async def test_a_body_larger_than_allowed_is_refused_before_it_is_read(
    impatient_server: str, sessionmaker: Any
) -> None:
    tenant = await make_tenant(sessionmaker)
    slow = await slow_request(
        impatient_server, "POST", "/v1/tags", headers=tenant.headers, declared=50 * 1024 * 1024, sent=b""
    )
    try:
        status, _, body = await slow.response(within_s=ANSWER_WITHIN_S)
        assert status == 413 and json_body(body)["error"]["code"] == "payload_too_large"
    finally:
        slow.close()
