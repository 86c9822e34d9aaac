"""``GET /v1/audit_events``: admin keys only, one workspace's events only, keyset pages and filters."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.audit.helpers import actions, audit_events
from tests.conftest import Tenant, add_key
from tests.factories import create_thread
from threadline.models.enums import Scope

Maker = async_sessionmaker[AsyncSession]


async def _make_keys(api: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    made = []
    for n in range(count):
        r = await api.post("/v1/api_keys", json={"name": f"k{n}", "scopes": ["read"]})
        assert r.status_code == 201, r.text
        made.append(r.json())
    return made


async def test_only_admin_keys_read_the_audit_log(
    client: httpx.AsyncClient, tenant: Tenant, sessionmaker: Maker
) -> None:
    event = (await client.get("/v1/audit_events", headers=tenant.headers)).json()["data"][0]
    for scopes in ((Scope.READ,), (Scope.WRITE,), (Scope.READ, Scope.WRITE)):
        headers = {"X-API-Key": await add_key(sessionmaker, tenant, scopes)}
        for path in ("/v1/audit_events", f"/v1/audit_events/{event['id']}"):
            r = await client.get(path, headers=headers)
            assert r.status_code == 403, (scopes, path, r.text)
            assert r.json()["error"]["code"] == "insufficient_scope"
    for path in ("/v1/audit_events", f"/v1/audit_events/{event['id']}"):
        r = await client.get(path)
        assert r.status_code == 401, r.text
        assert (await client.get(path, headers=tenant.headers)).status_code == 200


async def test_another_workspaces_events_are_invisible_and_their_ids_unknown(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    client.headers.update(other_tenant.headers)
    thread = await create_thread(client)
    assert (await client.patch(f"/v1/threads/{thread['id']}", json={"blocked": True})).status_code == 200
    their_events = await audit_events(client)
    assert actions(their_events) == ["api_key.created", "thread.blocked"]
    client.headers.update(tenant.headers)

    mine = await audit_events(client)
    assert actions(mine) == ["api_key.created"]
    assert not {e["id"] for e in mine} & {e["id"] for e in their_events}
    for event in their_events:
        r = await client.get(f"/v1/audit_events/{event['id']}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
        for cursor in ("after", "before"):
            r = await client.get("/v1/audit_events", params={cursor: event["id"]})
            assert r.status_code == 400 and r.json()["error"]["param"] == cursor, r.text
    assert await audit_events(client, target_id=thread["id"]) == []
    for unknown in (str(uuid.uuid4()), "not-an-id"):
        assert (await client.get(f"/v1/audit_events/{unknown}")).status_code == 404


async def test_pages_walk_the_log_like_every_other_list(api: httpx.AsyncClient) -> None:
    await _make_keys(api, 4)
    everything = await audit_events(api)
    ids = [e["id"] for e in everything]
    assert len(ids) == 5

    first = (await api.get("/v1/audit_events", params={"limit": 2})).json()
    assert first["object"] == "list" and [e["id"] for e in first["data"]] == ids[:2] and first["has_more"] is True
    assert (first["first_id"], first["last_id"]) == (ids[0], ids[1])
    second = (await api.get("/v1/audit_events", params={"limit": 2, "after": first["last_id"]})).json()
    assert [e["id"] for e in second["data"]] == ids[2:4] and second["has_more"] is True
    last = (await api.get("/v1/audit_events", params={"limit": 2, "after": second["last_id"]})).json()
    assert [e["id"] for e in last["data"]] == ids[4:] and last["has_more"] is False

    newest = (await api.get("/v1/audit_events", params={"limit": 2, "order": "desc"})).json()
    assert [e["id"] for e in newest["data"]] == [ids[4], ids[3]] and newest["has_more"] is True
    before = (await api.get("/v1/audit_events", params={"limit": 2, "before": ids[3], "order": "desc"})).json()
    assert [e["id"] for e in before["data"]] == [ids[2], ids[1]] and before["has_more"] is True
    between = (await api.get("/v1/audit_events", params={"after": ids[0], "before": ids[4]})).json()
    assert [e["id"] for e in between["data"]] == ids[1:4] and between["has_more"] is False

    for params in ({"limit": 0}, {"limit": 101}, {"order": "sideways"}):
        r = await api.get("/v1/audit_events", params=params)
        assert r.status_code == 422, (params, r.text)
    r = await api.get("/v1/audit_events", params={"after": str(uuid.uuid4())})
    assert r.status_code == 400 and r.json()["error"]["param"] == "after"


async def test_filters_by_action_family_target_actor_and_time(api: httpx.AsyncClient, tenant: Tenant) -> None:
    made = await _make_keys(api, 2)
    r = await api.post(f"/v1/api_keys/{made[0]['id']}/revoke")
    assert r.status_code == 200
    thread = await create_thread(api)
    assert (await api.patch(f"/v1/threads/{thread['id']}", json={"active": False})).status_code == 200
    everything = await audit_events(api)
    assert actions(everything) == [
        "api_key.created",
        "api_key.created",
        "api_key.created",
        "api_key.revoked",
        "thread.handed_off",
    ]

    assert actions(await audit_events(api, action="api_key.revoked")) == ["api_key.revoked"]
    assert actions(await audit_events(api, action="api_key.*")) == actions(everything)[:4]
    assert actions(await audit_events(api, action="thread.*")) == ["thread.handed_off"]
    assert await audit_events(api, action="webhook.*") == []
    assert await audit_events(api, action="end_user.erased") == []
    for bad in ("api_key", "api_key.deleted", "nope.*", "*", "api_key.%", "thread.handed_off "):
        r = await api.get("/v1/audit_events", params={"action": bad})
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"]["param"] == "action"

    on_key = await audit_events(api, target_id=made[0]["id"])
    assert actions(on_key) == ["api_key.created", "api_key.revoked"]
    assert await audit_events(api, target_id="not-an-id") == []

    own_key_id = everything[1]["actor"]["id"]
    by_key = await audit_events(api, actor_id=own_key_id)
    assert [e["id"] for e in by_key] == [e["id"] for e in everything[1:]]
    by_cli = await audit_events(api, actor_id=everything[0]["actor"]["id"] or "")
    assert [e["id"] for e in by_cli] == [everything[0]["id"]]
    assert await audit_events(api, actor_id=str(uuid.uuid4())) == []

    # since is inclusive, until exclusive; offsets are honoured.
    third = everything[2]
    at = datetime.fromisoformat(third["occurred_at"])
    since = await audit_events(api, since=third["occurred_at"])
    assert third["id"] in {e["id"] for e in since} and everything[4]["id"] in {e["id"] for e in since}
    assert all(datetime.fromisoformat(e["occurred_at"]) >= at for e in since)
    until = await audit_events(api, until=third["occurred_at"])
    assert third["id"] not in {e["id"] for e in until}
    assert all(datetime.fromisoformat(e["occurred_at"]) < at for e in until)
    same_instant_elsewhere = at.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert await audit_events(api, since=same_instant_elsewhere) == since
    window = await audit_events(api, since=everything[1]["occurred_at"], until=everything[4]["occurred_at"])
    assert {e["id"] for e in window} <= {e["id"] for e in everything[1:4]} and everything[1]["id"] in {
        e["id"] for e in window
    }
    later = (at + timedelta(days=1)).isoformat()
    assert await audit_events(api, since=later) == []

    for name, bad in (
        ("since", "yesterday"),
        ("since", "2026-01-01T00:00:00"),  # no offset
        ("until", "1700000000"),
        ("until", "9999-12-31T23:59:59-00:01"),
        ("since", "0001-01-01T00:00:00+14:00"),
    ):
        r = await api.get("/v1/audit_events", params={name: bad})
        assert r.status_code == 422, (name, bad, r.text)
        assert r.json()["error"]["param"] == name, r.text
