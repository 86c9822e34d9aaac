"""Feather's GET /api/v1/threads/{threadId}/messages, served under /feather (seed 004)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import update

from tests.conftest import Tenant, add_key
from tests.dialects.seed import seed_everything
from tests.factories import create_agent, create_end_user, create_thread, post_message
from threadline.kit.clock import utcnow
from threadline.kit.ids import parse_uuid
from threadline.models import Message
from threadline.models.enums import Scope
from threadline.threads.repository import ThreadRepository

URL = "/feather/api/v1/threads/{}/messages"
SHOWN_ROLES = ("user", "assistant")
ERROR_KEYS = ["status", "message", "code", "success"]
MESSAGE_KEYS = [
    "id",
    "threadId",
    "direction",
    "messageBody",
    "status",
    "twilioMessageSid",
    "twilioAccountSid",
    "twilioNumSegments",
    "twilioPrice",
    "twilioPriceCurrency",
    "twilioErrorCode",
    "twilioErrorMessage",
    "createdAt",
    "updatedAt",
    "sentAt",
    "deliveredAt",
    "readAt",
]
NOT_FOUND = {"status": 404, "message": "Thread not found", "code": "BAD_REQUEST", "success": False}
VERSION = {"mode": "PROMPT", "model": "gpt-4o-mini"}


def key(tenant: Tenant) -> dict[str, str]:
    return {"X-API-Key": tenant.key}


def as_feather(m: dict[str, Any]) -> dict[str, Any]:
    """A /v1 message as Feather shows it."""
    return {
        "id": m["id"],
        "threadId": m["thread_id"],
        "direction": {"user": "INBOUND", "assistant": "OUTBOUND"}[m["role"]],
        "messageBody": m["content"],
        "status": m["status"],
        "twilioMessageSid": m["external_id"],
        "twilioAccountSid": m["provider_account_id"],
        "twilioNumSegments": m["segments"],
        "twilioPrice": m["price"],
        "twilioPriceCurrency": m["price_currency"],
        "twilioErrorCode": m["error_code"],
        "twilioErrorMessage": m["error_message"],
        "createdAt": m["created_at"],
        "updatedAt": m["updated_at"],
        "sentAt": m["sent_at"],
        "deliveredAt": m["delivered_at"],
        "readAt": m["read_at"],
    }


def assert_bad_request(r: httpx.Response, *words: str) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert list(body) == ERROR_KEYS
    assert body["status"] == 400 and body["code"] == "BAD_REQUEST" and body["success"] is False
    assert isinstance(body["message"], str) and body["message"]
    for word in words:
        assert word in body["message"], body["message"]


async def versioned_thread(api: httpx.AsyncClient, **version: Any) -> dict[str, Any]:
    agent = await create_agent(api, version={**VERSION, **version})
    return await create_thread(api, agent_id=agent["id"])


async def walk(anon: httpx.AsyncClient, tenant: Tenant, thread_id: str, **params: Any) -> list[dict[str, Any]]:
    """Every page from the first until nextCursor is absent; each page checked against the contract."""
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        r = await anon.get(URL.format(thread_id), params=query, headers=key(tenant))
        assert r.status_code == 200, r.text
        thread = r.json()["thread"]
        page, pagination = thread["messages"], thread["pagination"]
        assert pagination["limit"] == int(params.get("limit", 50))
        assert len(page) <= pagination["limit"]
        seen.extend(page)
        if "nextCursor" not in pagination:
            assert list(pagination) == ["limit"]
            return seen
        assert len(page) == pagination["limit"] and pagination["nextCursor"] == page[-1]["id"]
        cursor = pagination["nextCursor"]
    raise AssertionError("the pages never ended")


async def test_first_page_with_every_field_pinned(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    seeded = await seed_everything(api, sessionmaker)
    r = await anon.get(URL.format(seeded.thread_id), headers=key(tenant))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    shown = [m for m in seeded.messages if m["role"] in SHOWN_ROLES]
    assert len(shown) == 16 and len(seeded.messages) == 19  # the system, tool and hidden notes stay out
    version = seeded.agent["current_version"]
    assert seeded.thread["agent_version_id"] == version["id"]
    assert body == {
        "thread": {
            "agentId": seeded.agent["id"],
            "agentDetails": {
                "id": seeded.agent["id"],
                "name": "Support",
                "description": "Answers order questions",
                "agentType": "TEXT",
            },
            "agentVersionId": version["id"],
            "agentVersionDetails": {
                "id": version["id"],
                "version": 1,
                "name": "v1",
                "mode": "PROMPT",
                "smsMaxTokens": 160,
                "smsTemperature": 0.4,
                "discardInboundSms": False,
            },
            "messages": [as_feather(m) for m in shown],
            "pagination": {"limit": 50},
        }
    }
    # Key order as the document lists it, for clients that compare text.
    thread = body["thread"]
    assert list(body) == ["thread"]
    envelope = ["agentId", "agentDetails", "agentVersionId", "agentVersionDetails", "messages", "pagination"]
    assert list(thread) == envelope
    assert list(thread["agentDetails"]) == ["id", "name", "description", "agentType"]
    assert list(thread["agentVersionDetails"]) == [
        "id",
        "version",
        "name",
        "mode",
        "smsMaxTokens",
        "smsTemperature",
        "discardInboundSms",
    ]
    assert all(list(m) == MESSAGE_KEYS for m in thread["messages"])
    by_body = {m["messageBody"]: m for m in thread["messages"]}
    first = thread["messages"][0]
    assert first == {
        "id": shown[0]["id"],
        "threadId": seeded.thread_id,
        "direction": "INBOUND",
        "messageBody": "Where is my **order** A-17?",
        "status": "RECEIVED",
        "twilioMessageSid": None,
        "twilioAccountSid": None,
        "twilioNumSegments": None,
        "twilioPrice": None,
        "twilioPriceCurrency": None,
        "twilioErrorCode": None,
        "twilioErrorMessage": None,
        "createdAt": shown[0]["created_at"],
        "updatedAt": shown[0]["updated_at"],
        "sentAt": None,
        "deliveredAt": None,
        "readAt": None,
    }
    # The sixth outbound message failed at the provider (seed.py's lifecycle): its error fields, as strings.
    failed = by_body["No tools were needed."]
    assert {k: v for k, v in failed.items() if k not in ("id", "threadId", "createdAt", "updatedAt")} == {
        "direction": "OUTBOUND",
        "messageBody": "No tools were needed.",
        "status": "FAILED",
        "twilioMessageSid": "SM" + f"{5:032x}",
        "twilioAccountSid": "AC" + "0" * 32,
        "twilioNumSegments": 3,
        "twilioPrice": "-0.009",
        "twilioPriceCurrency": "USD",
        "twilioErrorCode": "30007",
        "twilioErrorMessage": "Message filtered",
        "sentAt": "2026-01-05T09:30:05Z",
        "deliveredAt": None,
        "readAt": None,
    }
    # The last outbound message was read: sent, delivered and read times, RFC 3339 in UTC.
    read = thread["messages"][-1]
    assert read["status"] == "READ" and read["direction"] == "OUTBOUND" and read["messageBody"] == ""
    assert (read["sentAt"], read["deliveredAt"], read["readAt"]) == (
        "2026-01-05T09:30:11Z",
        "2026-01-05T09:30:13Z",
        "2026-01-05T09:30:20Z",
    )
    assert read["twilioErrorCode"] is None and read["twilioNumSegments"] == 3
    assert by_body["a document"]["status"] == "DISCARDED" and by_body["a document"]["direction"] == "INBOUND"
    assert {m["status"] for m in thread["messages"]} == {
        "RECEIVED",
        "DISCARDED",
        "QUEUED",
        "SENDING",
        "SENT",
        "DELIVERED",
        "READ",
        "FAILED",
        "UNDELIVERED",
    }
    internal = {"Conversation handed to a human.", '{"status": "shipped"}', "internal note"}
    assert not internal & set(by_body)


async def test_paging_with_every_limit_walks_the_whole_thread_in_order(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    seeded = await seed_everything(api, sessionmaker)
    expected = [m["id"] for m in seeded.messages if m["role"] in SHOWN_ROLES]
    for limit in range(2, len(expected) + 2):
        seen = await walk(anon, tenant, seeded.thread_id, limit=str(limit))
        assert [m["id"] for m in seen] == expected, limit


async def test_direction_and_status_filters_combine_with_the_cursor(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    seeded = await seed_everything(api, sessionmaker)
    shown = [m for m in seeded.messages if m["role"] in SHOWN_ROLES]
    for direction, role in (("INBOUND", "user"), ("OUTBOUND", "assistant")):
        want = [m["id"] for m in shown if m["role"] == role]
        assert [m["id"] for m in await walk(anon, tenant, seeded.thread_id, direction=direction)] == want
        assert [m["id"] for m in await walk(anon, tenant, seeded.thread_id, direction=direction, limit="3")] == want
    for status in ("RECEIVED", "QUEUED", "SENDING", "SENT", "DELIVERED", "READ", "FAILED", "UNDELIVERED", "DISCARDED"):
        want = [m["id"] for m in shown if m["status"] == status]
        got = await walk(anon, tenant, seeded.thread_id, status=status, limit="1")
        assert [m["id"] for m in got] == want and all(m["status"] == status for m in got), status
    # The hidden note is READ and the tool result DELIVERED: a status filter never brings them out.
    statuses = {m["status"] for m in seeded.messages if m["role"] == "hidden"}
    assert statuses == {"READ"}
    both = await walk(anon, tenant, seeded.thread_id, direction="OUTBOUND", status="QUEUED", limit="1")
    assert [m["id"] for m in both] == [
        m["id"] for m in shown if m["role"] == "assistant" and m["status"] == "QUEUED"
    ] and len(both) == 2
    # A cursor that does not match the filter still places the page: outbound messages after an inbound one.
    inbound = [m for m in shown if m["role"] == "user"]
    r = await anon.get(
        URL.format(seeded.thread_id),
        params={"cursor": inbound[1]["id"], "direction": "OUTBOUND", "limit": "2"},
        headers=key(tenant),
    )
    after = [m["id"] for m in shown if m["role"] == "assistant" and shown.index(m) > shown.index(inbound[1])]
    assert [m["id"] for m in r.json()["thread"]["messages"]] == after[:2]
    assert r.json()["thread"]["pagination"] == {"limit": 2, "nextCursor": after[1]}


async def test_the_cursor_of_the_last_page_is_an_empty_page_and_bad_cursors_are_400(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    seeded = await seed_everything(api, sessionmaker)
    last = [m for m in seeded.messages if m["role"] in SHOWN_ROLES][-1]
    r = await anon.get(URL.format(seeded.thread_id), params={"cursor": last["id"]}, headers=key(tenant))
    assert r.status_code == 200
    assert r.json()["thread"]["messages"] == [] and r.json()["thread"]["pagination"] == {"limit": 50}
    # An empty cursor is no cursor (the first page), as a client that sends `cursor=` on its first call expects.
    r = await anon.get(URL.format(seeded.thread_id), params={"cursor": ""}, headers=key(tenant))
    assert r.status_code == 200 and len(r.json()["thread"]["messages"]) == 16
    r = await anon.get(URL.format(seeded.other_threads[0]["id"]), headers=key(tenant))
    elsewhere = r.json()["thread"]["messages"][0]["id"]
    for cursor in ("not-a-message", "018f2b8e-0000-7000-8000-000000000000", elsewhere):
        for params in ({}, {"direction": "INBOUND"}, {"status": "FAILED", "limit": "5"}):
            r = await anon.get(URL.format(seeded.thread_id), params={"cursor": cursor, **params}, headers=key(tenant))
            assert_bad_request(r, "cursor", cursor)


async def test_limits_default_to_50_and_stay_within_1_to_100(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant
) -> None:
    thread = await versioned_thread(api)
    for i in range(101):
        await post_message(api, thread["id"], f"m{i}", role="assistant")
    url = URL.format(thread["id"])
    for params, size in (({}, 50), ({"limit": "1"}, 1), ({"limit": "100"}, 100), ({"limit": "007"}, 7)):
        r = await anon.get(url, params=params, headers=key(tenant))
        assert r.status_code == 200, r.text
        body = r.json()["thread"]
        assert [m["messageBody"] for m in body["messages"]] == [f"m{i}" for i in range(size)]
        assert body["pagination"] == {"limit": size, "nextCursor": body["messages"][-1]["id"]}
    seen = await walk(anon, tenant, thread["id"], limit="100")
    assert [m["messageBody"] for m in seen] == [f"m{i}" for i in range(101)]
    for raw in ("0", "101", "abc", "-1", "1.5", " 5", "+5", "", "1e2", "\u0665", "9" * 30):
        r = await anon.get(url, params={"limit": raw}, headers=key(tenant))
        assert_bad_request(r, "limit")


@pytest.mark.parametrize(
    "params",
    [{"direction": "inbound"}, {"direction": "BOTH"}, {"status": "delivered"}, {"status": "OPEN"}, {"status": ""}],
)
async def test_filters_outside_their_enums_are_400(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, params: dict[str, str]
) -> None:
    thread = await versioned_thread(api)
    r = await anon.get(URL.format(thread["id"]), params=params, headers=key(tenant))
    assert_bad_request(r, *params)


async def test_an_empty_thread_is_an_empty_page(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant
) -> None:
    thread = await versioned_thread(api)
    r = await anon.get(URL.format(thread["id"]), headers=key(tenant))
    assert r.status_code == 200
    assert r.json()["thread"]["messages"] == [] and r.json()["thread"]["pagination"] == {"limit": 50}


async def test_the_pinned_version_is_shown_else_the_agents_current_one(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant
) -> None:
    agent = await create_agent(api, description=None, type="CALL", version={**VERSION, "name": "first"})
    pinned = await create_thread(api, agent_id=agent["id"])
    r = await api.post(
        f"/v1/agents/{agent['id']}/versions",
        json={**VERSION, "name": "second", "discard_inbound": True, "temperature": 0},
    )
    assert r.status_code == 201, r.text
    second = r.json()
    r = await anon.get(URL.format(pinned["id"]), headers=key(tenant))
    thread = r.json()["thread"]
    assert thread["agentVersionId"] == agent["current_version"]["id"] == pinned["agent_version_id"]
    assert thread["agentVersionDetails"]["name"] == "first" and thread["agentVersionDetails"]["version"] == 1
    assert thread["agentDetails"] == {
        "id": agent["id"],
        "name": agent["name"],
        "description": None,
        "agentType": "CALL",
    }
    # A thread pinned to no version shows the agent's current one; unset settings are null.
    unversioned = await create_agent(api)
    loose = await create_thread(api, agent_id=unversioned["id"])
    assert loose["agent_version_id"] is None
    r = await api.post(f"/v1/agents/{unversioned['id']}/versions", json={**VERSION, "discard_inbound": True})
    assert r.status_code == 201
    current = r.json()
    thread = (await anon.get(URL.format(loose["id"]), headers=key(tenant))).json()["thread"]
    assert thread["agentVersionId"] == current["id"]
    assert thread["agentVersionDetails"] == {
        "id": current["id"],
        "version": 1,
        "name": "v1",
        "mode": "PROMPT",
        "smsMaxTokens": None,
        "smsTemperature": None,
        "discardInboundSms": True,
    }
    # Falsy settings are values, not nulls: temperature 0 on a thread pinned to the second version.
    newer = await create_thread(api, agent_id=agent["id"])
    details = (await anon.get(URL.format(newer["id"]), headers=key(tenant))).json()["thread"]["agentVersionDetails"]
    assert details["id"] == second["id"] and details["version"] == 2 and details["name"] == "second"
    assert details["smsTemperature"] == 0 and details["smsMaxTokens"] is None and details["discardInboundSms"] is True


async def test_sms_settings_show_the_versions_sms_values_where_set_else_the_general_ones(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant
) -> None:
    general = {"max_tokens": 400, "temperature": 0.9}
    cases = [
        ({**general, "sms_max_tokens": 120, "sms_temperature": 0.2}, (120, 0.2)),
        ({**general, "sms_temperature": 0}, (400, 0)),  # zero is a value: it wins over 0.9
        ({**general, "sms_max_tokens": 60}, (60, 0.9)),
        ({"sms_max_tokens": 60, "sms_temperature": 1.5}, (60, 1.5)),  # no general settings at all
    ]
    for version, shown in cases:
        thread = await versioned_thread(api, **version)
        r = await anon.get(URL.format(thread["id"]), headers=key(tenant))
        assert r.status_code == 200, r.text
        details = r.json()["thread"]["agentVersionDetails"]
        assert (details["smsMaxTokens"], details["smsTemperature"]) == shown, version


async def test_a_thread_whose_agent_has_no_version_is_400(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant
) -> None:
    thread = await create_thread(api)  # the factory's agent has no version
    assert thread["agent_version_id"] is None
    r = await anon.get(URL.format(thread["id"]), headers=key(tenant))
    assert_bad_request(r, "agent has no version")


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "tl_not_a_key"}, {"X-API-Key": "   "}, "bearer"],
    ids=["no-key", "unknown-key", "blank-key", "bearer-instead"],
)
async def test_without_a_valid_x_api_key_the_answer_is_its_400(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, headers: Any
) -> None:
    thread = await versioned_thread(api)
    if headers == "bearer":  # a good key, sent the /v1 way: not this document's credential
        headers = {"Authorization": f"Bearer {tenant.key}"}
    r = await anon.get(URL.format(thread["id"]), headers=headers)
    assert_bad_request(r, "API key")
    if not headers or "Authorization" in headers:
        assert "X-API-Key" in r.json()["message"]


async def test_scopes(api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any) -> None:
    thread = await versioned_thread(api)
    read_only = await add_key(sessionmaker, tenant, (Scope.READ,))
    assert (await anon.get(URL.format(thread["id"]), headers={"X-API-Key": read_only})).status_code == 200
    # Every key has read today (write and admin imply it); a key whose scopes name nothing known has none.
    none = await add_key(sessionmaker, tenant, ())
    r = await anon.get(URL.format(thread["id"]), headers={"X-API-Key": none})
    assert_bad_request(r, "scope")


async def test_unknown_foreign_and_malformed_thread_ids_are_the_same_404(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    thread = await versioned_thread(api)
    await post_message(api, thread["id"], "secret")
    assert (await anon.get(URL.format(thread["id"]), headers=key(tenant))).status_code == 200
    for thread_id, who in (
        (thread["id"], other_tenant),
        ("018f2b8e-0000-7000-8000-000000000000", tenant),
        ("not-a-uuid", tenant),
        ("12345", tenant),
        (str(thread["number"]), tenant),
    ):
        r = await anon.get(URL.format(thread_id), params={"limit": "5"}, headers=key(who))
        assert r.status_code == 404, thread_id
        assert r.json() == NOT_FOUND and list(r.json()) == ERROR_KEYS
        assert "secret" not in r.text


async def test_other_failures_keep_the_envelope(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, settings: Any
) -> None:
    thread = await versioned_thread(api)
    url = URL.format(thread["id"])
    r = await anon.post(url, headers=key(tenant), json={"messageBody": "hi"})
    assert_bad_request(r)  # 405: the document has only its 400
    r = await anon.get("/feather/api/v1/nothing", headers=key(tenant))
    assert r.status_code == 404 and list(r.json()) == ERROR_KEYS
    assert r.json()["status"] == 404 and r.json()["code"] == "BAD_REQUEST"
    # A body over the size limit (refused before any route runs) is its 400 too, in the status line as well.
    r = await anon.request("GET", url, headers=key(tenant), content=b"x" * (settings.server.max_request_bytes + 1))
    assert_bad_request(r, "larger")


async def test_an_unexpected_failure_is_its_500_without_internals(
    app: Any, api: httpx.AsyncClient, tenant: Tenant
) -> None:
    thread = await versioned_thread(api)

    async def boom(self: Any, thread_uid: Any) -> Any:
        raise RuntimeError("secret-internal-detail")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(ThreadRepository, "with_agent", boom)
            r = await client.get(URL.format(thread["id"]), headers=key(tenant))
    assert r.status_code == 500
    assert r.json() == {
        "status": 500,
        "message": "Internal server error",
        "code": "INTERNAL_SERVER_ERROR",
        "success": False,
    }
    assert list(r.json()) == ERROR_KEYS and "secret-internal-detail" not in r.text


async def test_a_delivery_status_change_shows_on_the_next_read(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    thread = await versioned_thread(api)
    await post_message(api, thread["id"], "question")
    reply = await post_message(api, thread["id"], "answer", role="assistant")
    url = URL.format(thread["id"])
    before = (await anon.get(url, headers=key(tenant))).json()["thread"]["messages"][-1]
    assert before["id"] == reply["id"] and before["status"] == "SENT" and before["deliveredAt"] is None
    # What a channel's delivery callback does to the row.
    delivered_at = utcnow().replace(microsecond=0)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Message)
            .where(Message.public_id == parse_uuid(reply["id"]))
            .values(
                status="DELIVERED", delivered_at=delivered_at, external_id="SM1", segments=2, updated_at=delivered_at
            )
        )
    after = (await anon.get(url, headers=key(tenant))).json()["thread"]["messages"][-1]
    assert after["status"] == "DELIVERED"
    assert after["deliveredAt"] == delivered_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert after["twilioMessageSid"] == "SM1" and after["twilioNumSegments"] == 2
    assert after["updatedAt"] == after["deliveredAt"] != before["updatedAt"]
    r = await anon.get(url, params={"status": "DELIVERED"}, headers=key(tenant))
    assert [m["id"] for m in r.json()["thread"]["messages"]] == [reply["id"]]


async def test_ids_are_the_v1_ids(api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant) -> None:
    end_user = await create_end_user(api)
    agent = await create_agent(api, version=VERSION)
    thread = await create_thread(api, agent_id=agent["id"], end_user_id=end_user["id"])
    sent = await post_message(api, thread["id"], "hello")
    r = await anon.get(URL.format(thread["id"].upper()), headers=key(tenant))
    assert r.status_code == 200
    (message,) = r.json()["thread"]["messages"]
    assert message["id"] == sent["id"] and message["threadId"] == thread["id"]
    listed = (await api.get(f"/v1/threads/{thread['id']}/messages")).json()["data"]
    assert as_feather(listed[0]) == message
