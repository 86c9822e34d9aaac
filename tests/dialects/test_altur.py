"""Altur's GET /message/{thread_id} and POST /message, served under /altur/api/v1.0 (seeds 000 and 002)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Tenant, add_key
from tests.dialects.conftest import ByMessage
from tests.dialects.seed import seed_everything
from tests.factories import create_agent, create_end_user, create_thread, post_message
from tests.integrations.helpers import sms_body
from tests.runs.conftest import until, worker  # noqa: F401 - fixture: a worker in this process
from tests.runs.scripted import Step
from threadline.models.enums import Scope

BASE = "/altur/api/v1.0"
GET_URL = BASE + "/message/{}"
POST_URL = BASE + "/message"
SENT_BY = {"user": "EU", "assistant": "AI", "system": "SYS"}
MESSAGE_KEYS = ["thread_id", "type", "content", "media", "sent_by", "sent_by_user", "sent_at", "read"]


def altur(key: str) -> dict[str, str]:
    return {"Authorization": f"api-key {key}"}


def as_altur(m: dict[str, Any]) -> dict[str, Any]:
    """A /v1 message as Altur's document shows it."""
    out: dict[str, Any] = {"thread_id": m["thread_id"], "type": m["type"], "content": m["content"]}
    if m["media_url"] is not None:
        out["media"] = m["media_url"]
    out["sent_by"] = SENT_BY[m["role"]]
    if m["sent_by_user_id"] is not None:
        out["sent_by_user"] = m["sent_by_user_id"]
    out["sent_at"] = m["sent_at"] or m["created_at"]
    out["read"] = m["read"]
    return out


def in_document_order(message: dict[str, Any]) -> bool:
    keys = list(message)
    return keys == [k for k in MESSAGE_KEYS if k in message]


async def v1_messages(api: httpx.AsyncClient, thread_id: str) -> list[dict[str, Any]]:
    r = await api.get(f"/v1/threads/{thread_id}/messages", params={"limit": 100})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


async def prompt_agent(api: httpx.AsyncClient, name: str = "Support") -> dict[str, Any]:
    return await create_agent(
        api, name=name, version={"mode": "PROMPT", "provider": "openai", "model": "test-model", "system_prompt": "Hi."}
    )


async def threads_of(api: httpx.AsyncClient, end_user_id: str) -> list[dict[str, Any]]:
    r = await api.get("/v1/threads", params={"end_user_id": end_user_id, "limit": 100})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


# GET /message/{thread_id}


