"""One thread, five surfaces: opened through Altur's POST, answered by the agent, annotated through /v1,
then read through camelAI (by its integer id), Aitronos and Feather (by its UUID), Altur and /v1, with the
same messages in the same order wherever the surface has a word for their role."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import update

from tests.conftest import Tenant
from tests.dialects.conftest import ByMessage
from tests.runs.conftest import worker  # noqa: F401 - fixture: a worker in this process
from tests.runs.scripted import Step
from threadline.dialects.mapping import shown_roles
from threadline.kit.ids import parse_uuid
from threadline.models import Message


def _headers(tenant: Tenant) -> dict[str, dict[str, str]]:
    return {
        "v1": {"Authorization": f"Bearer {tenant.key}"},
        "altur": {"Authorization": f"api-key {tenant.key}"},
        "camelai": {"Authorization": f"Bearer {tenant.key}"},
        "aitronos": {"X-API-Key": tenant.key},
        "feather": {"X-API-Key": tenant.key},
    }


async def _read_all(anon: httpx.AsyncClient, tenant: Tenant, uuid: str, number: int) -> dict[str, Any]:
    h = _headers(tenant)
    r = {
        "v1": await anon.get(f"/v1/threads/{uuid}/messages", params={"limit": 100}, headers=h["v1"]),
        "altur": await anon.get(f"/altur/api/v1.0/message/{uuid}", headers=h["altur"]),
        "camelai": await anon.get(f"/camelai/api/v1/threads/{number}/messages", headers=h["camelai"]),
        "aitronos": await anon.get(
            f"/aitronos/v1/threads/{uuid}/messages", params={"limit": 100}, headers=h["aitronos"]
        ),
        "feather": await anon.get(
            f"/feather/api/v1/threads/{uuid}/messages", params={"limit": 100}, headers=h["feather"]
        ),
    }
    for name, response in r.items():
        assert response.status_code == 200, (name, response.text)
    return {name: response.json() for name, response in r.items()}


async def test_a_thread_opened_through_altur_is_the_same_thread_everywhere(
    api: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    tenant: Tenant,
    sessionmaker: Any,
    provider: ByMessage,
    worker: Any,  # noqa: F811
) -> None:
    provider.answers["Where is my order A-17?"] = Step(text="Your order A-17 shipped yesterday.")
    provider.answers["Thanks!"] = Step(text="You are welcome!")
    agent = (
        await api.post("/v1/agents", json={"name": "Support", "version": {"mode": "PROMPT", "model": "gpt-4o-mini"}})
    ).json()
    end_user = (await api.post("/v1/end_users", json={"display_name": "Ada"})).json()
    altur = _headers(tenant)["altur"]
    first = await anon.post(
        "/altur/api/v1.0/message",
        json={"agent_id": agent["id"], "end_user_id": end_user["id"], "content": "Where is my order A-17?"},
        headers=altur,
    )
    assert first.status_code == 200, first.text
    uuid = first.json()["thread"]["id"]
    assert [m["content"] for m in first.json()["messages"]] == ["Your order A-17 shipped yesterday."]
    second = await anon.post(
        "/altur/api/v1.0/message",
        json={"agent_id": agent["id"], "end_user_id": end_user["id"], "content": "Thanks!"},
        headers=altur,
    )
    assert second.status_code == 200, second.text
    assert second.json()["thread"]["id"] == uuid  # continued, not a second thread
    # Notes only some surfaces show, written through /v1.
    for role, content in (("system", "Handed back to the agent."), ("hidden", "internal: VIP customer")):
        r = await api.post(f"/v1/threads/{uuid}/messages", json={"role": role, "content": content})
        assert r.status_code == 201, r.text
    number = (await api.get(f"/v1/threads/{uuid}")).json()["number"]

    seen = await _read_all(anon, tenant, uuid, number)
    native = seen["v1"]["data"]
    assert [m["content"] for m in native] == [
        "Where is my order A-17?",
        "Your order A-17 shipped yesterday.",
        "Thanks!",
        "You are welcome!",
        "Handed back to the agent.",
        "internal: VIP customer",
    ]

    def expected(vendor: Any) -> list[dict[str, Any]]:
        return [m for m in native if m["role"] in shown_roles(vendor)]

    assert [m["content"] for m in seen["altur"]] == [m["content"] for m in expected("altur")]
    assert [m["sent_by"] for m in seen["altur"]] == ["EU", "AI", "EU", "AI", "SYS"]
    assert {m["thread_id"] for m in seen["altur"]} == {uuid}
    camel = seen["camelai"]
    assert camel["thread_id"] == number and camel["message_count"] == len(native)
    assert [(m["id"], m["content"]) for m in camel["messages"]] == [(m["number"], m["content"]) for m in native]
    aitronos = seen["aitronos"]["data"]
    assert [(m["id"], m["content"], m["role"]) for m in aitronos] == [
        (m["id"], m["content"], m["role"]) for m in expected("aitronos")
    ]
    assert "tool_calls" not in aitronos[0] and "iterations" in aitronos[1]  # the agent's reply recorded its steps
    feather = seen["feather"]["thread"]
    assert [(m["id"], m["messageBody"], m["direction"]) for m in feather["messages"]] == [
        (m["id"], m["content"], m["direction"]) for m in expected("feather")
    ]
    assert feather["agentId"] == agent["id"] and feather["agentVersionId"] == agent["current_version"]["id"]

    # A channel callback moves a reply to DELIVERED: Feather's fields show it on the next read.
    reply = feather["messages"][1]
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Message)
            .where(Message.public_id == parse_uuid(reply["id"]))
            .values(status="DELIVERED", external_id="SM" + "1" * 32, segments=1)
        )
    again = await anon.get(
        f"/feather/api/v1/threads/{uuid}/messages", params={"limit": 100}, headers=_headers(tenant)["feather"]
    )
    shown = again.json()["thread"]["messages"][1]
    assert (shown["status"], shown["twilioMessageSid"], shown["twilioNumSegments"]) == ("DELIVERED", "SM" + "1" * 32, 1)


async def test_another_workspace_sees_none_of_it_on_any_surface(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, other_tenant: Tenant
) -> None:
    agent = (await api.post("/v1/agents", json={"name": "A", "version": {"mode": "PROMPT", "model": "m"}})).json()
    thread = (
        await api.post(
            "/v1/threads",
            json={
                "agent_id": agent["id"],
                "end_user_id": (await api.post("/v1/end_users", json={"display_name": "B"})).json()["id"],
            },
        )
    ).json()
    h = _headers(other_tenant)
    uuid, number = thread["id"], thread["number"]
    answers = {
        "v1": await anon.get(f"/v1/threads/{uuid}/messages", headers=h["v1"]),
        "altur": await anon.get(f"/altur/api/v1.0/message/{uuid}", headers=h["altur"]),
        "camelai": await anon.get(f"/camelai/api/v1/threads/{number}/messages", headers=h["camelai"]),
        "aitronos": await anon.get(f"/aitronos/v1/threads/{uuid}/messages", headers=h["aitronos"]),
        "feather": await anon.get(f"/feather/api/v1/threads/{uuid}/messages", headers=h["feather"]),
    }
    assert {name: r.status_code for name, r in answers.items()} == dict.fromkeys(answers, 404)
