from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select

from tests.integrations.helpers import ACCOUNT_SID, FROM_NUMBER, sms_body, whatsapp_body
from threadline.models import Agent, EndUser, Integration, Thread
from threadline.workspaces.numbers import take


async def _create(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    """An integration; ``sms`` (the default) and ``whatsapp`` get valid settings and secrets unless given."""
    body.setdefault("type", "sms")
    if body["type"] == "sms":
        body = sms_body(**body)
    elif body["type"] == "whatsapp":
        body = whatsapp_body(**body)
    r = await api.post("/v1/integrations", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def _agent(api: httpx.AsyncClient, name: str = "Support") -> str:
    r = await api.post("/v1/agents", json={"name": name})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_create_get_list_update_delete_integration(api: httpx.AsyncClient) -> None:
    agent_id = await _agent(api)
    integration = await _create(
        api,
        type="sms",
        name="US line",
        agent_id=agent_id,
        settings={"from_number": "+14155550100", "account_sid": ACCOUNT_SID},
    )
    assert integration["object"] == "integration" and integration["type"] == "sms"
    assert integration["name"] == "US line" and integration["agent_id"] == agent_id
    assert integration["enabled"] is True
    assert integration["settings"] == {
        "account_sid": ACCOUNT_SID,
        "from_number": "+14155550100",
        "api_base_url": "https://api.twilio.com",
        "status_callback": True,
    }
    assert integration["secrets_set"] == ["auth_token"]
    assert "secrets_ciphertext" not in integration and "secrets" not in integration
    assert (await api.get(f"/v1/integrations/{integration['id']}")).json() == integration

    r = await api.patch(f"/v1/integrations/{integration['id']}", json={"enabled": False, "agent_id": None})
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["enabled"] is False and updated["agent_id"] is None
    assert updated["name"] == "US line" and updated["settings"] == integration["settings"]
    r = await api.patch(f"/v1/integrations/{integration['id']}", json={"agent_id": agent_id, "name": "US"})
    assert r.status_code == 200 and r.json()["agent_id"] == agent_id and r.json()["name"] == "US"

    page = (await api.get("/v1/integrations")).json()
    assert page["object"] == "list" and [i["id"] for i in page["data"]] == [integration["id"]]
    assert page["data"][0]["agent_id"] == agent_id

    assert (await api.delete(f"/v1/integrations/{integration['id']}")).status_code == 204
    r = await api.get(f"/v1/integrations/{integration['id']}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_list_integrations_pages_and_filters(api: httpx.AsyncClient) -> None:
    a1, a2 = await _agent(api, "one"), await _agent(api, "two")
    specs = [("api", a1, True), ("sms", a2, True), ("whatsapp", a1, False), ("sms", None, False), ("api", a2, True)]
    ids = [(await _create(api, type=t, agent_id=a, enabled=e))["id"] for t, a, e in specs]

    first = (await api.get("/v1/integrations", params={"limit": 2})).json()
    assert [i["id"] for i in first["data"]] == ids[:2] and first["has_more"] is True
    rest = (await api.get("/v1/integrations", params={"after": first["last_id"]})).json()
    assert [i["id"] for i in rest["data"]] == ids[2:] and rest["has_more"] is False
    desc = (await api.get("/v1/integrations", params={"order": "desc", "limit": 2, "before": ids[4]})).json()
    assert [i["id"] for i in desc["data"]] == [ids[3], ids[2]] and desc["has_more"] is True
    assert [i["agent_id"] for i in rest["data"]] == [a1, None, a2]

    async def ids_for(**params: Any) -> list[str]:
        r = await api.get("/v1/integrations", params=params)
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["data"]]

    assert await ids_for(type="sms") == [ids[1], ids[3]]
    assert await ids_for(agent_id=a1) == [ids[0], ids[2]]
    assert await ids_for(enabled="false") == [ids[2], ids[3]]
    assert await ids_for(type="api", agent_id=a2, enabled="true") == [ids[4]]
    r = await api.get("/v1/integrations", params={"agent_id": str(uuid.uuid4())})
    assert r.status_code == 404 and r.json()["error"]["param"] == "agent_id"


async def test_unknown_agent_is_a_404_naming_agent_id(
    api: httpx.AsyncClient, other_tenant: Any, client: httpx.AsyncClient
) -> None:
    foreign = (await client.post("/v1/agents", json={"name": "x"}, headers=other_tenant.headers)).json()["id"]
    for agent_id in (str(uuid.uuid4()), "agent-1", foreign):
        r = await api.post("/v1/integrations", json={"type": "api", "agent_id": agent_id})
        assert r.status_code == 404 and r.json()["error"]["param"] == "agent_id", r.text
    integration = await _create(api)
    r = await api.patch(f"/v1/integrations/{integration['id']}", json={"agent_id": foreign})
    assert r.status_code == 404 and r.json()["error"]["param"] == "agent_id"


async def test_type_cannot_change(api: httpx.AsyncClient) -> None:
    integration = await _create(api, type="sms")
    r = await api.patch(f"/v1/integrations/{integration['id']}", json={"type": "whatsapp"})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["param"] == "type" and error["code"] == "immutable_field" and "cannot change" in error["message"]
    r = await api.patch(f"/v1/integrations/{integration['id']}", json={"type": "sms", "name": "same type"})
    assert r.status_code == 200 and r.json()["name"] == "same type"


async def test_secrets_are_not_accepted_in_settings_or_as_ciphertext(api: httpx.AsyncClient) -> None:
    for body, param in [
        ({**sms_body(), "secrets_ciphertext": "x"}, "secrets_ciphertext"),
        ({**sms_body(), "secret_names": ["auth_token"]}, "secret_names"),
        (sms_body(settings={"account_sid": ACCOUNT_SID, "from_number": FROM_NUMBER, "auth_token": "x"}), "settings"),
        ({"type": "whatsapp", "settings": {"meta": {"Access-Token": "x"}}}, "settings"),
        ({"type": "api", "settings": {"webhook": {"secret": "x"}}}, "settings"),
    ]:
        r = await api.post("/v1/integrations", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["param"] == param, (body, r.text)
    integration = await _create(api, type="api")
    r = await api.patch(f"/v1/integrations/{integration['id']}", json={"settings": {"password": "x"}})
    assert r.status_code == 422 and r.json()["error"]["param"] == "settings"
    assert "secret" in r.json()["error"]["message"] and "`secrets`" in r.json()["error"]["message"]


async def test_invalid_integration_fields_are_422s_naming_the_field(api: httpx.AsyncClient) -> None:
    cases = [
        ({}, "type"),
        ({"type": "telegram"}, "type"),
        (sms_body(name="n" * 201), "name"),
        (sms_body(enabled="sometimes"), "enabled"),
        (sms_body(settings=["a"]), "settings"),
        ({"type": "api", "settings": {"blob": "x" * 17_000}}, "settings"),
        (sms_body(agent_id="x" * 65), "agent_id"),
        (sms_body(name="\x00"), "name"),
        ({"type": "api", "settings": {"from": "\x00"}}, "settings"),
        (sms_body(secrets=["auth_token"]), "secrets"),
        (sms_body(secrets={"auth_token": 12345}), "secrets.auth_token"),
    ]
    for body, param in cases:
        r = await api.post("/v1/integrations", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["param"] == param, (body, r.text)
    integration = await _create(api)
    for field in ("type", "name", "enabled", "settings", "secrets"):
        r = await api.patch(f"/v1/integrations/{integration['id']}", json={field: None})
        assert r.status_code == 422 and r.json()["error"]["param"] == field, r.text


async def test_unknown_malformed_or_foreign_integration_ids_are_404s(
    api: httpx.AsyncClient, other_tenant: Any, client: httpx.AsyncClient
) -> None:
    r = await client.post("/v1/integrations", json=sms_body(), headers=other_tenant.headers)
    foreign = r.json()["id"]
    for integration_id in (str(uuid.uuid4()), "nope", foreign):
        assert (await api.get(f"/v1/integrations/{integration_id}")).status_code == 404
        assert (await api.patch(f"/v1/integrations/{integration_id}", json={"name": "x"})).status_code == 404
        assert (await api.delete(f"/v1/integrations/{integration_id}")).status_code == 404


async def test_deleting_an_integration_threads_came_through_is_a_409(
    api: httpx.AsyncClient, tenant: Any, sessionmaker: Any
) -> None:
    integration = await _create(api, type="sms")
    agent_id = await _agent(api)
    async with sessionmaker() as session, session.begin():
        ws = tenant.workspace_id
        agent = (await session.execute(select(Agent).where(Agent.public_id == uuid.UUID(agent_id)))).scalar_one()
        row = (
            await session.execute(select(Integration).where(Integration.public_id == uuid.UUID(integration["id"])))
        ).scalar_one()
        end_user = EndUser(workspace_id=ws, channel="sms", address="+14155550123")
        session.add(end_user)
        await session.flush()
        number = await take(session, workspace_id=ws, of=Thread)
        session.add(
            Thread(workspace_id=ws, number=number, agent_id=agent.id, end_user_id=end_user.id, integration_id=row.id)
        )
    r = await api.delete(f"/v1/integrations/{integration['id']}")
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "integration_in_use" and "thread" in r.json()["error"]["message"]
    assert (await api.get(f"/v1/integrations/{integration['id']}")).status_code == 200
