from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from sqlalchemy import func, insert, select

from threadline.models import Agent, EndUser, Message, Thread, User, thread_assignees
from threadline.models.enums import Direction, MessageStatus, Role, SentBy
from threadline.workspaces.numbers import take


async def _create(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    r = await api.post("/v1/users", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def test_create_get_list_update_delete_user(api: httpx.AsyncClient) -> None:
    user = await _create(api, email="Ada@Example.com", first_name="Ada", metadata={"team": "support"})
    assert user["object"] == "user" and user["email"] == "Ada@Example.com"
    assert user["first_name"] == "Ada" and user["last_name"] is None and user["metadata"] == {"team": "support"}
    assert (await api.get(f"/v1/users/{user['id']}")).json() == user

    r = await api.patch(f"/v1/users/{user['id']}", json={"last_name": "Lovelace", "first_name": None})
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["last_name"] == "Lovelace" and updated["first_name"] is None
    assert updated["email"] == user["email"] and updated["metadata"] == {"team": "support"}
    assert updated["updated_at"] >= user["updated_at"]

    page = (await api.get("/v1/users")).json()
    assert page["object"] == "list" and [u["id"] for u in page["data"]] == [user["id"]]
    assert page["has_more"] is False

    assert (await api.delete(f"/v1/users/{user['id']}")).status_code == 204
    r = await api.get(f"/v1/users/{user['id']}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_list_users_pages_with_cursors_and_order(api: httpx.AsyncClient) -> None:
    ids = [(await _create(api, email=f"u{i}@example.com"))["id"] for i in range(5)]
    first = (await api.get("/v1/users", params={"limit": 2})).json()
    assert [u["id"] for u in first["data"]] == ids[:2] and first["has_more"] is True
    assert first["first_id"] == ids[0] and first["last_id"] == ids[1]
    second = (await api.get("/v1/users", params={"limit": 2, "after": first["last_id"]})).json()
    assert [u["id"] for u in second["data"]] == ids[2:4] and second["has_more"] is True
    last = (await api.get("/v1/users", params={"limit": 2, "after": second["last_id"]})).json()
    assert [u["id"] for u in last["data"]] == ids[4:] and last["has_more"] is False
    newest = (await api.get("/v1/users", params={"limit": 2, "order": "desc"})).json()
    assert [u["id"] for u in newest["data"]] == [ids[4], ids[3]] and newest["has_more"] is True
    before = (await api.get("/v1/users", params={"limit": 2, "before": ids[3]})).json()
    assert [u["id"] for u in before["data"]] == ids[1:3] and before["has_more"] is True
    r = await api.get("/v1/users", params={"email": "a\x00@example.com"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "email"
    r = await api.get("/v1/users", params={"after": str(uuid.uuid4())})
    assert r.status_code == 400 and r.json()["error"]["param"] == "after"


async def test_list_users_filters_by_email_in_any_case(api: httpx.AsyncClient) -> None:
    ada = await _create(api, email="ada@example.com")
    await _create(api, email="bob@example.com")
    page = (await api.get("/v1/users", params={"email": "ADA@example.COM"})).json()
    assert [u["id"] for u in page["data"]] == [ada["id"]]


async def test_duplicate_email_in_any_case_is_a_409_naming_email(api: httpx.AsyncClient) -> None:
    await _create(api, email="ada@example.com")
    r = await api.post("/v1/users", json={"email": "ADA@example.com"})
    assert r.status_code == 409 and r.json()["error"]["param"] == "email"
    bob = await _create(api, email="bob@example.com")
    r = await api.patch(f"/v1/users/{bob['id']}", json={"email": "Ada@Example.com"})
    assert r.status_code == 409 and r.json()["error"]["param"] == "email"
    r = await api.patch(f"/v1/users/{bob['id']}", json={"email": "BOB@example.com"})
    assert r.status_code == 200 and r.json()["email"] == "BOB@example.com"


async def test_same_email_in_two_workspaces_is_fine(
    api: httpx.AsyncClient, other_tenant: Any, client: httpx.AsyncClient
) -> None:
    await _create(api, email="ada@example.com")
    r = await client.post("/v1/users", json={"email": "ada@example.com"}, headers=other_tenant.headers)
    assert r.status_code == 201


async def test_invalid_user_fields_are_422s_naming_the_field(api: httpx.AsyncClient) -> None:
    cases = [
        ({"email": "no-at-sign"}, "email"),
        ({"email": "two@@example.com"}, "email"),
        ({"email": "a b@example.com"}, "email"),
        ({"email": "a@" + "x" * 320}, "email"),
        ({}, "email"),
        ({"email": "a@example.com", "first_name": "x" * 201}, "first_name"),
        ({"email": "a@example.com", "metadata": {"blob": "x" * 17000}}, "metadata"),
        ({"email": "a@example.com", "metadata": [1]}, "metadata"),
        ({"email": "a@example.com", "password": "x"}, "password"),
        # What PostgreSQL cannot store is refused up front, on SQLite too.
        ({"email": "a\x00@example.com"}, "email"),
        ({"email": "a@example.com", "last_name": "\ud800"}, "last_name"),
        ({"email": "a@example.com", "metadata": {"k": ["\x00"]}}, "metadata"),
        ({"email": "a@example.com", "metadata": {"\udfff": 1}}, "metadata"),
    ]
    for body, param in cases:
        # json.dumps escapes lone surrogates (\ud800), which httpx's encoder cannot send.
        r = await api.post("/v1/users", content=json.dumps(body), headers={"content-type": "application/json"})
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["param"] == param, (body, r.text)
    user = await _create(api, email="a@example.com")
    for body, param in [({"email": None}, "email"), ({"metadata": None}, "metadata")]:
        r = await api.patch(f"/v1/users/{user['id']}", json=body)
        assert r.status_code == 422 and r.json()["error"]["param"] == param, r.text


async def test_unknown_malformed_or_foreign_user_ids_are_404s(
    api: httpx.AsyncClient, other_tenant: Any, client: httpx.AsyncClient
) -> None:
    r = await client.post("/v1/users", json={"email": "x@example.com"}, headers=other_tenant.headers)
    foreign = r.json()["id"]
    for user_id in (str(uuid.uuid4()), "not-a-uuid", foreign):
        assert (await api.get(f"/v1/users/{user_id}")).status_code == 404
        assert (await api.patch(f"/v1/users/{user_id}", json={"first_name": "x"})).status_code == 404
        assert (await api.delete(f"/v1/users/{user_id}")).status_code == 404


async def test_deleting_a_user_unassigns_them_and_keeps_their_messages(
    api: httpx.AsyncClient, tenant: Any, sessionmaker: Any
) -> None:
    user = await _create(api, email="op@example.com")
    async with sessionmaker() as session, session.begin():
        ws = tenant.workspace_id
        user_row = (await session.execute(select(User).where(User.public_id == uuid.UUID(user["id"])))).scalar_one()
        agent = Agent(workspace_id=ws, name="a")
        end_user = EndUser(workspace_id=ws)
        session.add_all([agent, end_user])
        await session.flush()
        thread = Thread(
            workspace_id=ws,
            number=await take(session, workspace_id=ws, of=Thread),
            agent_id=agent.id,
            end_user_id=end_user.id,
            last_seq=1,
            message_count=1,
        )
        session.add(thread)
        await session.flush()
        await session.execute(insert(thread_assignees).values(thread_id=thread.id, user_id=user_row.id))
        message = Message(
            workspace_id=ws,
            thread_id=thread.id,
            seq=1,
            number=await take(session, workspace_id=ws, of=Message),
            role=Role.ASSISTANT,
            direction=Direction.OUTBOUND,
            sent_by=SentBy.OPERATOR,
            sent_by_user_id=user_row.id,
            status=MessageStatus.SENT,
            content="hi",
        )
        session.add(message)
        await session.flush()
        thread_id, message_id = thread.id, message.id

    assert (await api.delete(f"/v1/users/{user['id']}")).status_code == 204

    async with sessionmaker() as session:
        assigned = await session.scalar(
            select(func.count()).select_from(thread_assignees).where(thread_assignees.c.thread_id == thread_id)
        )
        assert assigned == 0
        kept = (await session.execute(select(Message).where(Message.id == message_id))).scalar_one()
        assert kept.sent_by_user_id is None
