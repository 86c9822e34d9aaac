"""A body that is not JSON is a 400 that says so (and where, or how to send JSON), never a 422 about field "17"."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from tests.conftest import Tenant


async def _post(api: httpx.AsyncClient, content: bytes, content_type: str | None, url: str = "/v1/tags") -> Any:
    headers = {"content-type": content_type} if content_type else {}
    return await api.post(url, content=content, headers=headers)


@pytest.mark.parametrize(
    ("body", "line", "column", "position", "reason"),
    [
        (b'{"name": "x",}', 1, 14, 13, "Expecting property name enclosed in double quotes"),
        (b'{\n  "name": \n', 3, 1, 13, "Expecting value"),
        (b"{'name': 'x'}", 1, 2, 1, "Expecting property name enclosed in double quotes"),
        (b"   ", 1, 4, 3, "Expecting value"),
    ],
)
async def test_malformed_json_is_a_400_that_says_where(
    api: httpx.AsyncClient, body: bytes, line: int, column: int, position: int, reason: str
) -> None:
    r = await _post(api, body, "application/json")
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_json"
    assert error["param"] is None
    assert error["message"] == (
        f"the body is not valid JSON: {reason} at line {line}, column {column} (character {position})"
    )
    assert error["details"] == {"line": line, "column": column, "position": position}


async def test_a_body_that_is_not_utf8_is_a_400_not_valid_json(api: httpx.AsyncClient) -> None:
    r = await _post(api, b'{"name": "\xff"}', "application/json; charset=utf-8")
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_json" and "not valid JSON" in error["message"] and "UTF-8" in error["message"]


@pytest.mark.parametrize(
    ("content_type", "body", "form"),
    [
        ("application/x-www-form-urlencoded", b'{"name": "curl -d"}', True),  # what curl -d sends
        ("application/x-www-form-urlencoded", b"name=support", True),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--b--\r\n',
            True,
        ),
        ("text/plain", b'{"name": "plain"}', False),
        (None, b'{"name": "none"}', False),
    ],
)
async def test_a_body_not_sent_as_json_gets_a_hint_to_send_json(
    api: httpx.AsyncClient, content_type: str | None, body: bytes, form: bool
) -> None:
    r = await _post(api, body, content_type)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_json" and error["param"] is None
    assert "must be JSON, sent with Content-Type: application/json" in error["message"]
    if form:
        assert "-H 'Content-Type: application/json'" in error["message"]
    media = content_type.split(";")[0] if content_type else "without a Content-Type"
    assert media in error["message"]
    assert (await api.get("/v1/tags")).json()["data"] == []  # nothing was created


async def test_json_that_fails_validation_is_still_a_422_naming_the_field(api: httpx.AsyncClient) -> None:
    for body, param in ((b"[1]", "body"), (b'{"name": 5}', "name"), (b"{}", "name")):
        r = await _post(api, body, "application/json")
        assert r.status_code == 422 and r.json()["error"]["param"] == param, r.text
    r = await _post(api, b'{"name": "vendor+json"}', "application/vnd.api+json")  # a JSON media type
    assert r.status_code == 201, r.text


async def test_malformed_json_on_patch_and_nested_routes(api: httpx.AsyncClient) -> None:
    tag = (await api.post("/v1/tags", json={"name": "t"})).json()
    r = await api.patch(f"/v1/tags/{tag['id']}", content=b'{"name": }', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json", r.text
    r = await api.post(
        "/v1/agents",
        content=b'{"name": "a", "version": {"mode": "PROMPT",,}}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"]["details"]["column"] == 44, r.text


async def test_altur_answers_malformed_json_with_its_400_saying_where(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = "/altur/api/v1.0/message"
    headers = {"Authorization": f"api-key {tenant.key}"}
    r = await client.post(url, content=b'{"agent_id": ', headers={**headers, "content-type": "application/json"})
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) == {"error", "message"} and body["error"] == 400
    assert body["message"].startswith("body: not valid JSON: ") and "line 1 column" in body["message"]
    assert "Content-Type" not in body["message"]
    r = await client.post(
        url, content=b"agent_id=1&content=hi", headers={**headers, "content-type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 400 and r.json()["error"] == 400, r.text
    assert "-H 'Content-Type: application/json'" in r.json()["message"]
    # Altur reads its body as JSON whatever the Content-Type: valid JSON sent as a form still gets through.
    ids = {"agent_id": str(uuid.uuid4()), "end_user_id": str(uuid.uuid4()), "content": "hi"}
    r = await client.post(url, json=ids, headers={**headers, "content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 404 and r.json() == {"error": 404, "message": "Agent or EndUser not found"}, r.text


@pytest.mark.parametrize(
    ("url", "headers", "shape"),
    [
        ("/camelai/api/v1/threads/1/messages", "bearer", {"error"}),
        ("/aitronos/v1/threads/x/messages", "x-api-key", {"error"}),
        ("/feather/api/v1/threads/x/messages", "x-api-key", {"status", "message", "code", "success"}),
    ],
)
async def test_the_read_only_dialects_refuse_a_json_post_with_a_4xx_in_their_format(
    client: httpx.AsyncClient, tenant: Tenant, url: str, headers: str, shape: set[str]
) -> None:
    auth = {"Authorization": f"Bearer {tenant.key}"} if headers == "bearer" else {"X-API-Key": tenant.key}
    r = await client.post(url, content=b'{"content": ', headers={**auth, "content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert set(r.json()) == shape, r.text