async def test_get_answers_the_whole_thread_oldest_first_with_every_field_pinned(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    seeded = await seed_everything(api, sessionmaker)
    r = await anon.get(GET_URL.format(seeded.thread_id), headers=altur(tenant.key))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    shown = [m for m in seeded.messages if m["role"] in SENT_BY]
    assert body == [as_altur(m) for m in shown]
    assert len(shown) == len(seeded.messages) - 2  # the tool result and the hidden note are not Altur's to see
    contents = {m["content"] for m in body}
    assert "internal note" not in contents and '{"status": "shipped"}' not in contents
    assert all(in_document_order(m) for m in body)
    # Pinned by hand: the end user's first message, the operator's, the system note, a read reply, media.
    native = {m["content"]: m for m in seeded.messages}
    first = native["Where is my **order** A-17?"]
    assert body[0] == {
        "thread_id": seeded.thread_id,
        "type": "text",
        "content": "Where is my **order** A-17?",
        "sent_by": "EU",
        "sent_at": first["created_at"],  # received: the end user sent it when it reached us
        "read": False,
    }
    by_content = {m["content"]: m for m in body}
    assert by_content["Hello from a human."] == {
        "thread_id": seeded.thread_id,
        "type": "text",
        "content": "Hello from a human.",
        "sent_by": "AI",
        "sent_by_user": seeded.user["id"],
        "sent_at": native["Hello from a human."]["sent_at"],
        "read": False,
    }
    assert by_content["Conversation handed to a human."]["sent_by"] == "SYS"
    assert [m for m in body if "sent_by_user" in m] == [by_content["Hello from a human."]]
    read = [m for m in body if m["read"]]
    assert read and all(native[m["content"]]["read_at"] is not None for m in read)
    media = [m for m in body if "media" in m]
    assert {m["type"] for m in media} == {"image", "audio", "video", "document"} and len(media) == 8
    assert by_content["a video"]["media"] == "https://cdn.example.com/c.mp4"
    # An agent's media reply without text: content is still a string.
    bare = [m for m in media if m["sent_by"] == "AI"]
    assert bare and all(m["content"] == "" for m in bare)
    # A message with no sent_at of its own (every inbound one) is dated when it reached us.
    undated = [m for m in shown if m["sent_at"] is None]
    assert undated and {m["direction"] for m in undated} == {"INBOUND"}
    assert all(by_content[m["content"]]["sent_at"] == m["created_at"] for m in undated)


async def test_an_empty_thread_is_an_empty_array(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant
) -> None:
    thread = await create_thread(api)
    r = await anon.get(GET_URL.format(thread["id"]), headers=altur(tenant.key))
    assert r.status_code == 200 and r.json() == []


async def test_a_long_thread_streams_in_chunks_and_stays_whole(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant
) -> None:
    from threadline.messages.repository import MessageRepository

    thread = await create_thread(api)
    for i in range(7):
        await post_message(api, thread["id"], f"m{i}")
    await post_message(api, thread["id"], "a hidden note", role="hidden")
    original = MessageRepository.chunks

    def small_chunks(self: Any, thread_id: int, *, roles: Any = None, size: int = 1000) -> Any:
        return original(self, thread_id, roles=roles, size=2)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MessageRepository, "chunks", small_chunks)
        r = await anon.get(GET_URL.format(thread["id"]), headers=altur(tenant.key))
    assert r.status_code == 200
    assert "content-length" not in r.headers  # streamed, not built whole
    body = r.json()
    assert [m["content"] for m in body] == [f"m{i}" for i in range(7)]
    assert body == [as_altur(m) for m in (await v1_messages(api, thread["id"]))[:7]]


