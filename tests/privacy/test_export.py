"""Exporting an end user's data (GDPR articles 15 and 20): JSON Lines, complete, nothing of anyone else, read
in bounded chunks; admin only; another workspace's end user is a 404 and an erased one a 410."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.channels.test_twilio_inbound import post_signed, sms_line, threads_of_line
from tests.conftest import Tenant, add_key
from tests.factories import create_agent, create_end_user, create_thread, post_message
from tests.privacy.conftest import EchoReceiver, as_tenant, distinctive, erase, new_phone
from tests.runs.conftest import until
from threadline.flows.send import append_message
from threadline.messages.service import NewMessage
from threadline.models.enums import Role, Scope
from threadline.privacy import export as export_module
from threadline.privacy.export import open_export


def _lines(body: bytes) -> list[dict[str, Any]]:
    assert body.endswith(b"\n")
    return [json.loads(line) for line in body.decode().splitlines()]


async def _export(api: httpx.AsyncClient, end_user_id: str) -> list[dict[str, Any]]:
    r = await api.get(f"/v1/end_users/{end_user_id}/export")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-ndjson"
    assert r.headers["content-disposition"] == f'attachment; filename="end_user_{end_user_id}.jsonl"'
    return _lines(r.content)


async def test_the_export_holds_everything_about_them_and_nothing_of_anyone_else(
    api: httpx.AsyncClient,
    app: Any,
    other_tenant: Tenant,
    twilio_side: httpx.AsyncClient,
    busy_worker: Any,
    echo: EchoReceiver,
) -> None:
    phrase, other_phrase, phone = distinctive("heron"), distinctive("marmot"), new_phone()
    webhook = (await api.post("/v1/webhooks", json={"url": echo.url})).json()
    person = await create_end_user(
        api, channel="sms", address=phone, display_name=f"Ada {phrase}", metadata={"k": phrase}
    )
    agent = await create_agent(api)  # no version: nobody answers
    line = await sms_line(api, agent=agent)
    r = await post_signed(twilio_side, line.sms_path, line.sms(sender=phone, body=f"sms {phrase}"), line.auth_token)
    assert r.status_code == 200, r.text
    threads = [await create_thread(api, agent_id=agent["id"], end_user_id=person["id"]) for _ in range(2)]
    for n, thread in enumerate(threads):
        for i in range(3):
            await post_message(api, thread["id"], f"{phrase} {n}.{i}", metadata={"i": i})
    await post_message(
        api,
        threads[0]["id"],
        "looked it up",
        role="assistant",
        tool_calls=[{"id": "c1", "name": "lookup", "arguments": {"q": phrase}}],
    )
    # An SMS reply: QUEUED, then moved along its delivery lifecycle (the history is in the event log).
    (sms_thread,) = await threads_of_line(api, line)
    reply = await post_message(api, sms_thread["id"], f"reply {phrase}", role="assistant")
    assert reply["status"] == "QUEUED"
    neighbour = await create_end_user(api, display_name=other_phrase)
    await post_message(api, (await create_thread(api, end_user_id=neighbour["id"]))["id"], other_phrase)
    async with as_tenant(app, other_tenant) as elsewhere:
        stranger = await create_end_user(elsewhere, channel="sms", address=phone, display_name=other_phrase)
        await post_message(elsewhere, (await create_thread(elsewhere, end_user_id=stranger["id"]))["id"], other_phrase)

    async def delivered() -> bool:
        r = await api.get(f"/v1/webhooks/{webhook['id']}/deliveries", params={"status": "pending", "limit": 1})
        return r.json()["data"] == []

    await until(delivered)
    lines = await _export(api, person["id"])
    raw = json.dumps(lines)

    assert other_phrase not in raw and neighbour["id"] not in raw and stranger["id"] not in raw
    assert all("type" in line for line in lines)
    assert lines[0]["type"] == "export" and lines[0]["end_user_id"] == person["id"] and lines[0]["version"] == 1
    assert lines[1] == {"type": "end_user", "data": (await api.get(f"/v1/end_users/{person['id']}")).json()}
    assert lines[-1]["type"] == "end"
    kinds = [line["type"] for line in lines]
    counts = {k: kinds.count(k) for k in set(kinds) - {"export", "end"}}
    assert lines[-1]["counts"] == dict(sorted(counts.items()))

    by_type: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_type.setdefault(line["type"], []).append(line.get("data", line))
    their_threads = {t["id"] for t in (*threads, sms_thread)}
    assert {t["id"] for t in by_type["thread"]} == their_threads
    messages = by_type["message"]
    assert len(messages) == 1 + 6 + 1 + 1 and {m["thread_id"] for m in messages} == their_threads
    for thread_id in their_threads:  # each thread's messages, oldest first, as the API shows them
        r = await api.get(f"/v1/threads/{thread_id}/messages", params={"limit": 100})
        assert [m for m in messages if m["thread_id"] == thread_id] == r.json()["data"]
    assert any(m["tool_calls"] == [{"id": "c1", "name": "lookup", "arguments": {"q": phrase}}] for m in messages)
    events = by_type["event"]
    assert {e["thread_id"] for e in events} == their_threads
    assert {e["type"] for e in events} >= {"thread.created", "message.created"}
    statuses = [s for s in by_type["message_status"] if s["message_id"] == reply["id"]]
    assert [s["status"] for s in statuses] == ["QUEUED"]
    deliveries = by_type["webhook_delivery"]
    assert len(deliveries) == len(events) and {d["webhook_id"] for d in deliveries} == {webhook["id"]}
    assert {d["event_id"] for d in deliveries} == {e["id"] for e in events}


async def test_the_export_reads_and_writes_in_bounded_chunks(
    api: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_module, "ROWS_PER_CHUNK", 40)
    person = await create_end_user(api)
    threads = [await create_thread(api, end_user_id=person["id"]) for _ in range(3)]
    async with sessionmaker() as session, session.begin():
        for thread in threads:
            for i in range(170):
                new = NewMessage(role=Role.USER, content=f"m{i}", start_run=False)
                await append_message(session, workspace_id=tenant.workspace_id, thread_id=thread["id"], new=new)

    async with sessionmaker() as session:
        export = await open_export(session, workspace_id=tenant.workspace_id, end_user_id=person["id"])
        chunks = [chunk async for chunk in export.chunks()]
    per_chunk = [sum(1 for line in chunk.splitlines() if json.loads(line)["type"] == "message") for chunk in chunks]
    assert sum(per_chunk) == 510
    assert max(per_chunk) == 40  # never more than one keyset chunk of messages at a time
    assert len([n for n in per_chunk if n]) == 3 * 5  # 170 messages a thread: 4 chunks of 40 and one of 10

    r = await api.get(f"/v1/end_users/{person['id']}/export")
    assert r.status_code == 200
    assert "content-length" not in r.headers  # streamed
    lines = _lines(r.content)
    assert lines[-1]["counts"]["message"] == 510
    assert [m["data"]["content"] for m in lines if m["type"] == "message"][:3] == ["m0", "m1", "m2"]


async def test_exporting_needs_the_admin_scope_and_an_end_user_of_this_workspace(
    api: httpx.AsyncClient, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, sessionmaker: Any
) -> None:
    person = await create_end_user(api)
    for scopes in ((Scope.WRITE,), (Scope.READ,)):
        key = await add_key(sessionmaker, tenant, scopes)
        r = await client.get(f"/v1/end_users/{person['id']}/export", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "insufficient_scope"
    foreign = {"Authorization": f"Bearer {other_tenant.key}"}
    for end_user_id in (person["id"], str(uuid.uuid4()), "nope"):
        r = await client.get(f"/v1/end_users/{end_user_id}/export", headers=foreign)
        assert r.status_code == 404, r.text
    await erase(api, person["id"])
    r = await api.get(f"/v1/end_users/{person['id']}/export")
    assert r.status_code == 410 and r.json()["error"]["code"] == "end_user_erased", r.text
