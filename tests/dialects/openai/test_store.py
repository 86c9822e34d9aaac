"""What the mount's writes leave in the store, in process: deleting an item deletes its message with an event and
one message fewer counted; items added are not answered; a PROMPT agent's reply reads back under its run's ids."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select, update

from tests.conftest import Tenant
from tests.factories import create_agent
from threadline.dialects.openai import ids
from threadline.events.repository import EventRepository
from threadline.models import Message, Run

BASE = "/openai/v1"
FLOW = {"mode": "FLOW", "provider": "flow", "flow": {"start": "a", "nodes": {"a": {"type": "end"}}}}


async def test_deleting_an_item_deletes_its_message_with_an_event(
    client: httpx.AsyncClient, api: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    await create_agent(api, version=FLOW)
    r = await client.post(
        f"{BASE}/conversations",
        headers=tenant.headers,
        json={"items": [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]},
    )
    conversation = r.json()["id"]
    thread = str(ids.thread_of(conversation))
    items = (await client.get(f"{BASE}/conversations/{conversation}/items", headers=tenant.headers)).json()["data"]
    newest = items[0]
    assert newest["content"][0]["text"] == "two"
    async with sessionmaker() as session:
        before = await EventRepository(session, tenant.workspace_id).last_seq()

    r = await client.delete(f"{BASE}/conversations/{conversation}/items/{newest['id']}", headers=tenant.headers)
    assert r.status_code == 200 and r.json()["id"] == conversation

    message_id = str(uuid.UUID(newest["id"].removeprefix("msg_")))
    assert (await api.get(f"/v1/threads/{thread}/messages/{message_id}")).status_code == 404
    assert (await api.get(f"/v1/threads/{thread}")).json()["message_count"] == 1
    async with sessionmaker() as session:
        (event,) = await EventRepository(session, tenant.workspace_id).after(before, limit=10)
    assert event.type == "message.deleted" and str(event.thread_id) == thread
    assert event.data == {"object": "message", "id": message_id, "thread_id": thread, "deleted": True}
    again = await client.delete(f"{BASE}/conversations/{conversation}/items/{newest['id']}", headers=tenant.headers)
    assert again.status_code == 404
    assert (await api.get(f"/v1/threads/{thread}/runs")).json()["data"] == []  # nothing answered the items


async def test_a_prompt_agents_reply_is_named_by_its_run_model_call_by_model_call(
    client: httpx.AsyncClient, api: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    """The items of a reply a run stored with its iterations (as the runtime stores them): the text of the call that
    went on to call a tool, the call and its result, the answer; the same items one by one."""
    await create_agent(api, version=FLOW)
    conversation = (await client.post(f"{BASE}/conversations", headers=tenant.headers, json={})).json()["id"]
    thread = str(ids.thread_of(conversation))
    reply = (
        await api.post(
            f"/v1/threads/{thread}/messages",
            json={
                "role": "assistant",
                "content": "It shipped.",
                "tool_calls": [
                    {"id": "call_1", "name": "lookup", "arguments": {"order": "A1"}, "result": {"status": "shipped"}},
                    {"id": "call_2", "name": "tag", "arguments": {}, "error": "no such tag"},
                ],
                "iterations": [
                    {"index": 0, "text": "Looking.", "tool_calls": ["call_1", "call_2"]},
                    {"index": 1, "text": "It shipped.", "tool_calls": []},
                ],
            },
        )
    ).json()
    plain = (await client.get(f"{BASE}/conversations/{conversation}/items", headers=tenant.headers)).json()["data"]
    hex_ = reply["id"].replace("-", "")
    # Not a run's: named by the message, its calls then its text (iterations are not read).
    assert [i["id"] for i in plain[::-1]] == [
        f"fc_{hex_}_0",
        f"fco_{hex_}_0",
        f"fc_{hex_}_1",
        f"fco_{hex_}_1",
        f"msg_{hex_}",
    ]
    # A run's (what the runtime writes): named by the run, its model calls in order.
    run = (await api.post(f"/v1/threads/{thread}/messages", json={"content": "where is A1?"})).json()["run"]
    async with sessionmaker() as session, session.begin():
        run_key = (await session.execute(select(Run.id).where(Run.public_id == uuid.UUID(run["id"])))).scalar_one()
        await session.execute(update(Message).where(Message.public_id == uuid.UUID(reply["id"])).values(run_id=run_key))
    run_hex = run["id"].replace("-", "")
    items = (
        await client.get(f"{BASE}/conversations/{conversation}/items", params={"order": "asc"}, headers=tenant.headers)
    ).json()["data"]
    assert [(i["type"], i["id"]) for i in items[:5]] == [
        ("message", f"msg_{run_hex}_0"),
        ("function_call", f"fc_{run_hex}_0"),
        ("function_call_output", f"fco_{run_hex}_0"),
        ("function_call", f"fc_{run_hex}_1"),
        ("function_call_output", f"fco_{run_hex}_1"),
    ]
    commentary, lookup, result, tag, failed, answer = items[:6]
    assert (tag["call_id"], tag["name"], tag["arguments"]) == ("call_2", "tag", "{}")
    assert (commentary["phase"], commentary["content"][0]["text"]) == ("commentary", "Looking.")
    assert (lookup["call_id"], lookup["name"], lookup["arguments"]) == ("call_1", "lookup", '{"order":"A1"}')
    assert (result["call_id"], result["output"]) == ("call_1", '{"status":"shipped"}')
    assert (failed["call_id"], failed["output"]) == ("call_2", '{"error":"no such tag"}')
    assert (answer["id"], answer["phase"], answer["content"][0]["text"]) == (
        f"msg_{run_hex}_1",
        "final_answer",
        "It shipped.",
    )
    for item in items[:6]:
        r = await client.get(f"{BASE}/conversations/{conversation}/items/{item['id']}", headers=tenant.headers)
        assert r.json() == item
    # A page boundary inside the reply: after its second item, the rest of it, then the next message.
    after = await client.get(
        f"{BASE}/conversations/{conversation}/items",
        params={"order": "asc", "after": items[1]["id"], "limit": 5},
        headers=tenant.headers,
    )
    assert [i["id"] for i in after.json()["data"]] == [i["id"] for i in items[2:7]]
    # The reply no longer answers to its own message's ids.
    assert (
        await client.get(f"{BASE}/conversations/{conversation}/items/msg_{hex_}", headers=tenant.headers)
    ).status_code == 404
