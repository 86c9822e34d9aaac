"""Walks over every route a real server serves: the tenancy walk (another workspace's ids and data never
answer) and the scope walk (a key without the scope is refused on every writing route), on /v1 as the
served /openapi.json lists it, and on the vendors' mounts as their documents list them."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from tests.conftest import Tenant, add_key, make_tenant
from tests.factories import post_message
from tests.livesrv import live_server
from tests.security.conftest import server_env
from tests.web.test_tenancy import BODIES, _other_workspace_resources
from threadline.models import Thread
from threadline.models.enums import Scope

DOCUMENTS = Path(__file__).parent.parent / "dialects" / "documents"
MOUNTS = {"altur": "/altur/api/v1.0", "camelai": "/camelai", "aitronos": "/aitronos", "feather": "/feather"}
# How each vendor's document sends a key.
CREDENTIALS = {
    "altur": lambda key: {"Authorization": f"api-key {key}"},
    "camelai": lambda key: {"Authorization": f"Bearer {key}"},
    "aitronos": lambda key: {"X-API-Key": key},
    "feather": lambda key: {"X-API-Key": key},
}
# Routes only an admin key may use (a write key is refused too).
ADMIN_ONLY = re.compile(r"^/v1/(api_keys|audit_events)(/|$)|^/v1/end_users/\{end_user_id\}/export$|^/v1/erasures")


@pytest.fixture(scope="module")
def base(database_url: str, settings: Any) -> Iterator[str]:
    env = server_env(settings, THREADLINE_RUN_WORKERS="false", THREADLINE_MESSAGE_WAIT_MAX_S="0.2")
    with live_server(database_url, **env) as url:
        yield url


async def _victim(client: httpx.AsyncClient, sessionmaker: Any) -> tuple[Tenant, dict[str, Any], str]:
    """A workspace with one of everything, a canary phrase in a message, and its thread's integer id."""
    victim = await make_tenant(sessionmaker)
    ids: dict[str, Any] = await _other_workspace_resources(client, victim)
    canary = f"canary-{uuid.uuid4().hex}"
    client.headers.update(victim.headers)
    try:
        await post_message(client, ids["thread_id"], canary)
    finally:
        for name in victim.headers:
            client.headers.pop(name, None)
    async with sessionmaker() as session:
        thread = (
            await session.execute(select(Thread).where(Thread.public_id == uuid.UUID(ids["thread_id"])))
        ).scalar_one()
    ids["thread_number"] = getattr(thread, "number", thread.id)
    return victim, ids, canary


def _leaks(text: str, ids: dict[str, Any], canary: str, sent: str) -> list[str]:
    """The victim's canary and ids in ``text``, but those the request itself named (an error may echo them)."""
    found = [canary] if canary in text and canary not in sent else []
    return found + [
        f"{name}={value}"
        for name, value in ids.items()
        if isinstance(value, str) and value in text and value not in sent
    ]


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, operation


def _is_stream(operation: dict[str, Any]) -> bool:
    return any("text/event-stream" in r.get("content", {}) for r in operation.get("responses", {}).values())


async def _call(
    client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str], body: Any, stream: bool
) -> tuple[int, str]:
    if not stream:
        r = await client.request(method.upper(), url, json=body, headers=headers)
        return r.status_code, r.text
    # An event stream never ends: what it says in its first moments is enough to see whose it is.
    async with client.stream(method.upper(), url, json=body, headers=headers, params={"after": 0}) as r:
        text = ""
        try:
            async for chunk in r.aiter_text():
                text += chunk
                if len(text) > 20_000:
                    break
        except httpx.ReadTimeout:
            pass
        return r.status_code, text


def _vendor_documents() -> dict[str, dict[str, Any]]:
    return {vendor: yaml.safe_load((DOCUMENTS / f"{vendor}.yaml").read_text()) for vendor in MOUNTS}


