"""The agents page over HTTP: each agent with its versions (mode, provider, model, prompt or flow as text), the
threads running each version and the link to them in the inbox, the anchors the thread view links to, escaping,
paging and tenancy."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import Tenant, make_tenant
from tests.console.conftest import browser_client, make_operator, sign_in
from tests.console.inbox_pages import Node, parse, row_ids
from tests.factories import create_agent, create_thread

Maker = async_sessionmaker[AsyncSession]
PROMPT = {"mode": "PROMPT", "provider": "openai", "model": "gpt-4o-mini", "system_prompt": "Be brief."}
FLOW = {
    "mode": "FLOW",
    "provider": "flow",
    "flow": {
        "start": "hi",
        "nodes": {"hi": {"type": "send", "text": "<b>Hi</b> {{name}}", "next": "end"}, "end": {"type": "end"}},
    },
}


async def _page(client: httpx.AsyncClient, **params: str) -> Node:
    r = await client.get("/console/agents", params=params)
    assert r.status_code == 200, r.text[:2000]
    return parse(r.text)


async def _version(api: httpx.AsyncClient, agent_id: str, **body: Any) -> dict[str, Any]:
    r = await api.post(f"/v1/agents/{agent_id}/versions", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_agents_are_listed_with_their_versions_and_the_threads_that_run_each(
    api: httpx.AsyncClient, console_http: httpx.AsyncClient, sessionmaker: Maker, tenant: Tenant
) -> None:
    await sign_in(console_http, await make_operator(sessionmaker, tenant))
    hostile = "You are <script>alert(1)</script> helpful.\n  Indented <img src=x onerror=alert(1)> line."
    shop = await create_agent(
        api,
        name="<i>Acme</i> Bikes",
        description="Answers <b>customers</b>.",
        version={
            **PROMPT,
            "system_prompt": hostile,
            "temperature": 0.3,
            "max_tokens": 256,
            "tools": [{"type": "add_tag"}],
        },
    )
    v1 = shop["current_version"]
    for _ in range(2):
        await create_thread(api, agent_id=shop["id"])
    v2 = await _version(api, shop["id"], **FLOW)
    await create_thread(api, agent_id=shop["id"])
    pinned_old = await create_thread(api, agent_id=shop["id"], agent_version_id=v1["id"])
    bare = await create_agent(api, name="No version yet")
    await create_thread(api, agent_id=bare["id"])  # runs no version at all

    r = await console_http.get("/console/agents")
    assert r.status_code == 200
    assert "<script>alert" not in r.text and "<img src" not in r.text and "<i>Acme" not in r.text
    assert "<b>customers" not in r.text and "<b>Hi" not in r.text
    doc = parse(r.text)
    card = doc.by_id(f"agent-{shop['id']}")
    assert card.find_all(cls="agent-name")[0].text == "<i>Acme</i> Bikes"
    assert card.find_all(cls="agent-desc")[0].text == "Answers <b>customers</b>."
    threads_link = card.find_all(cls="agent-threads")[0]
    assert threads_link.text == "4 threads" and threads_link.attrs["href"] == f"/console/inbox?agent={shop['id']}"
    versions = card.find_all(cls="version")
    assert [v.attrs["id"] for v in versions] == [f"version-{v2['id']}", f"version-{v1['id']}"]  # newest first

    newest, oldest = versions
    assert "is-current" in newest.classes and newest.find_all(cls="chip-current")
    assert [c.text for c in newest.find_all(cls="chip")] == ["Current", "FLOW", "flow"]
    assert newest.find_all(cls="version-threads")[0].text == "1 thread"
    flow_text = newest.find_all(tag="pre")[0].text
    assert '"type": "send"' in flow_text and "<b>Hi</b> {{name}}" in flow_text
    assert newest.find_all(tag="details")[0].attrs.get("open") == ""  # the current version's, open

    assert [c.text for c in oldest.find_all(cls="chip")] == ["PROMPT", "openai", "gpt-4o-mini"]
    assert oldest.find_all(cls="version-threads")[0].text == "3 threads"  # two from when it was current, one pinned
    prompt = oldest.find_all(tag="pre")[0]
    assert prompt.children == [hostile]  # the prompt as it is, line breaks and all, as text
    assert "open" not in oldest.find_all(tag="details")[0].attrs
    meta = {
        d.find_all(tag="dt")[0].text: d.find_all(tag="dd")[0].text
        for d in oldest.find_all(cls="version-meta")[0].find_all(tag="div")
    }
    assert meta == {"Temperature": "0.3", "Max tokens": "256", "Tools": "add_tag"}
    assert oldest.find_all(cls="version-anchor")[0].attrs["href"] == f"#version-{v1['id']}"
    assert pinned_old["agent_version_id"] == v1["id"]

    lone = doc.by_id(f"agent-{bare['id']}")
    assert lone.find_all(cls="agent-threads")[0].text == "1 thread"
    assert "No version yet: this agent does not answer." in lone.text
    assert "1 thread started before the agent had a version." in lone.text
    # The link goes to the inbox filtered by the agent: its threads, none other.
    r = await console_http.get(threads_link.attrs["href"])
    assert len(row_ids(r.text)) == 4


async def test_one_agent_alone_and_pages_of_agents(
    api: httpx.AsyncClient, console_http: httpx.AsyncClient, sessionmaker: Maker, tenant: Tenant, app: Any
) -> None:
    await sign_in(console_http, await make_operator(sessionmaker, tenant))
    agents = [await create_agent(api, name=f"agent {i}", version=PROMPT) for i in range(3)]
    doc = await _page(console_http)
    assert [n.attrs["id"] for n in doc.find_all(cls="agent-card")] == [f"agent-{a['id']}" for a in agents]
    doc = await _page(console_http, after=agents[0]["id"])
    assert [n.attrs["id"] for n in doc.find_all(cls="agent-card")] == [f"agent-{a['id']}" for a in agents[1:]]
    doc = await _page(console_http, agent=agents[1]["id"])
    assert [n.attrs["id"] for n in doc.find_all(cls="agent-card")] == [f"agent-{agents[1]['id']}"]
    assert "All agents" in doc.text
    for params, status in (({"agent": "nope"}, 404), ({"after": "nope"}, 422), ({"after": "x" * 65}, 422)):
        r = await console_http.get("/console/agents", params=params)
        assert r.status_code == status, (params, r.text[:300])
        assert r.headers["content-type"].startswith("text/html")
    # No agents: the page says how to make one.
    newcomer = await make_operator(sessionmaker, await make_tenant(sessionmaker))
    async with browser_client(app) as other:
        await sign_in(other, newcomer)
        assert "No agents yet" in (await _page(other)).text


async def test_another_workspaces_agents_never_show(
    api: httpx.AsyncClient,
    console_http: httpx.AsyncClient,
    sessionmaker: Maker,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    await sign_in(console_http, await make_operator(sessionmaker, tenant))
    ours = await create_agent(api, name="Ours", version=PROMPT)
    api.headers.update(other_tenant.headers)
    theirs = await create_agent(api, name="Theirs secret", version={**PROMPT, "system_prompt": "their secret prompt"})
    await create_thread(api, agent_id=theirs["id"])
    doc = await _page(console_http)
    assert [n.attrs["id"] for n in doc.find_all(cls="agent-card")] == [f"agent-{ours['id']}"]
    assert "Theirs secret" not in doc.text and "their secret prompt" not in doc.text
    assert doc.find_all(cls="agent-threads")[0].text == "0 threads"
    r = await console_http.get("/console/agents", params={"agent": theirs["id"]})
    assert r.status_code == 404 and "their secret" not in r.text
    r = await console_http.get("/console/agents", params={"after": theirs["id"]})
    assert r.status_code == 422
