"""An ``Idempotency-Key`` replays a stored response only to the API key that made it, and only after the
route's own scope check (issue 12, defect 3), staged against a real server process.

Before the fix, a read-only key of the workspace that sent an admin's request again with the admin's
``Idempotency-Key`` got the admin's response back (201, ``Idempotent-Replayed: true``): a new admin key's
secret, a webhook's signing secret.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Tenant, add_key, make_tenant
from tests.livesrv import live_server
from tests.security.conftest import server_env
from threadline.models.enums import Scope


@pytest.fixture(scope="module")
def base(database_url: str, settings: Any) -> Iterator[str]:
    with live_server(
        database_url,
        **server_env(settings, THREADLINE_WEBHOOK_ALLOW_PRIVATE_URLS="true", THREADLINE_RUN_WORKERS="false"),
    ) as url:
        yield url


def _bearer(key: str, idempotency_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Idempotency-Key": idempotency_key}


async def _setup(sessionmaker: Any) -> tuple[Tenant, str, str, str]:
    tenant = await make_tenant(sessionmaker)
    read_key = await add_key(sessionmaker, tenant, (Scope.READ,))
    write_key = await add_key(sessionmaker, tenant, (Scope.WRITE,))
    second_admin = await add_key(sessionmaker, tenant, (Scope.ADMIN,))
    return tenant, read_key, write_key, second_admin


def _assert_refused_without_secret(r: httpx.Response, secret: str, status: int) -> None:
    assert r.status_code == status, r.text
    assert "idempotent-replayed" not in r.headers
    assert secret not in r.text


async def test_a_new_api_keys_secret_is_never_replayed_to_another_key(base: str, sessionmaker: Any) -> None:
    tenant, read_key, write_key, second_admin = await _setup(sessionmaker)
    body = {"scopes": ["admin"], "name": "ops"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        first = await client.post("/v1/api_keys", json=body, headers=_bearer(tenant.key, "k1"))
        assert first.status_code == 201, first.text
        secret = first.json()["key"]

        # Keys without the route's scope are refused by the route, as without the header.
        _assert_refused_without_secret(
            await client.post("/v1/api_keys", json=body, headers=_bearer(read_key, "k1")), secret, 403
        )
        _assert_refused_without_secret(
            await client.post("/v1/api_keys", json=body, headers=_bearer(write_key, "k1")), secret, 403
        )
        # Another admin key with the same Idempotency-Key gets its own, fresh processing.
        fresh = await client.post("/v1/api_keys", json=body, headers=_bearer(second_admin, "k1"))
        assert fresh.status_code == 201 and "idempotent-replayed" not in fresh.headers
        assert fresh.json()["key"] != secret and fresh.json()["id"] != first.json()["id"]
        # The key that made it still gets its replay.
        again = await client.post("/v1/api_keys", json=body, headers=_bearer(tenant.key, "k1"))
        assert again.headers.get("idempotent-replayed") == "true" and again.json() == first.json()
        # The stolen secret, had it leaked, would work; it did not leak: the read key is still a read key.
        r = await client.get("/v1/api_keys", headers={"Authorization": f"Bearer {read_key}"})
        assert r.status_code == 403


async def test_a_webhooks_signing_secret_is_never_replayed_to_another_key(base: str, sessionmaker: Any) -> None:
    tenant, read_key, write_key, _ = await _setup(sessionmaker)
    body = {"url": "https://hooks.example.com/idem"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        first = await client.post("/v1/webhooks", json=body, headers=_bearer(tenant.key, "w1"))
        assert first.status_code == 201, first.text
        secret = first.json()["secret"]
        _assert_refused_without_secret(
            await client.post("/v1/webhooks", json=body, headers=_bearer(read_key, "w1")), secret, 403
        )
        # A write key may create webhooks: it gets a webhook of its own, with a secret of its own.
        own = await client.post("/v1/webhooks", json=body, headers=_bearer(write_key, "w1"))
        assert own.status_code == 201 and "idempotent-replayed" not in own.headers
        assert own.json()["secret"] != secret

        webhook_id = first.json()["id"]
        rotated = await client.post(f"/v1/webhooks/{webhook_id}/rotate_secret", headers=_bearer(tenant.key, "r1"))
        assert rotated.status_code in (200, 201), rotated.text
        new_secret = rotated.json()["secret"]
        _assert_refused_without_secret(
            await client.post(f"/v1/webhooks/{webhook_id}/rotate_secret", headers=_bearer(read_key, "r1")),
            new_secret,
            403,
        )


async def test_another_workspaces_key_with_the_same_idempotency_key_gets_its_own_processing(
    base: str, sessionmaker: Any
) -> None:
    a, b = await make_tenant(sessionmaker), await make_tenant(sessionmaker)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        first = await client.post("/v1/api_keys", json={"scopes": ["read"]}, headers=_bearer(a.key, "same"))
        other = await client.post("/v1/api_keys", json={"scopes": ["read"]}, headers=_bearer(b.key, "same"))
    assert first.status_code == other.status_code == 201
    assert "idempotent-replayed" not in other.headers and other.json()["key"] != first.json()["key"]
