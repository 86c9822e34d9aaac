from __future__ import annotations

import httpx
from sqlalchemy import select
from tests.conftest import Tenant, add_key

from threadline.models import ApiKey
from threadline.models.enums import Scope


async def test_three_header_schemes_authenticate(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for headers in (
        {"Authorization": f"Bearer {tenant.key}"},
        {"Authorization": f"api-key {tenant.key}"},
        {"Authorization": f"API-KEY {tenant.key}"},
        {"X-API-Key": tenant.key},
    ):
        r = await client.get("/v1/tags", headers=headers)
        assert r.status_code == 200, (headers.keys(), r.text)


async def test_missing_or_bad_key_is_401(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer tl_wrong"},
        {"Authorization": f"Basic {tenant.key}"},
        {"X-API-Key": ""},
        {"Authorization": "Bearer"},
    ):
        r = await client.get("/v1/tags", headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"]["type"] == "authentication_error"
        assert tenant.key not in r.text


async def test_scopes_gate_reads_writes_and_admin(client: httpx.AsyncClient, sessionmaker, tenant: Tenant) -> None:
    read_only = {"X-API-Key": await add_key(sessionmaker, tenant, (Scope.READ,))}
    writer = {"X-API-Key": await add_key(sessionmaker, tenant, (Scope.WRITE,))}
    assert (await client.get("/v1/tags", headers=read_only)).status_code == 200
    r = await client.post("/v1/tags", json={"name": "x"}, headers=read_only)
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    assert (await client.post("/v1/tags", json={"name": "x"}, headers=writer)).status_code == 201
    assert (await client.get("/v1/tags", headers=writer)).status_code == 200  # write implies read
    assert (await client.get("/v1/api_keys", headers=writer)).status_code == 403
    assert (await client.get("/v1/api_keys", headers=tenant.headers)).status_code == 200


async def test_key_is_shown_once_stored_hashed_and_revocation_is_immediate(
    client: httpx.AsyncClient, sessionmaker, tenant: Tenant
) -> None:
    r = await client.post("/v1/api_keys", json={"name": "ci", "scopes": ["read"]}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["key"]
    assert secret.startswith("tl_") and created["prefix"] == secret[:10] and created["scopes"] == ["read"]
    listed = (await client.get("/v1/api_keys", headers=tenant.headers)).text
    assert secret not in listed and created["id"] in listed
    got = (await client.get(f"/v1/api_keys/{created['id']}", headers=tenant.headers)).json()
    assert "key" not in got
    async with sessionmaker() as session:
        stored = (await session.execute(select(ApiKey).where(ApiKey.prefix == created["prefix"]))).scalar_one()
    assert secret not in (stored.key_hash, stored.prefix + stored.key_hash)
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/v1/tags", headers=headers)).status_code == 200
    r = await client.post(f"/v1/api_keys/{created['id']}/revoke", headers=tenant.headers)
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    assert (await client.get("/v1/tags", headers=headers)).status_code == 401


async def test_bad_scope_is_422(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.post("/v1/api_keys", json={"scopes": ["root"]}, headers=tenant.headers)
    assert r.status_code == 422 and r.json()["error"]["param"].startswith("scopes")
    r = await client.post("/v1/api_keys", json={"scopes": []}, headers=tenant.headers)
    assert r.status_code == 422
