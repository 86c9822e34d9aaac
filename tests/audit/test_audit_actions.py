"""Each administrative action made through /v1 is in the audit log: who (the key, its prefix, the request
and its address), what, on which resource; never a secret; and only when the change itself was kept."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.audit.helpers import actions, audit_events, stored_rows
from tests.conftest import Tenant
from tests.factories import create_thread
from tests.integrations.helpers import create_integration, sms_body, whatsapp_body
from threadline.audit import service as audit_service
from threadline.errors import Conflict

Maker = async_sessionmaker[AsyncSession]


async def _own_key(api: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    """The tenant's admin key as the API shows it (its id and prefix)."""
    keys = (await api.get("/v1/api_keys", params={"limit": 100})).json()["data"]
    [own] = [k for k in keys if k["prefix"] == tenant.key[:10]]
    return own


def _assert_by_key(event: dict[str, Any], key: dict[str, Any], request_id: str | None = None) -> None:
    assert event["actor"] == {"type": "api_key", "id": key["id"], "key_prefix": key["prefix"]}, event
    assert event["client_address"] == "127.0.0.1", event  # httpx's ASGI transport's peer
    if request_id is not None:
        assert event["request_id"] == request_id, event
    else:
        assert event["request_id"], event  # every request has one


def _assert_nowhere(secret_values: list[str], *texts: str) -> None:
    for value in secret_values:
        for text in texts:
            assert value not in text


async def test_keys_created_and_revoked_are_recorded_with_the_key_that_did_it(
    api: httpx.AsyncClient, tenant: Tenant, sessionmaker: Maker
) -> None:
    own = await _own_key(api, tenant)
    r = await api.post("/v1/api_keys", json={"name": "ci", "scopes": ["read"]}, headers={"X-Request-Id": "create-1"})
    assert r.status_code == 201, r.text
    created = r.json()
    r = await api.post(f"/v1/api_keys/{created['id']}/revoke", headers={"X-Request-Id": "revoke-1"})
    assert r.status_code == 200, r.text
    r = await api.post(f"/v1/api_keys/{created['id']}/revoke")  # again: harmless, and not a second revocation
    assert r.status_code == 200, r.text

    events = await audit_events(api, action="api_key.*")
    # The first: the tenant's own key, made by the test set-up as the CLI would.
    assert actions(events) == ["api_key.created", "api_key.created", "api_key.revoked"]
    assert events[0]["actor"]["type"] == "cli" and events[0]["target"]["id"] == own["id"]
    made, revoked = events[1:]
    _assert_by_key(made, own, "create-1")
    assert made["target"] == {"type": "api_key", "id": created["id"]}
    assert made["details"] == {"scopes": ["read"]}
    _assert_by_key(revoked, own, "revoke-1")
    assert revoked["target"] == {"type": "api_key", "id": created["id"]} and revoked["details"] == {}
    assert made["object"] == "audit_event" and made["occurred_at"] <= revoked["occurred_at"]
    assert (await api.get(f"/v1/audit_events/{made['id']}")).json() == made

    # The keys themselves are nowhere: not in the log as served, not in the rows as stored.
    listed = (await api.get("/v1/audit_events", params={"limit": 100})).text
    _assert_nowhere([created["key"], tenant.key], listed, repr(await stored_rows(sessionmaker, tenant.workspace_id)))


async def test_integration_changes_are_recorded_by_field_name_and_never_hold_a_secret(
    api: httpx.AsyncClient, tenant: Tenant, sessionmaker: Maker
) -> None:
    own = await _own_key(api, tenant)
    first_token, second_token = secrets.token_hex(16), secrets.token_hex(16)
    sms = await create_integration(api, sms_body(auth_token=first_token))
    whatsapp_body_ = whatsapp_body()
    whatsapp = await create_integration(api, whatsapp_body_)
    r = await api.patch(
        f"/v1/integrations/{sms['id']}", json={"name": "Support line", "secrets": {"auth_token": second_token}}
    )
    assert r.status_code == 200, r.text
    r = await api.patch(f"/v1/integrations/{sms['id']}", json={"name": "Support line", "enabled": True})  # no change
    assert r.status_code == 200, r.text
    r = await api.patch(f"/v1/integrations/{whatsapp['id']}", json={"enabled": False})
    assert r.status_code == 200, r.text
    assert (await api.delete(f"/v1/integrations/{whatsapp['id']}")).status_code == 204

    events = await audit_events(api, action="integration.*")
    assert actions(events) == [
        "integration.created",
        "integration.created",
        "integration.updated",
        "integration.updated",
        "integration.deleted",
    ]
    for event in events:
        _assert_by_key(event, own)
    assert [e["target"] for e in events] == [
        {"type": "integration", "id": sms["id"]},
        {"type": "integration", "id": whatsapp["id"]},
        {"type": "integration", "id": sms["id"]},
        {"type": "integration", "id": whatsapp["id"]},
        {"type": "integration", "id": whatsapp["id"]},
    ]
    assert events[0]["details"] == {"type": "sms", "secrets": ["auth_token"]}
    assert events[1]["details"] == {"type": "whatsapp", "secrets": ["access_token", "app_secret", "verify_token"]}
    assert events[2]["details"] == {"fields": ["name", "secrets"], "secrets": ["auth_token"]}
    assert events[3]["details"] == {"fields": ["enabled"]}
    assert events[4]["details"] == {}

    secret_values = [first_token, second_token, *whatsapp_body_["secrets"].values()]
    listed = (await api.get("/v1/audit_events", params={"limit": 100})).text
    _assert_nowhere(secret_values, listed, repr(await stored_rows(sessionmaker, tenant.workspace_id)))


