"""No endpoint reads or writes across workspaces: walk every /v1 route with another workspace's ids."""

from __future__ import annotations

import re
from typing import Any

import httpx
from tests.conftest import Tenant
from tests.factories import create_agent, create_end_user, create_thread, post_message

# A body that passes validation for each route that needs one, so the answer is about the ids.
BODIES: dict[tuple[str, str], Any] = {
    ("post", "/v1/agents/{agent_id}/versions"): {"mode": "PROMPT", "model": "gpt-4o-mini"},
    ("post", "/v1/threads/{thread_id}/messages"): {"content": "x"},
    ("post", "/v1/threads/{thread_id}/read"): {},
    ("post", "/v1/webhooks/{webhook_id}/replay"): {"after_seq": 0},
}


async def _other_workspace_resources(client: httpx.AsyncClient, other: Tenant) -> dict[str, str]:
    client.headers.update(other.headers)
    try:
        # First, so that the events below make deliveries.
        webhook = (await client.post("/v1/webhooks", json={"url": "https://hooks.example.com/t"})).json()
        agent = await create_agent(client, version={"mode": "PROMPT", "model": "gpt-4o-mini"})
        end_user = await create_end_user(client)
        integration = (await client.post("/v1/integrations", json={"type": "api", "name": "i"})).json()
        user = (await client.post("/v1/users", json={"email": "x@example.com"})).json()
        tag = (await client.post("/v1/tags", json={"name": "t"})).json()
        thread = await create_thread(
            client, agent_id=agent["id"], end_user_id=end_user["id"], tags=[tag["id"]], assigned_to=[user["id"]]
        )
        message = await post_message(client, thread["id"], "secret")
        key = (await client.post("/v1/api_keys", json={"scopes": ["read"]})).json()
        delivery = (await client.get(f"/v1/webhooks/{webhook['id']}/deliveries")).json()["data"][0]
        audit_event = (await client.get("/v1/audit_events")).json()["data"][0]
        erased = await create_end_user(client)
        erasure = (await client.delete(f"/v1/end_users/{erased['id']}", params={"erase": "true"})).json()
    finally:
        for name in other.headers:
            client.headers.pop(name, None)
    return {
        "agent_id": agent["id"],
        "version_id": agent["current_version"]["id"],
        "end_user_id": end_user["id"],
        "integration_id": integration["id"],
        "user_id": user["id"],
        "tag_id": tag["id"],
        "thread_id": thread["id"],
        "message_id": message["id"],
        "run_id": message["run"]["id"],
        "key_id": key["id"],
        "webhook_id": webhook["id"],
        "delivery_id": delivery["id"],
        "audit_event_id": audit_event["id"],
        "erasure_id": erasure["id"],
    }


