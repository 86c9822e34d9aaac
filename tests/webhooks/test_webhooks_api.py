"""/v1/webhooks: endpoints, secrets shown once and stored encrypted, validation, SSRF refusals, scopes, lists."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import Tenant, add_key
from tests.factories import create_thread
from tests.webhooks.conftest import FakeDNS, create_webhook, deliveries, settled
from tests.webhooks.receiver import Receiver, verify_by_hand, verify_by_library
from threadline.config import Settings
from threadline.jobs.worker import Worker
from threadline.kit.secrets import secret_box
from threadline.models import WebhookEndpoint
from threadline.models.enums import Scope

PUBLIC_URL = "https://hooks.example.com/threadline"


async def test_create_shows_the_secret_once_and_reads_never_do(
    api: httpx.AsyncClient, settings: Settings, sessionmaker: Any
) -> None:
    created = await create_webhook(api, PUBLIC_URL, description="CRM sync", event_types=["message.*"])
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert created["object"] == "webhook_endpoint" and created["url"] == PUBLIC_URL
    assert created["event_types"] == ["message.*"] and created["enabled"] is True
    assert created["description"] == "CRM sync" and created["disabled_reason"] is None
    assert created["consecutive_failures"] == 0 and created["failing_since"] is None

    reads = [
        await api.get(f"/v1/webhooks/{created['id']}"),
        await api.get("/v1/webhooks"),
        await api.patch(f"/v1/webhooks/{created['id']}", json={"description": "CRM"}),
        await api.get(f"/v1/webhooks/{created['id']}/deliveries"),
    ]
    for r in reads:
        assert r.status_code == 200, r.text
        assert secret not in r.text and "secret" not in r.json()
    assert [w["id"] for w in reads[1].json()["data"]] == [created["id"]]

    # Stored encrypted, with the run's key.
    async with sessionmaker() as s:
        row = (await s.execute(select(WebhookEndpoint).where(WebhookEndpoint.url == PUBLIC_URL))).scalars().first()
    assert row is not None and secret.encode() not in row.secret_ciphertext
    assert secret_box(settings).decrypt(row.secret_ciphertext) == secret


async def test_rotating_the_secret_signs_with_both_for_a_while(
    api: httpx.AsyncClient, receiver: Receiver, worker: Worker
) -> None:
    hook = await create_webhook(api, receiver.url("/rot"), event_types=["thread.created"])
    r = await api.post(f"/v1/webhooks/{hook['id']}/rotate_secret")
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != hook["secret"]
    receiver.trust("/rot", rotated["secret"])
    await create_thread(api)
    await settled(api, hook["id"], 1)
    [got] = receiver.received("/rot")
    assert got.verified
    signatures = got.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    # The old secret still verifies during the grace period.
    assert verify_by_hand(hook["secret"], got.headers, got.body)
    assert verify_by_library(hook["secret"], got.headers, got.body)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"url": PUBLIC_URL, "event_types": ["message.nope"]}, "event_types.0"),
        ({"url": PUBLIC_URL, "event_types": ["nothing.*"]}, "event_types.0"),
        ({"url": PUBLIC_URL, "event_types": []}, "event_types"),
        ({"url": PUBLIC_URL, "secret": "whsec_mine"}, "secret"),
        ({"url": ""}, "url"),
        ({"url": "https://" + "a" * 2050}, "url"),
        ({}, "url"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(api: httpx.AsyncClient, body: dict[str, Any], param: str) -> None:
    r = await api.post("/v1/webhooks", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["param"] == param


async def test_event_type_patterns_are_deduplicated_and_validated_on_update(api: httpx.AsyncClient) -> None:
    hook = await create_webhook(api, PUBLIC_URL, event_types=["message.created", "message.created", "thread.*"])
    assert hook["event_types"] == ["message.created", "thread.*"]
    r = await api.patch(f"/v1/webhooks/{hook['id']}", json={"event_types": ["webhook_endpoint.disabled", "x"]})
    assert r.status_code == 422 and r.json()["error"]["param"] == "event_types.1"
    r = await api.patch(f"/v1/webhooks/{hook['id']}", json={"event_types": None})
    assert r.status_code == 422 and r.json()["error"]["param"] == "event_types"
    r = await api.patch(f"/v1/webhooks/{hook['id']}", json={"event_types": ["webhook_endpoint.*"], "enabled": False})
    assert r.status_code == 200 and r.json()["event_types"] == ["webhook_endpoint.*"]
    assert r.json()["enabled"] is False and r.json()["disabled_reason"] == "disabled through the API"


REFUSED = [
    "http://127.0.0.1/hook",
    "http://127.1.2.3:8080/hook",
    "http://localhost/hook",
    "http://LOCALHOST./hook",
    "http://api.localhost/hook",
    "http://10.0.0.1/hook",
    "http://172.16.5.4/hook",
    "http://192.168.1.10/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[fe80::1]/hook",
    "http://[fd00::1]/hook",
    "http://0.0.0.0/hook",
    "http://100.64.0.1/hook",
    "http://224.0.0.1/hook",
    "http://2130706433/hook",  # 127.0.0.1 written as one number
]


@pytest.mark.parametrize("url", REFUSED)
async def test_urls_into_private_networks_are_refused(api: httpx.AsyncClient, url: str) -> None:
    r = await api.post("/v1/webhooks", json={"url": url})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["param"] == "url" and error["code"] == "url_not_allowed"
    assert "THREADLINE_WEBHOOK_ALLOW_PRIVATE_URLS" in error["message"]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example.com/hook", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("gopher://example.com:70/", "http:// or https://"),
        ("example.com/hook", "http:// or https://"),
        ("https://user:pass@example.com/hook", "credentials"),
        ("https://token@example.com/hook", "credentials"),
        ("http:///nohost", "host"),
    ],
)
async def test_urls_that_are_not_plain_http_are_refused(api: httpx.AsyncClient, url: str, says: str) -> None:
    r = await api.post("/v1/webhooks", json={"url": url})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["param"] == "url" and error["code"] == "invalid_url" and says in error["message"]


async def test_a_name_that_resolves_into_a_private_network_is_refused(
    api: httpx.AsyncClient, fake_dns: FakeDNS
) -> None:
    fake_dns.answers["intranet.example.com"] = ["93.184.216.34", "10.1.2.3"]  # one bad address is enough
    fake_dns.answers["loop.example.com"] = ["127.0.0.1"]
    fake_dns.answers["good.example.com"] = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]
    for url, address in (("https://intranet.example.com/h", "10.1.2.3"), ("http://loop.example.com/h", "127.0.0.1")):
        r = await api.post("/v1/webhooks", json={"url": url})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "url_not_allowed" and address in r.json()["error"]["message"]
    hook = await create_webhook(api, "https://good.example.com/h")
    r = await api.patch(f"/v1/webhooks/{hook['id']}", json={"url": "http://loop.example.com/h"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "url"
    assert (await api.get(f"/v1/webhooks/{hook['id']}")).json()["url"] == "https://good.example.com/h"


async def test_the_allow_setting_lets_private_urls_in(api: httpx.AsyncClient, webhook_settings: Settings) -> None:
    for url in ("http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://10.0.0.1/hook", "http://[::1]:9/"):
        await create_webhook(api, url)
    r = await api.post("/v1/webhooks", json={"url": "ftp://127.0.0.1/hook"})
    assert r.status_code == 422  # the scheme rule still holds


async def test_a_read_key_reads_and_a_write_key_writes(
    client: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    read_key = await add_key(sessionmaker, tenant, (Scope.READ,))
    write_key = await add_key(sessionmaker, tenant, (Scope.WRITE,))
    reader = {"Authorization": f"Bearer {read_key}"}
    writer = {"Authorization": f"Bearer {write_key}"}
    r = await client.post("/v1/webhooks", json={"url": PUBLIC_URL}, headers=reader)
    assert r.status_code == 403
    r = await client.post("/v1/webhooks", json={"url": PUBLIC_URL}, headers=writer)
    assert r.status_code == 201
    hook = r.json()
    assert (await client.get(f"/v1/webhooks/{hook['id']}", headers=reader)).status_code == 200
    assert (await client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=reader)).status_code == 200
    for method, path, body in (
        ("PATCH", f"/v1/webhooks/{hook['id']}", {"enabled": False}),
        ("DELETE", f"/v1/webhooks/{hook['id']}", None),
        ("POST", f"/v1/webhooks/{hook['id']}/rotate_secret", None),
        ("POST", f"/v1/webhooks/{hook['id']}/replay", {"after_seq": 0}),
    ):
        r = await client.request(method, path, json=body, headers=reader)
        assert r.status_code == 403, (method, path)


async def test_another_workspaces_events_never_reach_an_endpoint_and_its_ids_are_absent(
    api: httpx.AsyncClient, client: httpx.AsyncClient, other_tenant: Tenant, receiver: Receiver, worker: Worker
) -> None:
    mine = await create_webhook(api, receiver.url("/mine"), event_types=["thread.created"])
    theirs_resp = await client.post("/v1/webhooks", json={"url": receiver.url("/theirs")}, headers=other_tenant.headers)
    theirs = theirs_resp.json()
    await create_thread(api)
    await settled(api, mine["id"], 1)
    assert receiver.received("/theirs") == []
    assert (await client.get(f"/v1/webhooks/{theirs['id']}")).status_code == 404
    assert (await client.get(f"/v1/webhooks/{mine['id']}", headers=other_tenant.headers)).status_code == 404
    listed = await client.get("/v1/webhooks", params={"limit": 100}, headers=other_tenant.headers)
    assert [w["id"] for w in listed.json()["data"]] == [theirs["id"]]
    [delivery] = await deliveries(api, mine["id"])
    r = await client.get(f"/v1/webhooks/{theirs['id']}/deliveries/{delivery['id']}", headers=other_tenant.headers)
    assert r.status_code == 404


async def test_deliveries_page_by_the_cursor_rule_and_filter_by_status(
    api: httpx.AsyncClient, receiver: Receiver, worker: Worker
) -> None:
    receiver.behave("/pages", always_fail=True)
    other = await create_webhook(api, receiver.url("/other"), event_types=["thread.created"])
    hook = await create_webhook(api, receiver.url("/pages"), event_types=["thread.created"])
    for _ in range(5):
        await create_thread(api)
    all_five = await settled(api, hook["id"], 5)
    await settled(api, other["id"], 5)
    ids = [d["id"] for d in all_five]
    assert all_five == sorted(all_five, key=lambda d: d["event_seq"])  # oldest first by default

    r = await api.get(f"/v1/webhooks/{hook['id']}/deliveries", params={"limit": 2, "order": "desc"})
    page = r.json()
    assert [d["id"] for d in page["data"]] == [ids[4], ids[3]] and page["has_more"] is True
    r = await api.get(
        f"/v1/webhooks/{hook['id']}/deliveries", params={"limit": 2, "order": "desc", "before": page["last_id"]}
    )
    assert [d["id"] for d in r.json()["data"]] == [ids[2], ids[1]]
    r = await api.get(f"/v1/webhooks/{hook['id']}/deliveries", params={"after": ids[3]})
    assert [d["id"] for d in r.json()["data"]] == [ids[4]] and r.json()["has_more"] is False
    # A delivery of another endpoint is not a cursor of this list.
    foreign = (await deliveries(api, other["id"]))[0]["id"]
    r = await api.get(f"/v1/webhooks/{hook['id']}/deliveries", params={"after": foreign})
    assert r.status_code == 400 and r.json()["error"]["param"] == "after"
    r = await api.get(f"/v1/webhooks/{hook['id']}/deliveries/{foreign}")
    assert r.status_code == 404
    assert len(await deliveries(api, hook["id"], status="failed")) == 5
    assert await deliveries(api, hook["id"], status="succeeded") == []
    r = await api.get(f"/v1/webhooks/{hook['id']}/deliveries", params={"status": "lost"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "status"
    assert len(await deliveries(api, other["id"], status="succeeded")) == 5