async def test_get_ids_that_name_no_thread_here_are_one_and_the_same_404(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await create_thread(api)
    await post_message(api, theirs["id"], "secret")
    answers = [
        await anon.get(GET_URL.format(theirs["id"]), headers=altur(other_tenant.key)),
        await anon.get(GET_URL.format(uuid.uuid4()), headers=altur(other_tenant.key)),
        await anon.get(GET_URL.format("not-a-uuid"), headers=altur(other_tenant.key)),
        await anon.get(GET_URL.format(theirs["number"]), headers=altur(tenant.key)),  # the integer id is not Altur's
    ]
    for r in answers:
        assert r.status_code == 404
        assert r.json() == {"error": 404, "message": "Thread not found"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "api-key tl_not_a_key"},
        {"Authorization": "api-key"},
        {"Authorization": "Token whatever"},
    ],
    ids=["no-key", "unknown-key", "empty-key", "other-scheme"],
)
async def test_get_without_a_valid_api_key_is_its_401(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    thread = await create_thread(api)
    r = await anon.get(GET_URL.format(thread["id"]), headers=headers)
    assert r.status_code == 401
    body = r.json()
    assert list(body) == ["error", "message"] and body["error"] == 401 and isinstance(body["message"], str)


async def test_get_takes_the_key_only_the_way_the_document_says(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant
) -> None:
    thread = await create_thread(api)
    for headers in ({"Authorization": f"Bearer {tenant.key}"}, {"X-API-Key": tenant.key}):
        r = await anon.get(GET_URL.format(thread["id"]), headers=headers)
        assert r.status_code == 401 and "api-key" in r.json()["message"]
    r = await anon.get(GET_URL.format(thread["id"]), headers={"Authorization": f"API-Key {tenant.key}"})
    assert r.status_code == 200  # the scheme's case does not matter


async def test_get_needs_the_read_scope_and_a_read_only_key_has_it(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    thread = await create_thread(api)
    reader = await add_key(sessionmaker, tenant, (Scope.READ,))
    assert (await anon.get(GET_URL.format(thread["id"]), headers=altur(reader))).status_code == 200
    nothing = await add_key(sessionmaker, tenant, ())
    r = await anon.get(GET_URL.format(thread["id"]), headers=altur(nothing))
    assert r.status_code == 401 and "scope" in r.json()["message"]


# POST /message


async def test_post_opens_a_thread_then_continues_it_with_the_agents_replies(
    api: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    tenant: Tenant,
    provider: ByMessage,
    worker: Any,  # noqa: F811
) -> None:
    provider.answers = {
        "Where is my order?": Step(text="Hello Ada, how can I help?"),
        "Thanks!": Step(text="You are welcome."),
    }
    agent = await prompt_agent(api)
    end_user = await create_end_user(api, display_name="Ada", info="VIP")
    send = {"agent_id": agent["id"], "end_user_id": end_user["id"]}

    r = await anon.post(POST_URL, json={**send, "content": "Where is my order?"}, headers=altur(tenant.key))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    first = r.json()
    (opened,) = await threads_of(api, end_user["id"])
    tid = opened["id"]
    integrations = (await api.get("/v1/integrations")).json()["data"]
    assert [(i["type"], i["name"], i["enabled"]) for i in integrations] == [("api", "API", True)]
    api_integration = {"id": integrations[0]["id"], "type": "api"}
    assert opened["agent_version_id"] == agent["current_version"]["id"]
    assert opened["integration_id"] == api_integration["id"]
    native = await v1_messages(api, tid)
    assert [(m["role"], m["content"], m["source"]) for m in native] == [
        ("user", "Where is my order?", "api"),
        ("assistant", "Hello Ada, how can I help?", "api"),
    ]
    assert first == {
        "thread": {
            "id": tid,
            "agent": {"id": agent["id"], "name": "Support"},
            "end_user": {
                "id": end_user["id"],
                "display_name": "Ada",
                "integration_type": "api",
                "info": "VIP",
                "integration": api_integration,
            },
            "integration": api_integration,
            "updated_at": (await api.get(f"/v1/threads/{tid}")).json()["updated_at"],
            "active": True,
            "blocked": False,
            "tags": [],
            "assigned_to": [],
        },
        "messages": [
            {
                "thread_id": tid,
                "type": "text",
                "content": "Hello Ada, how can I help?",
                "sent_by": "AI",
                "sent_at": native[1]["sent_at"],
                "read": False,
            }
        ],
        "in_response_to": {
            "thread_id": tid,
            "type": "text",
            "content": "Where is my order?",
            "sent_by": "EU",
            "sent_at": native[0]["created_at"],
            "read": False,
        },
    }
    assert list(first) == ["thread", "messages", "in_response_to"]
    assert list(first["thread"]) == [
        "id", "agent", "end_user", "integration", "updated_at", "active", "blocked", "tags", "assigned_to"
    ]  # fmt: skip
    assert list(first["thread"]["end_user"]) == ["id", "display_name", "integration_type", "info", "integration"]

    # An operator tags and takes the thread through /v1; the next message continues the same thread.
    tag = (await api.post("/v1/tags", json={"name": "orders", "color": "green"})).json()
    user = (await api.post("/v1/users", json={"email": "grace@example.com", "first_name": "Grace"})).json()
    r = await api.patch(f"/v1/threads/{tid}", json={"tags": [tag["id"]], "assigned_to": [user["id"]]})
    assert r.status_code == 200, r.text
    r = await anon.post(POST_URL, json={**send, "content": "Thanks!"}, headers=altur(tenant.key))
    assert r.status_code == 200, r.text
    second = r.json()
    assert [t["id"] for t in await threads_of(api, end_user["id"])] == [tid]
    assert second["thread"]["id"] == tid
    assert second["thread"]["tags"] == [{"id": tag["id"], "name": "orders", "color": "green"}]
    assert second["thread"]["assigned_to"] == [{"id": user["id"], "email": "grace@example.com", "first_name": "Grace"}]
    assert [m["content"] for m in second["messages"]] == ["You are welcome."]
    assert second["in_response_to"]["content"] == "Thanks!"
    assert len((await api.get("/v1/integrations")).json()["data"]) == 1

    # The same four messages through GET, and through /v1.
    r = await anon.get(GET_URL.format(tid), headers=altur(tenant.key))
    assert r.json() == [first["in_response_to"], *first["messages"], second["in_response_to"], *second["messages"]]
    assert r.json() == [as_altur(m) for m in await v1_messages(api, tid)]
    # The model saw the conversation so far.
    (seen,) = provider.asked("Thanks!")
    assert [(m.role, m.content) for m in seen.messages[1:]] == [
        ("user", "Where is my order?"),
        ("assistant", "Hello Ada, how can I help?"),
        ("user", "Thanks!"),
    ]


@pytest.mark.parametrize("change", [{"active": False}, {"blocked": True}], ids=["handed-off", "blocked"])
async def test_post_to_an_inactive_or_blocked_thread_stores_the_message_and_starts_no_run(
    api: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    tenant: Tenant,
    provider: ByMessage,
    worker: Any,  # noqa: F811
    change: dict[str, bool],
) -> None:
    agent = await prompt_agent(api)
    end_user = await create_end_user(api)
    thread = await create_thread(api, agent_id=agent["id"], end_user_id=end_user["id"])
    assert (await api.patch(f"/v1/threads/{thread['id']}", json=change)).status_code == 200
    r = await anon.post(
        POST_URL,
        json={"agent_id": agent["id"], "end_user_id": end_user["id"], "content": "anyone there?"},
        headers=altur(tenant.key),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["thread"]["id"] == thread["id"] and body["messages"] == []
    assert (body["thread"]["active"], body["thread"]["blocked"]) == (
        change.get("active", True),
        change.get("blocked", False),
    )
    assert "integration" not in body["thread"] and body["thread"]["end_user"]["integration"] is None  # opened bare
    (stored,) = await v1_messages(api, thread["id"])
    assert body["in_response_to"] == as_altur(stored) and stored["content"] == "anyone there?"
    assert (await api.get(f"/v1/threads/{thread['id']}/runs")).json()["data"] == []
    assert provider.asked("anyone there?") == []


async def test_replies_that_do_not_come_within_the_wait_bound_are_not_in_the_response(
    app: Any,
    api: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    tenant: Tenant,
    provider: ByMessage,
    worker: Any,  # noqa: F811
    tune: Any,
) -> None:
    gate = asyncio.Event()
    provider.answers = {"hello?": Step(text="Sorry for the wait.", gate=gate)}
    tune(message_wait_max_s=0.2)
    agent = await prompt_agent(api)
    end_user = await create_end_user(api)
    r = await anon.post(
        POST_URL,
        json={"agent_id": agent["id"], "end_user_id": end_user["id"], "content": "hello?"},
        headers=altur(tenant.key),
    )
    assert r.status_code == 200, r.text
    assert r.json()["messages"] == []  # the model has not answered: its call waits for the gate
    gate.set()
    tid = r.json()["thread"]["id"]

    async def answered() -> bool:
        return len(await v1_messages(api, tid)) == 2

    await until(answered)
    r = await anon.get(GET_URL.format(tid), headers=altur(tenant.key))
    assert [(m["sent_by"], m["content"]) for m in r.json()] == [("EU", "hello?"), ("AI", "Sorry for the wait.")]


async def test_post_uses_the_oldest_enabled_api_integration_and_words_of_each_channel(
    api: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    tenant: Tenant,
    provider: ByMessage,
    worker: Any,  # noqa: F811
) -> None:
    disabled = (await api.post("/v1/integrations", json={"type": "api", "name": "old", "enabled": False})).json()
    chosen = (await api.post("/v1/integrations", json={"type": "api", "name": "mine"})).json()
    await api.post("/v1/integrations", json={"type": "api", "name": "newer"})
    agent = await prompt_agent(api)
    whatsapp = await create_end_user(api, display_name="W", channel="whatsapp", address="+14155550123")
    sms = await create_end_user(api, display_name="S", channel="sms", address="+14155550124")
    r = await anon.post(
        POST_URL,
        json={"agent_id": agent["id"], "end_user_id": whatsapp["id"], "content": "hi"},
        headers=altur(tenant.key),
    )
    assert r.status_code == 200, r.text
    thread = r.json()["thread"]
    assert thread["integration"] == {"id": chosen["id"], "type": "api"} != {"id": disabled["id"], "type": "api"}
    assert thread["end_user"] == {
        "id": whatsapp["id"],
        "display_name": "W",
        "integration_type": "whatsapp",
        "integration": {"id": chosen["id"], "type": "api"},
    }
    # Altur has no SMS: an SMS end user's thread on an SMS integration shows neither word.
    sms_line = (await api.post("/v1/integrations", json=sms_body(name="line"))).json()
    await create_thread(api, agent_id=agent["id"], end_user_id=sms["id"], integration_id=sms_line["id"])
    r = await anon.post(
        POST_URL, json={"agent_id": agent["id"], "end_user_id": sms["id"], "content": "hi"}, headers=altur(tenant.key)
    )
    assert r.status_code == 200, r.text
    thread = r.json()["thread"]
    assert "integration" not in thread
    assert thread["end_user"] == {"id": sms["id"], "display_name": "S", "integration": None}


async def test_concurrent_first_messages_of_a_pair_open_one_thread(
    api: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    tenant: Tenant,
    provider: ByMessage,
    worker: Any,  # noqa: F811
) -> None:
    agent = await prompt_agent(api)
    end_users = [await create_end_user(api, display_name=f"U{i}") for i in range(2)]

    async def send(end_user: dict[str, Any], content: str) -> httpx.Response:
        body = {"agent_id": agent["id"], "end_user_id": end_user["id"], "content": content}
        return await anon.post(POST_URL, json=body, headers=altur(tenant.key))

    answers = await asyncio.gather(
        send(end_users[0], "one"), send(end_users[0], "two"), send(end_users[1], "three"), send(end_users[1], "four")
    )
    assert [r.status_code for r in answers] == [200] * 4, [r.text for r in answers]
    for end_user, pair in zip(end_users, (answers[:2], answers[2:]), strict=True):
        (thread,) = await threads_of(api, end_user["id"])
        assert {r.json()["thread"]["id"] for r in pair} == {thread["id"]}
        stored = [m["content"] for m in await v1_messages(api, thread["id"]) if m["role"] == "user"]
        assert sorted(stored) == sorted(r.json()["in_response_to"]["content"] for r in pair)
    # Both new threads came in through one default integration, created once.
    assert [i["name"] for i in (await api.get("/v1/integrations")).json()["data"]] == ["API"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"end_user_id": "E", "content": "hi"}, "agent_id"),
        ({"agent_id": "A", "content": "hi"}, "end_user_id"),
        ({"agent_id": "A", "end_user_id": "E"}, "content"),
        ({"agent_id": "A", "end_user_id": "E", "content": ""}, "content"),
        ({"agent_id": "A", "end_user_id": "E", "content": 5}, "content"),
        ({"agent_id": "A", "end_user_id": "E", "content": None}, "content"),
        ({"agent_id": "A", "end_user_id": "E", "content": "a\u0000b"}, "content"),
        ({"agent_id": "A", "end_user_id": "E", "content": "x" * 70_000}, "content"),
        ({"agent_id": "not-a-uuid", "end_user_id": "E", "content": "hi"}, "agent_id"),
        ({"agent_id": "A", "end_user_id": "12", "content": "hi"}, "end_user_id"),
        ({"agent_id": ["A"], "end_user_id": "E", "content": "hi"}, "agent_id"),
        ([], "body"),
        ("hello", "body"),
        (None, "body"),
    ],
)
async def test_post_bad_bodies_are_its_400_naming_the_field(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, body: Any, field: str
) -> None:
    agent = await prompt_agent(api)
    end_user = await create_end_user(api)

    def fill(value: Any) -> Any:
        return {"A": agent["id"], "E": end_user["id"]}.get(value, value) if isinstance(value, str) else value

    payload = {k: fill(v) for k, v in body.items()} if isinstance(body, dict) else body
    r = await anon.post(POST_URL, json=payload, headers=altur(tenant.key))
    assert r.status_code == 400, r.text
    answer = r.json()
    assert list(answer) == ["error", "message"] and answer["error"] == 400
    assert answer["message"].startswith(f"{field}:"), answer
    assert await threads_of(api, end_user["id"]) == []


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"", "application/json"),
        (b"agent_id=1", "application/x-www-form-urlencoded"),
    ],
    ids=["malformed", "empty", "form"],
)
async def test_post_bodies_that_are_not_json_are_its_400(
    anon: httpx.AsyncClient, tenant: Tenant, raw: bytes, content_type: str
) -> None:
    r = await anon.post(POST_URL, content=raw, headers={**altur(tenant.key), "Content-Type": content_type})
    assert r.status_code == 400
    assert r.json()["error"] == 400 and r.json()["message"].startswith("body:")


