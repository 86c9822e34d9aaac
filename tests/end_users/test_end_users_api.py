from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import func, insert, select

from threadline.models import Agent, EndUser, Message, Tag, Thread, thread_tags
from threadline.models.enums import Direction, MessageStatus, Role, SentBy
from threadline.workspaces.numbers import take


async def _create(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    r = await api.post("/v1/end_users", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def test_create_get_list_update_delete_end_user(api: httpx.AsyncClient) -> None:
    eu = await _create(
        api, display_name="Grace", channel="sms", address="+14155550123", info="VIP", metadata={"crm_id": 7}
    )
    assert eu["object"] == "end_user" and eu["channel"] == "sms" and eu["address"] == "+14155550123"
    assert eu["display_name"] == "Grace" and eu["info"] == "VIP" and eu["metadata"] == {"crm_id": 7}
    assert (await api.get(f"/v1/end_users/{eu['id']}")).json() == eu

    r = await api.patch(f"/v1/end_users/{eu['id']}", json={"info": None, "display_name": "Grace H."})
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["info"] is None and updated["display_name"] == "Grace H."
    assert updated["address"] == eu["address"] and updated["metadata"] == eu["metadata"]

    page = (await api.get("/v1/end_users")).json()
    assert page["object"] == "list" and [e["id"] for e in page["data"]] == [eu["id"]]

    assert (await api.delete(f"/v1/end_users/{eu['id']}")).status_code == 204
    r = await api.get(f"/v1/end_users/{eu['id']}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_end_user_defaults_to_the_api_channel_with_any_address(api: httpx.AsyncClient) -> None:
    eu = await _create(api)
    assert eu["channel"] == "api" and eu["address"] is None and eu["display_name"] == "" and eu["metadata"] == {}
    eu = await _create(api, address="customer-42@our-app")
    assert eu["address"] == "customer-42@our-app"
    # No address is not an address: several api end users may have none.
    await _create(api)


async def test_list_end_users_pages_and_filters(api: httpx.AsyncClient) -> None:
    ids = [(await _create(api, channel="sms", address=f"+1415555010{i}"))["id"] for i in range(4)]
    wa = await _create(api, channel="whatsapp", address="+14155550100")
    first = (await api.get("/v1/end_users", params={"limit": 2})).json()
    assert [e["id"] for e in first["data"]] == ids[:2] and first["has_more"] is True
    rest = (await api.get("/v1/end_users", params={"limit": 10, "after": first["last_id"]})).json()
    assert [e["id"] for e in rest["data"]] == [*ids[2:], wa["id"]] and rest["has_more"] is False
    desc = (await api.get("/v1/end_users", params={"limit": 2, "order": "desc", "before": wa["id"]})).json()
    assert [e["id"] for e in desc["data"]] == [ids[3], ids[2]] and desc["has_more"] is True

    sms = (await api.get("/v1/end_users", params={"channel": "sms"})).json()
    assert [e["id"] for e in sms["data"]] == ids
    by_address = (await api.get("/v1/end_users", params={"address": "+14155550100"})).json()
    assert [e["id"] for e in by_address["data"]] == [ids[0], wa["id"]]
    both = (await api.get("/v1/end_users", params={"address": "+14155550100", "channel": "whatsapp"})).json()
    assert [e["id"] for e in both["data"]] == [wa["id"]]
    r = await api.get("/v1/end_users", params={"address": "+1\x00"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "address"
    r = await api.get("/v1/end_users", params={"channel": "fax"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "channel"


async def test_duplicate_address_on_a_channel_is_a_409_naming_address(api: httpx.AsyncClient) -> None:
    await _create(api, channel="whatsapp", address="+14155550123")
    r = await api.post("/v1/end_users", json={"channel": "whatsapp", "address": "+14155550123"})
    assert r.status_code == 409 and r.json()["error"]["param"] == "address"
    other = await _create(api, channel="sms", address="+14155550123")
    r = await api.patch(f"/v1/end_users/{other['id']}", json={"channel": "whatsapp"})
    assert r.status_code == 409 and r.json()["error"]["param"] == "address"


async def test_phone_channels_need_an_e164_address(api: httpx.AsyncClient) -> None:
    for body in (
        {"channel": "sms"},
        {"channel": "sms", "address": "4155550123"},
        {"channel": "whatsapp", "address": "+0155550123"},
        {"channel": "whatsapp", "address": "+1 415 555 0123"},
        {"channel": "sms", "address": "+1415555012345678"},
        {"channel": "sms", "address": None},
    ):
        r = await api.post("/v1/end_users", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["param"] == "address", (body, r.text)
        assert "E.164" in r.json()["error"]["message"]
    api_user = await _create(api, address="not a phone")
    r = await api.patch(f"/v1/end_users/{api_user['id']}", json={"channel": "sms"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "address"
    r = await api.patch(f"/v1/end_users/{api_user['id']}", json={"channel": "sms", "address": "+4930123456"})
    assert r.status_code == 200 and r.json()["channel"] == "sms"
    r = await api.patch(f"/v1/end_users/{api_user['id']}", json={"address": None})
    assert r.status_code == 422 and r.json()["error"]["param"] == "address"


async def test_invalid_end_user_fields_are_422s_naming_the_field(api: httpx.AsyncClient) -> None:
    cases = [
        ({"channel": "fax"}, "channel"),
        ({"display_name": "x" * 201}, "display_name"),
        ({"address": ""}, "address"),
        ({"address": "x" * 201}, "address"),
        ({"info": "x" * 10_001}, "info"),
        ({"metadata": {"k": "v" * 16_400}}, "metadata"),
        ({"phone": "+14155550123"}, "phone"),
        ({"address": "a\x00b"}, "address"),
        ({"info": "\x00"}, "info"),
    ]
    for body, param in cases:
        r = await api.post("/v1/end_users", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["param"] == param, (body, r.text)
    eu = await _create(api)
    for field in ("display_name", "channel", "metadata"):
        r = await api.patch(f"/v1/end_users/{eu['id']}", json={field: None})
        assert r.status_code == 422 and r.json()["error"]["param"] == field, r.text


async def test_unknown_malformed_or_foreign_end_user_ids_are_404s(
    api: httpx.AsyncClient, other_tenant: Any, client: httpx.AsyncClient
) -> None:
    foreign = (await client.post("/v1/end_users", json={}, headers=other_tenant.headers)).json()["id"]
    for end_user_id in (str(uuid.uuid4()), "nope", foreign):
        assert (await api.get(f"/v1/end_users/{end_user_id}")).status_code == 404
        assert (await api.patch(f"/v1/end_users/{end_user_id}", json={"info": "x"})).status_code == 404
        assert (await api.delete(f"/v1/end_users/{end_user_id}")).status_code == 404


async def test_deleting_an_end_user_erases_their_threads_and_messages(
    api: httpx.AsyncClient, tenant: Any, sessionmaker: Any
) -> None:
    eu = await _create(api, channel="sms", address="+14155550123")
    keep = await _create(api, channel="sms", address="+14155550124")
    ws = tenant.workspace_id
    async with sessionmaker() as session, session.begin():
        agent = Agent(workspace_id=ws, name="a")
        tag = Tag(workspace_id=ws, name="t")
        session.add_all([agent, tag])
        await session.flush()
        threads = []
        for public_id in (eu["id"], keep["id"]):
            row = (await session.execute(select(EndUser).where(EndUser.public_id == uuid.UUID(public_id)))).scalar_one()
            number = await take(session, workspace_id=ws, of=Thread)
            thread = Thread(
                workspace_id=ws, number=number, agent_id=agent.id, end_user_id=row.id, last_seq=1, message_count=1
            )
            session.add(thread)
            await session.flush()
            await session.execute(insert(thread_tags).values(thread_id=thread.id, tag_id=tag.id))
            session.add(
                Message(
                    workspace_id=ws,
                    thread_id=thread.id,
                    seq=1,
                    number=await take(session, workspace_id=ws, of=Message),
                    role=Role.USER,
                    direction=Direction.INBOUND,
                    sent_by=SentBy.END_USER,
                    status=MessageStatus.RECEIVED,
                    content="hello",
                )
            )
            threads.append(thread.id)
        await session.flush()

    assert (await api.delete(f"/v1/end_users/{eu['id']}")).status_code == 204

    async with sessionmaker() as session:

        async def count(stmt: Any) -> int:
            return int(await session.scalar(stmt) or 0)

        assert await count(select(func.count()).select_from(Thread).where(Thread.id == threads[0])) == 0
        assert await count(select(func.count()).select_from(Message).where(Message.thread_id == threads[0])) == 0
        assert (
            await count(select(func.count()).select_from(thread_tags).where(thread_tags.c.thread_id == threads[0])) == 0
        )
        assert await count(select(func.count()).select_from(Thread).where(Thread.id == threads[1])) == 1
        assert await count(select(func.count()).select_from(Message).where(Message.thread_id == threads[1])) == 1
    assert (await api.get(f"/v1/end_users/{keep['id']}")).status_code == 200
