from __future__ import annotations

import asyncio
from typing import Any

import httpx
from tests.conftest import Tenant, add_key

from threadline.models.enums import Scope


async def _count_tags(api: httpx.AsyncClient) -> int:
    return len((await api.get("/v1/tags", params={"limit": 100})).json()["data"])


async def test_same_key_same_body_replays_the_first_response(api: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "k-1"}
    first = await api.post("/v1/tags", json={"name": "once"}, headers=headers)
    assert first.status_code == 201
    again = await api.post("/v1/tags", json={"name": "once"}, headers=headers)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert await _count_tags(api) == 1


async def test_same_key_different_body_is_422_and_creates_nothing(api: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "k-2"}
    assert (await api.post("/v1/tags", json={"name": "a"}, headers=headers)).status_code == 201
    r = await api.post("/v1/tags", json={"name": "b"}, headers=headers)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "idempotency_key_reused" and err["param"] == "Idempotency-Key"
    r = await api.post("/v1/end_users", json={"display_name": "x"}, headers=headers)  # other path, same key
    assert r.status_code == 422
    assert await _count_tags(api) == 1


async def test_failed_request_does_not_burn_the_key(api: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "k-3"}
    assert (await api.post("/v1/tags", json={"name": "x", "color": "teal"}, headers=headers)).status_code == 422
    assert (await api.post("/v1/tags", json={"name": "x"}, headers=headers)).status_code == 201


async def test_keys_are_per_workspace(client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant) -> None:
    headers = {"Idempotency-Key": "shared"}
    a = await client.post("/v1/tags", json={"name": "t"}, headers={**tenant.headers, **headers})
    b = await client.post("/v1/tags", json={"name": "t"}, headers={**other_tenant.headers, **headers})
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


async def test_keys_are_per_api_key_even_within_a_workspace(
    client: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    second = await add_key(sessionmaker, tenant, (Scope.WRITE,))
    headers = {"Idempotency-Key": "mine"}
    a = await client.post("/v1/end_users", json={"display_name": "a"}, headers={**tenant.headers, **headers})
    b = await client.post(
        "/v1/end_users", json={"display_name": "a"}, headers={"Authorization": f"Bearer {second}", **headers}
    )
    assert a.status_code == b.status_code == 201
    assert "idempotent-replayed" not in b.headers and a.json()["id"] != b.json()["id"]


async def test_a_replay_comes_only_after_the_routes_scope_check(
    client: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    reader = await add_key(sessionmaker, tenant, (Scope.READ,))
    headers = {"Idempotency-Key": "admin-only"}
    first = await client.post("/v1/api_keys", json={"scopes": ["admin"]}, headers={**tenant.headers, **headers})
    assert first.status_code == 201
    r = await client.post(
        "/v1/api_keys", json={"scopes": ["admin"]}, headers={"Authorization": f"Bearer {reader}", **headers}
    )
    assert r.status_code == 403 and first.json()["key"] not in r.text
    assert r.json()["error"]["code"] == "insufficient_scope"


async def test_concurrent_requests_with_one_key_create_one_resource(api: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "race"}
    responses = await asyncio.gather(*[api.post("/v1/tags", json={"name": "raced"}, headers=headers) for _ in range(8)])
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await _count_tags(api) == 1


async def test_expired_key_is_treated_as_new(api: httpx.AsyncClient, sessionmaker) -> None:
    from sqlalchemy import update

    from threadline.kit.clock import utcnow
    from threadline.models import IdempotencyKey

    headers = {"Idempotency-Key": "old"}
    first = await api.post("/v1/tags", json={"name": "e1"}, headers=headers)
    async with sessionmaker() as session, session.begin():
        await session.execute(update(IdempotencyKey).where(IdempotencyKey.key == "old").values(expires_at=utcnow()))
    second = await api.post("/v1/tags", json={"name": "e2"}, headers=headers)
    assert second.status_code == 201 and second.json()["id"] != first.json()["id"]


async def test_expired_keys_are_purged(api: httpx.AsyncClient, sessionmaker) -> None:
    from sqlalchemy import select, update

    from threadline.kit.clock import utcnow
    from threadline.models import IdempotencyKey
    from threadline.web.idempotency import purge_expired

    for key in ("p1", "p2"):
        assert (await api.post("/v1/tags", json={"name": key}, headers={"Idempotency-Key": key})).status_code == 201
    async with sessionmaker() as session, session.begin():
        await session.execute(update(IdempotencyKey).where(IdempotencyKey.key == "p1").values(expires_at=utcnow()))
    assert await purge_expired(sessionmaker) >= 1
    async with sessionmaker() as session:
        left = set(
            (await session.execute(select(IdempotencyKey.key).where(IdempotencyKey.key.in_(["p1", "p2"])))).scalars()
        )
    assert left == {"p2"}


async def test_overlong_key_is_400(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/tags", json={"name": "x"}, headers={"Idempotency-Key": "k" * 256})
    assert r.status_code == 400 and r.json()["error"]["param"] == "Idempotency-Key"


async def test_a_stored_response_that_shows_a_secret_once_is_encrypted_at_rest(
    api: httpx.AsyncClient, sessionmaker: Any
) -> None:
    from sqlalchemy import select

    from threadline.models import IdempotencyKey

    headers = {"Idempotency-Key": "new-key-please"}
    first = await api.post("/v1/api_keys", json={"scopes": ["read"]}, headers=headers)
    assert first.status_code == 201
    secret = first.json()["key"]
    async with sessionmaker() as s:
        stored = (await s.execute(select(IdempotencyKey).where(IdempotencyKey.key == "new-key-please"))).scalar_one()
    assert secret.encode() not in stored.response_body and b'"key"' not in stored.response_body
    replay = await api.post("/v1/api_keys", json={"scopes": ["read"]}, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true" and replay.json() == first.json()