async def test_every_route_treats_another_workspaces_ids_as_absent(
    client: httpx.AsyncClient, app: Any, tenant: Tenant, other_tenant: Tenant
) -> None:
    ids = await _other_workspace_resources(client, other_tenant)
    before = (await client.get(f"/v1/threads/{ids['thread_id']}", headers=other_tenant.headers)).json()
    walked = 0
    for path, operations in app.openapi()["paths"].items():
        if not path.startswith("/v1/") or "{" not in path:
            continue
        params = re.findall(r"{(\w+)}", path)
        missing = [p for p in params if p not in ids]
        assert not missing, f"add {missing} to the tenancy walk so {path} is covered"
        url = path.format(**{p: ids[p] for p in params})
        for method in operations:
            body = BODIES.get((method, path), {} if method in ("post", "patch", "put") else None)
            r = await client.request(method.upper(), url, json=body, headers=tenant.headers)
            assert r.status_code == 404, f"{method.upper()} {path}: {r.status_code} {r.text}"
            assert "secret" not in r.text
            walked += 1
    assert walked >= 20

    # Lists: another workspace's ids as cursors are unknown (400); as filters they match nothing.
    for path, cursor in (
        ("/v1/threads", "thread_id"),
        ("/v1/agents", "agent_id"),
        ("/v1/tags", "tag_id"),
        ("/v1/users", "user_id"),
        ("/v1/end_users", "end_user_id"),
        ("/v1/integrations", "integration_id"),
        ("/v1/api_keys", "key_id"),
        ("/v1/webhooks", "webhook_id"),
        ("/v1/audit_events", "audit_event_id"),
    ):
        for param in ("after", "before"):
            r = await client.get(path, params={param: ids[cursor]}, headers=tenant.headers)
            assert r.status_code == 400, f"{path}?{param}: {r.status_code} {r.text}"
    for name, value in (
        ("agent_id", ids["agent_id"]),
        ("end_user_id", ids["end_user_id"]),
        ("tag_id", ids["tag_id"]),
        ("assigned_user_id", ids["user_id"]),
    ):
        r = await client.get("/v1/threads", params={name: value}, headers=tenant.headers)
        assert r.status_code == 200 and r.json()["data"] == [], name
    for path in ("/v1/threads", "/v1/agents", "/v1/end_users", "/v1/users", "/v1/tags", "/v1/integrations"):
        listed = (await client.get(path, params={"limit": 100}, headers=tenant.headers)).json()["data"]
        assert not {item["id"] for item in listed} & set(ids.values()), path

    # Bodies that point at another workspace's rows are refused as unknown references.
    own_agent = await create_agent(_as(client, tenant), version={"mode": "PROMPT", "model": "gpt-4o-mini"})
    own_user = await create_end_user(_as(client, tenant))
    own_thread = await create_thread(_as(client, tenant), agent_id=own_agent["id"], end_user_id=own_user["id"])
    refused = [
        ("/v1/threads", {"agent_id": ids["agent_id"], "end_user_id": own_user["id"]}),
        ("/v1/threads", {"agent_id": own_agent["id"], "end_user_id": ids["end_user_id"]}),
        (
            "/v1/threads",
            {"agent_id": own_agent["id"], "end_user_id": own_user["id"], "integration_id": ids["integration_id"]},
        ),
        ("/v1/threads", {"agent_id": own_agent["id"], "end_user_id": own_user["id"], "tags": [ids["tag_id"]]}),
        ("/v1/threads", {"agent_id": own_agent["id"], "end_user_id": own_user["id"], "assigned_to": [ids["user_id"]]}),
        (
            "/v1/threads",
            {"agent_id": own_agent["id"], "end_user_id": own_user["id"], "agent_version_id": ids["version_id"]},
        ),
        ("/v1/integrations", {"type": "api", "agent_id": ids["agent_id"]}),
        (f"/v1/threads/{own_thread['id']}/messages", {"content": "x", "role": "assistant", "user_id": ids["user_id"]}),
    ]
    for path, body in refused:
        r = await client.post(path, json=body, headers=tenant.headers)
        assert r.status_code == 404, f"POST {path} {body}: {r.status_code} {r.text}"
    r = await client.post(
        f"/v1/threads/{own_thread['id']}/messages",
        json={"content": "x", "in_response_to": ids["message_id"]},
        headers=tenant.headers,
    )
    assert r.status_code == 400
    r = await client.patch(f"/v1/threads/{own_thread['id']}", json={"tags": [ids["tag_id"]]}, headers=tenant.headers)
    assert r.status_code == 404

    # And the other workspace's data is exactly as it was.
    after = (await client.get(f"/v1/threads/{ids['thread_id']}", headers=other_tenant.headers)).json()
    assert after == before
    msgs = (await client.get(f"/v1/threads/{ids['thread_id']}/messages", headers=other_tenant.headers)).json()
    assert [m["content"] for m in msgs["data"]] == ["secret"] and msgs["data"][0]["read"] is False
    key = (await client.get(f"/v1/api_keys/{ids['key_id']}", headers=other_tenant.headers)).json()
    assert key["revoked_at"] is None


def _as(client: httpx.AsyncClient, tenant: Tenant) -> httpx.AsyncClient:
    client.headers.update(tenant.headers)
    return client
