"""camelAI's GET /api/v1/threads/{thread_id}/messages, served under /camelai (seed 001)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Tenant, add_key
from tests.dialects.seed import seed_everything
from tests.factories import create_thread, post_message
from threadline.models.enums import Scope

URL = "/camelai/api/v1/threads/{}/messages"


def bearer(tenant: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.key}"}


async def test_whole_thread_oldest_first_with_every_field_pinned(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    seeded = await seed_everything(api, sessionmaker)
    r = await anon.get(URL.format(seeded.thread_number), headers=bearer(tenant))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    native = seeded.messages
    expected_roles = ["user", "assistant", "assistant", "system", "tool", "hidden", "assistant", "assistant"]
    assert [m["role"] for m in body["messages"][:8]] == expected_roles
    assert body == {
        "thread_id": seeded.thread_number,
        "messages": [
            {
                "id": m["number"],
                "role": m["role"],
                "content": m["content"],
                "created_at": m["created_at"],
                "metadata": m["metadata"],
                "source": {"ui": "UI", "mcp": "MCP"}.get(m["source"], "API"),
            }
            for m in native
        ],
        "message_count": len(native),
    }
    # Key order as the document lists it, for clients that compare text.
    assert list(body) == ["thread_id", "messages", "message_count"]
    assert list(body["messages"][0]) == ["id", "role", "content", "created_at", "metadata", "source"]
    assert body["messages"][0] == {
        "id": native[0]["number"],
        "role": "user",
        "content": "Where is my **order** A-17?",
        "created_at": native[0]["created_at"],
        "metadata": {},
        "source": "API",
    }
    sources = {m["content"]: m["source"] for m in body["messages"]}
    assert sources["typed in the console"] == "UI" and sources["from an MCP client"] == "MCP"
    assert all(isinstance(m["id"], int) for m in body["messages"])
    ids = [m["id"] for m in body["messages"]]
    assert ids == sorted(ids)


async def test_an_empty_thread_is_an_empty_list(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant
) -> None:
    thread = await create_thread(api)
    r = await anon.get(URL.format(thread["number"]), headers=bearer(tenant))
    assert r.status_code == 200
    assert r.json() == {"thread_id": thread["number"], "messages": [], "message_count": 0}


async def test_a_long_thread_streams_in_chunks_and_stays_whole(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    from threadline.messages.repository import MessageRepository

    thread = await create_thread(api)
    for i in range(7):
        await post_message(api, thread["id"], f"m{i}")
    original = MessageRepository.chunks

    def small_chunks(self: Any, thread_id: int, *, roles: Any = None, size: int = 1000) -> Any:
        return original(self, thread_id, roles=roles, size=2)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MessageRepository, "chunks", small_chunks)
        r = await anon.get(URL.format(thread["number"]), headers=bearer(tenant))
    assert r.status_code == 200
    assert "content-length" not in r.headers  # streamed, not built whole
    body = r.json()
    assert [m["content"] for m in body["messages"]] == [f"m{i}" for i in range(7)]
    assert body["message_count"] == 7


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer tl_not_a_key"},
        {"Authorization": "Token whatever"},
    ],
    ids=["no-key", "unknown-key", "other-scheme"],
)
async def test_without_a_valid_bearer_key_the_answer_is_its_403(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    thread = await create_thread(api)
    r = await anon.get(URL.format(thread["number"]), headers=headers)
    assert r.status_code == 403
    assert set(r.json()) == {"error"} and isinstance(r.json()["error"], str)


async def test_the_key_must_travel_the_way_the_document_says(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant
) -> None:
    thread = await create_thread(api)
    r = await anon.get(URL.format(thread["number"]), headers={"X-API-Key": tenant.key})
    assert r.status_code == 403


async def test_a_key_without_read_scope_is_refused(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    thread = await create_thread(api)
    r = await anon.get(URL.format(thread["number"]), headers={"Authorization": "Bearer " + tenant.key})
    assert r.status_code == 200
    # Every key has read today (write and admin imply it); a key whose scopes name nothing known has none.
    key = await add_key(sessionmaker, tenant, ())
    r = await anon.get(URL.format(thread["number"]), headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403 and "scope" in r.json()["error"]


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "1.5", str(2**70), "99999999999"])
async def test_ids_that_name_no_thread_are_its_404(anon: httpx.AsyncClient, tenant: Tenant, raw: str) -> None:
    r = await anon.get(URL.format(raw), headers=bearer(tenant))
    assert r.status_code == 404
    assert set(r.json()) == {"error"}


async def test_another_workspaces_thread_is_a_404_that_reveals_nothing(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, other_tenant: Tenant
) -> None:
    thread = await create_thread(api)
    await post_message(api, thread["id"], "secret")
    theirs = await anon.get(URL.format(thread["number"]), headers=bearer(other_tenant))
    missing = await anon.get(URL.format(2**62), headers=bearer(other_tenant))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"].replace(str(thread["number"]), "N") == missing.json()["error"].replace(
        str(2**62), "N"
    )


async def test_thread_numbers_are_counted_per_workspace_and_name_only_the_callers_threads(
    app: Any, api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=other_tenant.headers) as o:
        theirs = await create_thread(o)
        their_message = await post_message(o, theirs["id"], "theirs")
    mine = await create_thread(api)
    my_message = await post_message(api, mine["id"], "mine")
    # Two fresh workspaces: each starts at 1, whatever the other wrote first.
    assert mine["number"] == theirs["number"] == 1 and my_message["number"] == their_message["number"] == 1
    for who, content in ((tenant, "mine"), (other_tenant, "theirs")):
        r = await anon.get(URL.format(1), headers=bearer(who))
        assert r.status_code == 200, r.text
        assert r.json()["thread_id"] == 1
        assert [(m["id"], m["content"]) for m in r.json()["messages"]] == [(1, content)]
    second = await create_thread(api)
    assert second["number"] == 2
    assert (await anon.get(URL.format(2), headers=bearer(tenant))).status_code == 200
    # The other workspace has no thread 2: the caller's workspace and the number name the thread together.
    assert (await anon.get(URL.format(2), headers=bearer(other_tenant))).status_code == 404


async def test_reads_use_a_read_only_key(
    api: httpx.AsyncClient, anon: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    thread = await create_thread(api)
    key = await add_key(sessionmaker, tenant, (Scope.READ,))
    r = await anon.get(URL.format(thread["number"]), headers={"Authorization": f"bearer {key}"})
    assert r.status_code == 200
