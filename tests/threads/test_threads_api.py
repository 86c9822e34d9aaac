from __future__ import annotations

import httpx

from tests.factories import create_agent, create_end_user, create_thread, post_message


async def test_create_and_get_thread_pins_the_agents_current_version(api: httpx.AsyncClient) -> None:
    agent = await create_agent(api, version={"mode": "PROMPT", "model": "gpt-4o-mini", "system_prompt": "be brief"})
    user = await create_end_user(api)
    thread = await create_thread(api, agent_id=agent["id"], end_user_id=user["id"], metadata={"k": "v"})
    assert thread["object"] == "thread"
    assert thread["agent_id"] == agent["id"] and thread["end_user_id"] == user["id"]
    assert thread["agent_version_id"] == agent["current_version"]["id"]
    assert thread["active"] is True and thread["blocked"] is False
    assert thread["message_count"] == 0 and thread["last_message_at"] is None
    assert isinstance(thread["number"], int) and thread["metadata"] == {"k": "v"}
    got = (await api.get(f"/v1/threads/{thread['id']}")).json()
    assert got == thread


async def test_unknown_references_are_404_naming_the_field(api: httpx.AsyncClient) -> None:
    agent = await create_agent(api)
    r = await api.post("/v1/threads", json={"agent_id": agent["id"], "end_user_id": "nope"})
    assert r.status_code == 404 and r.json()["error"]["param"] == "end_user_id"
    user = await create_end_user(api)
    r = await api.post("/v1/threads", json={"agent_id": agent["id"], "end_user_id": user["id"], "tags": ["x"]})
    assert r.status_code == 404 and r.json()["error"]["param"] == "tags"


async def test_message_count_and_last_message_at_follow_each_message(api: httpx.AsyncClient) -> None:
    thread = await create_thread(api)
    m1 = await post_message(api, thread["id"], "one")
    m2 = await post_message(api, thread["id"], "two")
    got = (await api.get(f"/v1/threads/{thread['id']}")).json()
    assert got["message_count"] == 2
    assert got["last_message_at"] == m2["created_at"]
    assert m1["created_at"] <= m2["created_at"]


async def test_patch_pauses_the_ai_blocks_tags_and_assigns(api: httpx.AsyncClient) -> None:
    thread = await create_thread(api)
    tag = (await api.post("/v1/tags", json={"name": "urgent", "color": "red"})).json()
    user = (await api.post("/v1/users", json={"email": "op@example.com", "first_name": "Op"})).json()
    r = await api.patch(
        f"/v1/threads/{thread['id']}",
        json={"active": False, "blocked": True, "tags": [tag["id"]], "assigned_to": [user["id"]]},
    )
    assert r.status_code == 200, r.text
    t = r.json()
    assert t["active"] is False and t["blocked"] is True
    assert t["tags"] == [{"id": tag["id"], "name": "urgent", "color": "red"}]
    assert [u["id"] for u in t["assigned_to"]] == [user["id"]]
    assert t["assigned_to"][0]["email"] == "op@example.com"
    # Only fields present change.
    t2 = (await api.patch(f"/v1/threads/{thread['id']}", json={"active": True})).json()
    assert t2["active"] is True and t2["blocked"] is True and t2["tags"] == t["tags"]
    r = await api.patch(f"/v1/threads/{thread['id']}", json={"active": None})
    assert r.status_code == 422 and r.json()["error"]["param"] == "active"


async def test_list_filters(api: httpx.AsyncClient) -> None:
    agent_a = await create_agent(api)
    agent_b = await create_agent(api)
    user = await create_end_user(api)
    tag = (await api.post("/v1/tags", json={"name": "lead"})).json()
    op = (await api.post("/v1/users", json={"email": "a@example.com"})).json()
    t1 = await create_thread(api, agent_id=agent_a["id"], end_user_id=user["id"], tags=[tag["id"]])
    t2 = await create_thread(api, agent_id=agent_b["id"], end_user_id=user["id"], active=False)
    t3 = await create_thread(api, agent_id=agent_a["id"], blocked=True, assigned_to=[op["id"]])

    async def ids(**params: object) -> list[str]:
        r = await api.get("/v1/threads", params=params)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["data"]]

    assert await ids() == [t1["id"], t2["id"], t3["id"]]
    assert await ids(agent_id=agent_a["id"]) == [t1["id"], t3["id"]]
    assert await ids(end_user_id=user["id"]) == [t1["id"], t2["id"]]
    assert await ids(active="false") == [t2["id"]]
    assert await ids(blocked="true") == [t3["id"]]
    assert await ids(tag_id=tag["id"]) == [t1["id"]]
    assert await ids(assigned_user_id=op["id"]) == [t3["id"]]
    assert await ids(agent_id="not-an-id") == []
    assert await ids(updated_since="2000-01-01T00:00:00Z") == [t1["id"], t2["id"], t3["id"]]
    assert await ids(updated_since="2999-01-01T00:00:00+00:00") == []
    r = await api.get("/v1/threads", params={"updated_since": "2024-01-01T00:00:00"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "updated_since"
    assert await ids(order="desc", limit=2) == [t3["id"], t2["id"]]
    assert await ids(after=t1["id"]) == [t2["id"], t3["id"]]


async def test_delete_thread_removes_its_messages(api: httpx.AsyncClient) -> None:
    thread = await create_thread(api)
    msg = await post_message(api, thread["id"])
    assert (await api.delete(f"/v1/threads/{thread['id']}")).status_code == 204
    assert (await api.get(f"/v1/threads/{thread['id']}")).status_code == 404
    assert (await api.get(f"/v1/threads/{thread['id']}/messages/{msg['id']}")).status_code == 404