async def test_post_naming_no_agent_or_end_user_here_is_its_404(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    agent = await prompt_agent(api)
    end_user = await create_end_user(api)
    nowhere = str(uuid.uuid4())
    attempts = [
        (nowhere, end_user["id"], tenant),
        (agent["id"], nowhere, tenant),
        (nowhere, nowhere, tenant),
        (agent["id"], end_user["id"], other_tenant),  # both exist, in another workspace
    ]
    for agent_id, end_user_id, who in attempts:
        body = {"agent_id": agent_id, "end_user_id": end_user_id, "content": "hi"}
        r = await anon.post(POST_URL, json=body, headers=altur(who.key))
        assert r.status_code == 404
        assert r.json() == {"error": 404, "message": "Agent or EndUser not found"}
    assert await threads_of(api, end_user["id"]) == []


@pytest.mark.parametrize("how", ["no-key", "bearer", "x-api-key", "unknown-key", "read-only", "no-scopes"])
async def test_post_without_a_write_key_sent_as_api_key_is_its_401(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any, how: str
) -> None:
    agent = await prompt_agent(api)
    end_user = await create_end_user(api)
    headers = {
        "no-key": {},
        "bearer": {"Authorization": f"Bearer {tenant.key}"},
        "x-api-key": {"X-API-Key": tenant.key},
        "unknown-key": altur("tl_not_a_key"),
        "read-only": altur(await add_key(sessionmaker, tenant, (Scope.READ,))),
        "no-scopes": altur(await add_key(sessionmaker, tenant, ())),
    }[how]
    body = {"agent_id": agent["id"], "end_user_id": end_user["id"], "content": "hi"}
    r = await anon.post(POST_URL, json=body, headers=headers)
    assert r.status_code == 401
    answer = r.json()
    assert list(answer) == ["error", "message"] and answer["error"] == 401
    if how in ("read-only", "no-scopes"):
        assert "'write' scope" in answer["message"]
    assert await threads_of(api, end_user["id"]) == []


async def test_other_client_errors_under_the_mount_are_in_its_envelope(anon: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await anon.delete(GET_URL.format(uuid.uuid4()), headers=altur(tenant.key))
    assert r.status_code == 400 and r.json()["error"] == 400  # 405: the document's "unexpected error"
    r = await anon.get(BASE + "/threads", headers=altur(tenant.key))
    assert r.status_code == 404 and r.json()["error"] == 404 and set(r.json()) == {"error", "message"}


def test_server_errors_keep_500_and_say_nothing_of_their_cause() -> None:
    from threadline.dialects.altur.endpoints import render_error
    from threadline.web.surfaces import ErrorInfo

    for status in (500, 503):
        response = render_error(ErrorInfo(status, "api_error", "boom", "database password is hunter2"))
        assert response.status_code == 500
        assert response.body == b'{"error":500,"message":"internal server error"}'
    for status in (409, 413, 415, 422, 429):
        assert render_error(ErrorInfo(status, "t", "c", "why")).status_code == 400
    assert render_error(ErrorInfo(403, "permission_error", "c", "no scope")).status_code == 401
