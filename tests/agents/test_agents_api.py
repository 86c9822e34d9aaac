from __future__ import annotations

import asyncio
import importlib.util
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from threadline.models import Agent, AgentVersion, EndUser, Thread
from threadline.workspaces.numbers import take

PROMPT = {"mode": "PROMPT", "provider": "openai", "model": "gpt-4o-mini", "system_prompt": "Be brief."}
FLOW = {
    "mode": "FLOW",
    "provider": "flow",
    "flow": {"start": "greet", "nodes": {"greet": {"type": "end", "message": "Hi"}}},
}


async def _create(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "Support")
    r = await api.post("/v1/agents", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def _add_version(api: httpx.AsyncClient, agent_id: str, **body: Any) -> dict[str, Any]:
    r = await api.post(f"/v1/agents/{agent_id}/versions", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def test_create_get_list_update_delete_agent(api: httpx.AsyncClient) -> None:
    agent = await _create(api, name="Support", description="Answers questions", metadata={"team": "cx"})
    assert agent["object"] == "agent" and agent["name"] == "Support" and agent["type"] == "TEXT"
    assert agent["description"] == "Answers questions" and agent["metadata"] == {"team": "cx"}
    assert agent["current_version"] is None
    assert (await api.get(f"/v1/agents/{agent['id']}")).json() == agent

    r = await api.patch(f"/v1/agents/{agent['id']}", json={"type": "CALL", "description": None})
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["type"] == "CALL" and updated["description"] is None and updated["name"] == "Support"
    assert updated["metadata"] == {"team": "cx"}

    page = (await api.get("/v1/agents")).json()
    assert page["object"] == "list" and [a["id"] for a in page["data"]] == [agent["id"]]
    assert page["has_more"] is False

    assert (await api.delete(f"/v1/agents/{agent['id']}")).status_code == 204
    r = await api.get(f"/v1/agents/{agent['id']}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_creating_an_agent_with_a_version_makes_version_1_current(api: httpx.AsyncClient) -> None:
    agent = await _create(
        api,
        version={**PROMPT, "temperature": 0.3, "max_tokens": 256, "tools": [{"type": "add_tag"}]},
    )
    version = agent["current_version"]
    assert version["object"] == "agent_version" and version["agent_id"] == agent["id"]
    assert version["number"] == 1 and version["name"] == "v1" and version["mode"] == "PROMPT"
    assert version["provider"] == "openai" and version["model"] == "gpt-4o-mini"
    assert version["system_prompt"] == "Be brief." and version["temperature"] == 0.3
    assert version["max_tokens"] == 256
    assert version["tools"] == [  # stored complete, defaults filled in
        {"type": "add_tag", "name": "add_tag", "description": "Tag this conversation.", "allowed": []}
    ]
    assert version["sms_max_tokens"] is None and version["sms_temperature"] is None  # left out: max_tokens applies
    assert version["flow"] is None and version["discard_inbound"] is False and version["settings"] == {}
    assert (await api.get(f"/v1/agents/{agent['id']}/versions/{version['id']}")).json() == version
    listed = (await api.get("/v1/agents")).json()["data"][0]
    assert listed["current_version"] == version


async def test_a_versions_sms_settings_are_stored_and_read_back(api: httpx.AsyncClient) -> None:
    agent = await _create(api, version={**PROMPT, "max_tokens": 400, "sms_max_tokens": 120, "sms_temperature": 0.2})
    v1 = agent["current_version"]
    assert v1["max_tokens"] == 400 and v1["temperature"] is None
    assert v1["sms_max_tokens"] == 120 and v1["sms_temperature"] == 0.2
    # Zero is a temperature, not an unset one.
    v2 = await _add_version(api, agent["id"], **PROMPT, sms_temperature=0, sms_max_tokens=1)
    assert v2["sms_temperature"] == 0 and v2["sms_max_tokens"] == 1 and v2["max_tokens"] is None
    for version in (v1, v2):
        r = await api.get(f"/v1/agents/{agent['id']}/versions/{version['id']}")
        assert r.status_code == 200 and r.json() == version
    listed = (await api.get(f"/v1/agents/{agent['id']}/versions")).json()["data"]
    assert [(v["sms_max_tokens"], v["sms_temperature"]) for v in listed] == [(120, 0.2), (1, 0)]
    assert (await api.get(f"/v1/agents/{agent['id']}")).json()["current_version"] == v2


async def test_versions_are_numbered_and_activated_by_default(api: httpx.AsyncClient) -> None:
    agent = await _create(api, version=PROMPT)
    v2 = await _add_version(api, agent["id"], **FLOW, name="scripted", discard_inbound=True)
    assert v2["number"] == 2 and v2["name"] == "scripted" and v2["mode"] == "FLOW"
    assert v2["flow"] == FLOW["flow"] and v2["discard_inbound"] is True
    assert (await api.get(f"/v1/agents/{agent['id']}")).json()["current_version"] == v2

    v3 = await _add_version(api, agent["id"], **PROMPT, activate=False)
    assert v3["number"] == 3 and v3["name"] == "v3"
    assert (await api.get(f"/v1/agents/{agent['id']}")).json()["current_version"]["id"] == v2["id"]


async def test_patching_current_version_rolls_back_and_forward(api: httpx.AsyncClient) -> None:
    agent = await _create(api, version=PROMPT)
    v1 = agent["current_version"]
    v2 = await _add_version(api, agent["id"], **{**PROMPT, "model": "gpt-4o"})
    r = await api.patch(f"/v1/agents/{agent['id']}", json={"current_version_id": v1["id"]})
    assert r.status_code == 200 and r.json()["current_version"] == v1
    r = await api.patch(f"/v1/agents/{agent['id']}", json={"current_version_id": v2["id"]})
    assert r.status_code == 200 and r.json()["current_version"] == v2
    r = await api.patch(f"/v1/agents/{agent['id']}", json={"current_version_id": None})
    assert r.status_code == 200 and r.json()["current_version"] is None

    other = await _create(api, name="Other", version=PROMPT)
    for version_id in (other["current_version"]["id"], str(uuid.uuid4()), "v1"):
        r = await api.patch(f"/v1/agents/{agent['id']}", json={"current_version_id": version_id})
        assert r.status_code == 404 and r.json()["error"]["param"] == "current_version_id", r.text


async def test_list_versions_pages_with_cursors_within_the_agent(api: httpx.AsyncClient) -> None:
    agent = await _create(api, version=PROMPT)
    ids = [agent["current_version"]["id"]]
    ids += [(await _add_version(api, agent["id"], **PROMPT))["id"] for _ in range(4)]
    other = await _create(api, name="Other", version=PROMPT)
    base = f"/v1/agents/{agent['id']}/versions"

    first = (await api.get(base, params={"limit": 2})).json()
    assert [v["id"] for v in first["data"]] == ids[:2] and first["has_more"] is True
    rest = (await api.get(base, params={"after": first["last_id"]})).json()
    assert [v["id"] for v in rest["data"]] == ids[2:] and rest["has_more"] is False
    assert [v["number"] for v in rest["data"]] == [3, 4, 5]
    desc = (await api.get(base, params={"order": "desc", "limit": 2})).json()
    assert [v["id"] for v in desc["data"]] == [ids[4], ids[3]] and desc["has_more"] is True
    before = (await api.get(base, params={"before": ids[2]})).json()
    assert [v["id"] for v in before["data"]] == ids[:2] and before["has_more"] is False

    r = await api.get(base, params={"after": other["current_version"]["id"]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "after"
    r = await api.get(f"/v1/agents/{agent['id']}/versions/{other['current_version']['id']}")
    assert r.status_code == 404
    assert (await api.get(f"/v1/agents/{uuid.uuid4()}/versions")).status_code == 404


async def test_list_agents_pages_and_filters_by_type(api: httpx.AsyncClient) -> None:
    ids = [(await _create(api, name=f"a{i}", type="CALL" if i % 2 else "TEXT"))["id"] for i in range(5)]
    first = (await api.get("/v1/agents", params={"limit": 3})).json()
    assert [a["id"] for a in first["data"]] == ids[:3] and first["has_more"] is True
    rest = (await api.get("/v1/agents", params={"limit": 3, "after": first["last_id"]})).json()
    assert [a["id"] for a in rest["data"]] == ids[3:] and rest["has_more"] is False
    desc = (await api.get("/v1/agents", params={"order": "desc", "before": ids[4], "limit": 2})).json()
    assert [a["id"] for a in desc["data"]] == [ids[3], ids[2]] and desc["has_more"] is True
    calls = (await api.get("/v1/agents", params={"type": "CALL"})).json()
    assert [a["id"] for a in calls["data"]] == [ids[1], ids[3]]
    r = await api.get("/v1/agents", params={"type": "VIDEO"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "type"


async def test_concurrent_versions_get_distinct_consecutive_numbers(api: httpx.AsyncClient) -> None:
    agent = await _create(api)
    results = await asyncio.gather(*(api.post(f"/v1/agents/{agent['id']}/versions", json=PROMPT) for _ in range(8)))
    assert all(r.status_code == 201 for r in results), [r.text for r in results]
    assert sorted(r.json()["number"] for r in results) == list(range(1, 9))


async def test_versions_are_immutable(api: httpx.AsyncClient) -> None:
    agent = await _create(api, version=PROMPT)
    url = f"/v1/agents/{agent['id']}/versions/{agent['current_version']['id']}"
    for method in ("PATCH", "PUT", "DELETE"):
        r = await api.request(method, url, json={"model": "x"})
        assert r.status_code == 405, r.text
        error = r.json()["error"]
        assert error["code"] == "method_not_allowed" and error["type"] == "invalid_request_error"


async def test_version_mode_and_flow_must_agree(api: httpx.AsyncClient) -> None:
    agent = await _create(api)
    url = f"/v1/agents/{agent['id']}/versions"
    r = await api.post(url, json={"mode": "FLOW"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "flow"
    r = await api.post(url, json={"mode": "FLOW", "flow": None})
    assert r.status_code == 422 and r.json()["error"]["param"] == "flow"
    r = await api.post(url, json={**PROMPT, "flow": {"start": "x"}})
    assert r.status_code == 422 and r.json()["error"]["param"] == "flow"
    r = await api.post("/v1/agents", json={"name": "x", "version": {"mode": "FLOW"}})
    assert r.status_code == 422 and r.json()["error"]["param"] == "version.flow"
    assert (await api.get(f"/v1/agents/{agent['id']}/versions")).json()["data"] == []


async def test_invalid_version_fields_are_422s_naming_the_field(api: httpx.AsyncClient) -> None:
    agent = await _create(api)
    url = f"/v1/agents/{agent['id']}/versions"
    cases = [
        ({}, "mode"),
        ({"mode": "CHAT"}, "mode"),
        ({**PROMPT, "temperature": 2.5}, "temperature"),
        ({**PROMPT, "temperature": -0.1}, "temperature"),
        ({**PROMPT, "max_tokens": 0}, "max_tokens"),
        ({**PROMPT, "sms_max_tokens": 0}, "sms_max_tokens"),
        ({**PROMPT, "sms_max_tokens": -5}, "sms_max_tokens"),
        ({**PROMPT, "sms_max_tokens": 2_147_483_648}, "sms_max_tokens"),
        ({**PROMPT, "sms_max_tokens": "many"}, "sms_max_tokens"),
        ({**PROMPT, "sms_temperature": 2.01}, "sms_temperature"),
        ({**PROMPT, "sms_temperature": -0.1}, "sms_temperature"),
        ({**PROMPT, "sms_temperature": "warm"}, "sms_temperature"),
        ({**PROMPT, "tools": [1]}, "tools.0"),
        ({**PROMPT, "tools": {"a": 1}}, "tools"),
        ({**PROMPT, "tools": [{"d": "x" * 70_000}]}, "tools"),
        ({**PROMPT, "settings": []}, "settings"),
        ({**PROMPT, "settings": {"d": "x" * 17_000}}, "settings"),
        ({**FLOW, "flow": ["step"]}, "flow"),
        ({**PROMPT, "name": ""}, "name"),
        ({**PROMPT, "provider": ""}, "provider"),
        ({**PROMPT, "provider": "x" * 65}, "provider"),
        ({**PROMPT, "model": "m" * 201}, "model"),
        ({**PROMPT, "discard_inbound": "maybe"}, "discard_inbound"),
        ({**PROMPT, "number": 7}, "number"),
        ({**PROMPT, "system_prompt": "a\x00b"}, "system_prompt"),
        ({**PROMPT, "tools": [{"name": "\x00"}]}, "tools"),
        ({**FLOW, "flow": _nested(100)}, "flow"),
    ]
    for body, param in cases:
        r = await api.post(url, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["param"] == param, (body, r.text)
    r = await api.post("/v1/agents", json={"name": "x", "version": {**PROMPT, "activate": False}})
    assert r.status_code == 422 and r.json()["error"]["param"] == "version.activate"
    r = await api.post("/v1/agents", json={"name": "x", "version": {**PROMPT, "sms_temperature": 3}})
    error = r.json()["error"]
    assert (
        r.status_code == 422
        and error["param"] == "version.sms_temperature"
        and error["type"] == "invalid_request_error"
    )


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"next": value}
    return value


async def test_invalid_agent_fields_are_422s_naming_the_field(api: httpx.AsyncClient) -> None:
    cases = [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "x", "type": "VOICE"}, "type"),
        ({"name": "x", "description": "d" * 10_001}, "description"),
        ({"name": "x", "metadata": {"d": "x" * 16_400}}, "metadata"),
        ({"name": "x", "metadata": "tags"}, "metadata"),
        ({"name": "x", "current_version_id": None}, "current_version_id"),
    ]
    for body, param in cases:
        r = await api.post("/v1/agents", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["param"] == param, (body, r.text)
    agent = await _create(api)
    for field in ("name", "type", "metadata"):
        r = await api.patch(f"/v1/agents/{agent['id']}", json={field: None})
        assert r.status_code == 422 and r.json()["error"]["param"] == field, r.text
    r = await api.patch(f"/v1/agents/{agent['id']}", json={"version": PROMPT})
    assert r.status_code == 422 and r.json()["error"]["param"] == "version"


async def test_unknown_malformed_or_foreign_agent_ids_are_404s(
    api: httpx.AsyncClient, other_tenant: Any, client: httpx.AsyncClient
) -> None:
    r = await client.post("/v1/agents", json={"name": "theirs", "version": PROMPT}, headers=other_tenant.headers)
    foreign = r.json()
    for agent_id in (str(uuid.uuid4()), "nope", foreign["id"]):
        assert (await api.get(f"/v1/agents/{agent_id}")).status_code == 404
        assert (await api.patch(f"/v1/agents/{agent_id}", json={"name": "x"})).status_code == 404
        assert (await api.delete(f"/v1/agents/{agent_id}")).status_code == 404
        assert (await api.post(f"/v1/agents/{agent_id}/versions", json=PROMPT)).status_code == 404
        assert (await api.get(f"/v1/agents/{agent_id}/versions")).status_code == 404
    r = await api.get(f"/v1/agents/{foreign['id']}/versions/{foreign['current_version']['id']}")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"


async def test_deleting_an_agent_with_threads_is_a_409(api: httpx.AsyncClient, tenant: Any, sessionmaker: Any) -> None:
    agent = await _create(api, version=PROMPT)
    async with sessionmaker() as session, session.begin():
        row = (await session.execute(select(Agent).where(Agent.public_id == uuid.UUID(agent["id"])))).scalar_one()
        end_user = EndUser(workspace_id=tenant.workspace_id)
        session.add(end_user)
        await session.flush()
        session.add(
            Thread(
                workspace_id=tenant.workspace_id,
                number=await take(session, workspace_id=tenant.workspace_id, of=Thread),
                agent_id=row.id,
                agent_version_id=row.current_version_id,
                end_user_id=end_user.id,
            )
        )
    r = await api.delete(f"/v1/agents/{agent['id']}")
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "agent_in_use" and "thread" in error["message"]
    assert (await api.get(f"/v1/agents/{agent['id']}")).status_code == 200


async def test_deleting_an_agent_an_integration_routes_to_is_a_409(api: httpx.AsyncClient) -> None:
    agent = await _create(api)
    r = await api.post("/v1/integrations", json={"type": "api", "name": "web", "agent_id": agent["id"]})
    assert r.status_code == 201, r.text
    integration = r.json()
    r = await api.delete(f"/v1/agents/{agent['id']}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "agent_in_use"
    assert "integration" in r.json()["error"]["message"]
    r = await api.patch(f"/v1/integrations/{integration['id']}", json={"agent_id": None})
    assert r.status_code == 200, r.text
    assert (await api.delete(f"/v1/agents/{agent['id']}")).status_code == 204


async def test_deleting_an_agent_deletes_its_versions(api: httpx.AsyncClient, tenant: Any, sessionmaker: Any) -> None:
    agent = await _create(api, version=PROMPT)
    await _add_version(api, agent["id"], **FLOW)
    assert (await api.delete(f"/v1/agents/{agent['id']}")).status_code == 204
    async with sessionmaker() as session:
        left = await session.scalar(
            select(func.count()).select_from(AgentVersion).where(AgentVersion.workspace_id == tenant.workspace_id)
        )
    assert left == 0


LOCAL_PARAM = "version.settings" if importlib.util.find_spec("llama_cpp") is not None else "version.provider"


async def test_tools_and_provider_settings_are_checked_when_a_version_is_created(api: httpx.AsyncClient) -> None:
    cases = [
        ({**PROMPT, "tools": [{"type": "function", "name": "x"}]}, "version.tools"),
        ({**PROMPT, "tools": [{"type": "http", "name": "x"}]}, "version.tools"),  # no url
        (  # only the server seals headers
            {**PROMPT, "tools": [{"type": "http", "name": "x", "url": "https://e.com", "headers_encrypted": "a"}]},
            "version.tools",
        ),
        ({**PROMPT, "tools": [{"type": "add_tag"}, {"type": "add_tag"}]}, "version.tools"),  # two named add_tag
        ({**PROMPT, "provider": "nonsense"}, "version.provider"),
        ({"mode": "PROMPT", "provider": "openai"}, "version.model"),
        ({**PROMPT, "settings": {"tool_choice": "missing"}}, "version.settings"),
        # No "auto" tool choice on the local model; without its extra, no local model at all.
        ({**PROMPT, "provider": "local", "tools": [{"type": "add_tag"}]}, LOCAL_PARAM),
    ]
    for version, param in cases:
        r = await api.post("/v1/agents", json={"name": "x", "version": version})
        assert r.status_code == 422, (version, r.text)
        assert r.json()["error"]["param"] == param, (version, r.text)
    forced = {**PROMPT, "tools": [{"type": "add_tag"}], "settings": {"tool_choice": "add_tag"}}
    ok = await api.post("/v1/agents", json={"name": "x", "version": forced})
    assert ok.status_code == 201, ok.text


async def test_a_local_version_needs_no_model_and_an_openai_one_does(api: httpx.AsyncClient) -> None:
    # docs/providers.md's example, as written: the local provider serves one model of its own.
    local = {"mode": "PROMPT", "provider": "local", "system_prompt": "You answer for Acme Bikes."}
    r = await api.post("/v1/agents", json={"name": "Offline", "version": local})
    if importlib.util.find_spec("llama_cpp") is not None:
        assert r.status_code == 201, r.text
        version = r.json()["current_version"]
        assert version["provider"] == "local" and version["model"] is None
        agent_id = r.json()["id"]
        again = await api.post(f"/v1/agents/{agent_id}/versions", json={**local, "model": None})
        assert again.status_code == 201, again.text
    else:  # without the extra, what is missing is the extra, not a model
        assert r.status_code == 422 and r.json()["error"]["param"] == "version.provider", r.text
        assert "threadline[local]" in r.json()["error"]["message"]
    agent = await _create(api)
    for body in ({"mode": "PROMPT", "provider": "openai"}, {"mode": "PROMPT"}, {"mode": "PROMPT", "model": None}):
        r = await api.post(f"/v1/agents/{agent['id']}/versions", json=body)
        assert r.status_code == 422 and r.json()["error"]["param"] == "model", (body, r.text)
        assert "'openai' provider needs a model" in r.json()["error"]["message"]
    r = await api.post(f"/v1/agents/{agent['id']}/versions", json={"mode": "PROMPT", "provider": "nonsense"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "provider", r.text


def test_the_registry_says_which_providers_need_a_model() -> None:
    from threadline.engines.providers.local import MODEL_NAME
    from threadline.engines.providers.registry import UnknownProvider, needs_model, provider_class

    assert needs_model("openai") is True and needs_model("local") is False
    assert provider_class("local").default_model == MODEL_NAME and provider_class("openai").default_model is None
    with pytest.raises(UnknownProvider, match="nonsense"):
        needs_model("nonsense")