async def test_webhook_changes_are_recorded_without_the_url_or_the_signing_secrets(
    api: httpx.AsyncClient, tenant: Tenant, sessionmaker: Maker
) -> None:
    own = await _own_key(api, tenant)
    token = secrets.token_hex(12)  # receivers may authenticate with a token in the URL
    r = await api.post("/v1/webhooks", json={"url": f"https://hooks.example.com/in?token={token}"})
    assert r.status_code == 201, r.text
    hook = r.json()
    r = await api.patch(f"/v1/webhooks/{hook['id']}", json={"description": "CRM", "event_types": ["message.*"]})
    assert r.status_code == 200, r.text
    r = await api.patch(f"/v1/webhooks/{hook['id']}", json={"description": "CRM"})  # no change: no record
    assert r.status_code == 200, r.text
    r = await api.post(f"/v1/webhooks/{hook['id']}/rotate_secret")
    assert r.status_code == 200, r.text
    rotated = r.json()["secret"]
    assert (await api.delete(f"/v1/webhooks/{hook['id']}")).status_code == 204

    events = await audit_events(api, action="webhook.*")
    assert actions(events) == ["webhook.created", "webhook.updated", "webhook.secret_rotated", "webhook.deleted"]
    for event in events:
        _assert_by_key(event, own)
        assert event["target"] == {"type": "webhook", "id": hook["id"]}
    assert events[0]["details"] == {"event_types": ["*"], "enabled": True}
    assert events[1]["details"] == {"fields": ["description", "event_types"]}
    assert events[2]["details"] == {} and events[3]["details"] == {}

    listed = (await api.get("/v1/audit_events", params={"limit": 100})).text
    rows = repr(await stored_rows(sessionmaker, tenant.workspace_id))
    _assert_nowhere([token, "hooks.example.com", hook["secret"], rotated], listed, rows)


async def test_handoffs_and_blocks_through_the_api_are_recorded_and_other_thread_changes_are_not(
    api: httpx.AsyncClient, tenant: Tenant
) -> None:
    own = await _own_key(api, tenant)
    thread = await create_thread(api)
    path = f"/v1/threads/{thread['id']}"
    for body in (
        {"active": False},
        {"active": False},  # already handed off: no change, no record
        {"metadata": {"note": "vip"}},
        {"active": True, "blocked": True},
        {"blocked": False},
    ):
        r = await api.patch(path, json=body)
        assert r.status_code == 200, r.text

    events = await audit_events(api, target_id=thread["id"])
    assert actions(events) == ["thread.handed_off", "thread.handed_back", "thread.blocked", "thread.unblocked"]
    for event in events:
        _assert_by_key(event, own)
        assert event["target"] == {"type": "thread", "id": thread["id"]} and event["details"] == {}
    assert events[1]["request_id"] == events[2]["request_id"]  # one request, two actions


async def test_nothing_is_recorded_when_the_request_fails(
    api: httpx.AsyncClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = await audit_events(api)
    hook = (await api.post("/v1/webhooks", json={"url": "https://hooks.example.com/in"})).json()
    r = await api.patch(f"/v1/webhooks/{hook['id']}", json={"url": "http://127.0.0.1/in", "description": "x"})
    assert r.status_code == 422, r.text
    r = await api.patch(f"/v1/threads/{(await create_thread(api))['id']}", json={"active": False, "tags": ["nope"]})
    assert r.status_code == 404, r.text

    # A failure after the record is written: the record goes with the change it records.
    real_record = audit_service.record

    async def record_then_fail(*args: Any, **kwargs: Any) -> Any:
        await real_record(*args, **kwargs)
        raise Conflict("something else went wrong")

    monkeypatch.setattr(audit_service, "record", record_then_fail)
    r = await api.post("/v1/api_keys", json={"scopes": ["read"]})
    assert r.status_code == 409, r.text
    r = await api.post(f"/v1/webhooks/{hook['id']}/rotate_secret")
    assert r.status_code == 409, r.text
    monkeypatch.undo()

    after = await audit_events(api)
    assert actions(after) == [*actions(before), "webhook.created"]
    keys = (await api.get("/v1/api_keys")).json()["data"]
    assert len(keys) == 1  # the tenant's own: the refused one was not kept either


async def test_an_end_users_export_and_erasure_are_recorded_with_the_key_that_did_them(
    api: httpx.AsyncClient, tenant: Tenant
) -> None:
    own = await _own_key(api, tenant)
    person = (await api.post("/v1/end_users", json={"display_name": "Dana", "address": "+15550001111"})).json()
    r = await api.get(f"/v1/end_users/{person['id']}/export", headers={"X-Request-Id": "export-1"})
    assert r.status_code == 200, r.text
    r = await api.get(f"/v1/end_users/{secrets.token_hex(4)}/export")  # no such person: nothing exported
    assert r.status_code == 404
    r = await api.delete(f"/v1/end_users/{person['id']}", params={"erase": "true"}, headers={"X-Request-Id": "erase-1"})
    assert r.status_code == 202, r.text
    erasure = r.json()
    again = await api.delete(f"/v1/end_users/{person['id']}", params={"erase": "true"})
    assert again.status_code == 202 and again.json()["id"] == erasure["id"]  # the same erasure, under way

    events = await audit_events(api, action="end_user.*")
    assert actions(events) == ["end_user.exported", "end_user.erased"]
    exported, erased = events
    _assert_by_key(exported, own, "export-1")
    _assert_by_key(erased, own, "erase-1")
    assert exported["target"] == {"type": "end_user", "id": person["id"]}
    assert erased["target"] == {"type": "end_user", "id": person["id"]}
    assert erased["details"] == {"erasure_id": erasure["id"], "resumed": False}
    _assert_nowhere(["Dana", "+15550001111"], r.text, *(str(e) for e in events))