async def test_no_route_of_any_surface_answers_another_workspaces_ids_or_shows_its_data(
    base: str, sessionmaker: Any
) -> None:
    attacker = await make_tenant(sessionmaker)
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(30, read=2)) as client:
        _, ids, canary = await _victim(client, sessionmaker)
        openapi = (await client.get("/openapi.json")).json()
        walked = 0
        for path, method, operation in _operations(openapi):
            params = re.findall(r"{(\w+)}", path)
            missing = [p for p in params if p not in ids]
            assert not missing, f"add {missing} to the tenancy walk so {path} is covered"
            url = path.format(**{p: ids[p] for p in params})
            body = BODIES.get((method, path), {} if method in ("post", "patch", "put") else None)
            status, text = await _call(client, method, url, attacker.headers, body, _is_stream(operation))
            if params:
                assert not 200 <= status < 300, f"{method.upper()} {path}: {status} {text[:300]}"
            leaks = _leaks(text, ids, canary, sent=f"{url} {body}")
            assert not leaks, f"{method.upper()} {path} showed {leaks}"
            walked += 1
        assert walked >= 40

        # The vendors' mounts, as their documents list their routes, with the victim's ids of each kind.
        vendor_ids = {
            "thread_id": ids["thread_id"],
            "threadId": ids["thread_id"],
            "agent_id": ids["agent_id"],
            "end_user_id": ids["end_user_id"],
        }
        for vendor, document in _vendor_documents().items():
            for path, method, _ in _operations(document):
                values = {**vendor_ids, "thread_id": str(ids["thread_number"])} if vendor == "camelai" else vendor_ids
                url = MOUNTS[vendor] + re.sub(r"{(\w+)}", lambda m, v=values: v[m.group(1)], path)
                body = {"agent_id": ids["agent_id"], "end_user_id": ids["end_user_id"], "content": "hello"}
                sent = body if method == "post" else None
                r = await client.request(method.upper(), url, json=sent, headers=CREDENTIALS[vendor](attacker.key))
                where = f"{vendor} {method.upper()} {path}"
                assert not 200 <= r.status_code < 300, f"{where}: {r.status_code} {r.text[:300]}"
                assert not _leaks(r.text, ids, canary, sent=f"{url} {sent}"), f"{where} showed data"
                walked += 1


async def test_a_key_without_the_scope_is_refused_on_every_writing_route_of_every_surface(
    base: str, sessionmaker: Any
) -> None:
    owner = await make_tenant(sessionmaker)
    read_only = {"Authorization": f"Bearer {await add_key(sessionmaker, owner, (Scope.READ,))}"}
    writer = {"Authorization": f"Bearer {await add_key(sessionmaker, owner, (Scope.WRITE,))}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        # The workspace's own ids: a refusal must come from the scope, not from an unknown id.
        ids = await _other_workspace_resources(client, owner)
        openapi = (await client.get("/openapi.json")).json()
        writing = 0
        for path, method, _ in _operations(openapi):
            if not path.startswith("/v1/"):
                continue
            url = path.format(**{p: ids[p] for p in re.findall(r"{(\w+)}", path)})
            body = BODIES.get((method, path), {} if method in ("post", "patch", "put") else None)
            refused_keys = [read_only, writer] if ADMIN_ONLY.match(path) else [read_only] if method != "get" else []
            for headers in refused_keys:
                r = await client.request(method.upper(), url, json=body, headers=headers)
                assert r.status_code == 403, f"{method.upper()} {path}: {r.status_code} {r.text[:300]}"
                assert r.json()["error"]["code"] == "insufficient_scope"
                writing += 1
        assert writing >= 30

        # Altur's POST /message is the vendors' one writing route; its document has no 403, so a missing
        # scope is its 401. Nothing may be stored.
        before = (await client.get(f"/v1/threads/{ids['thread_id']}", headers=owner.headers)).json()["message_count"]
        r = await client.post(
            "/altur/api/v1.0/message",
            json={"agent_id": ids["agent_id"], "end_user_id": ids["end_user_id"], "content": "not allowed"},
            headers={"Authorization": f"api-key {read_only['Authorization'].split()[1]}"},
        )
        assert r.status_code == 401 and r.json()["error"] == 401
        after = (await client.get(f"/v1/threads/{ids['thread_id']}", headers=owner.headers)).json()["message_count"]
        assert after == before
