"""Every refusal of the OpenAI mount in OpenAI's envelope, with OpenAI's statuses, never a 500: malformed JSON,
bodies and parameters of the wrong shape, unknown routes and methods, rate limits. In process (the async SDK over
httpx's ASGI transport, and plain httpx for what the SDK would never send)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Tenant
from tests.dialects.openai.spec import assert_valid
from tests.factories import create_agent
from threadline.app import create_app

BASE = "/openai/v1"
ENDS = {"mode": "FLOW", "provider": "flow", "flow": {"start": "a", "nodes": {"a": {"type": "end"}}}}


@pytest.fixture
async def mount(app: Any, tenant: Tenant) -> AsyncIterator[httpx.AsyncClient]:
    """httpx on the app in process, with the tenant's key the way the SDK sends it."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://testserver{BASE}", headers=tenant.headers) as c:
        yield c


def refusal(r: httpx.Response, status: int, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert_valid("ErrorResponse", body)
    assert list(body) == ["error"] and list(body["error"]) == ["message", "type", "param", "code"]
    if param is not None:
        assert body["error"]["param"] == param, body
    if code is not None:
        assert body["error"]["code"] == code, body
    error: dict[str, Any] = body["error"]
    return error


async def test_malformed_json_and_bodies_of_the_wrong_shape_are_400s_naming_what_is_wrong(
    mount: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    await create_agent(api, version=ENDS)
    headers = {"Content-Type": "application/json"}
    error = refusal(
        await mount.post("/responses", content=b'{"input": "hi",', headers=headers), 400, code="invalid_json"
    )
    assert error["type"] == "invalid_request_error" and "not valid JSON" in error["message"]
    refusal(await mount.post("/conversations", content=b"[1, 2", headers=headers), 400, code="invalid_json")
    refusal(await mount.post("/responses", content=b"\xff\xfe", headers=headers), 400, code="invalid_json")
    refusal(await mount.post("/responses", json={"input": 5}), 400, param="input")
    refusal(await mount.post("/responses", json={"input": "hi", "stream": "yes"}), 400, param="stream")
    refusal(await mount.post("/responses", json=[]), 400)
    refusal(await mount.post("/conversations", json={"metadata": {"k": 1}}), 400, param="metadata.k")
    refusal(
        await mount.post("/conversations", json={"metadata": {f"k{n}": "v" for n in range(17)}}), 400, param="metadata"
    )
    refusal(await mount.post("/conversations", json={"items": [{}] * 21}), 400, param="items")
    refusal(await mount.post("/conversations", json={"items": ["hi"]}), 400, param="items[0]")
    refusal(
        await mount.post("/conversations", json={"items": [{"role": "robot", "content": "x"}]}),
        400,
        param="items[0].role",
    )
    refusal(
        await mount.post("/conversations", json={"items": [{"role": "user", "content": "a\x00b"}]}),
        400,
        param="items[0].content",
    )
    refusal(
        await mount.post("/conversations", json={"items": [{"type": "function_call", "name": "f", "arguments": "{}"}]}),
        400,
        param="items[0].call_id",
    )


async def test_parameters_routes_and_methods_it_does_not_have(mount: httpx.AsyncClient) -> None:
    refusal(await mount.get("/conversations/conv_nope/items", params={"limit": 0}), 400, param="limit")
    refusal(await mount.get("/conversations/conv_nope/items", params={"limit": 101}), 400, param="limit")
    refusal(await mount.get("/conversations/conv_nope/items", params={"order": "sideways"}), 400, param="order")
    refusal(await mount.get("/conversations/conv_nope"), 404)
    refusal(await mount.get("/conversations/" + "conv_" + "A" * 32), 404)
    refusal(await mount.get("/responses/resp_nope"), 404)
    refusal(await mount.get("/responses/resp_" + "0" * 32, params={"stream": "true"}), 400, param="stream")
    refusal(await mount.get("/models"), 404)  # not served here
    error = refusal(await mount.put("/conversations/conv_x"), 405)
    assert "allowed" in error["message"]


async def test_an_unknown_cursor_is_a_400_naming_after(mount: httpx.AsyncClient, api: httpx.AsyncClient) -> None:
    await create_agent(api, version=ENDS)
    created = await mount.post("/conversations", json={"items": [{"role": "user", "content": "hi"}]})
    conversation = created.json()["id"]
    for cursor in ("msg_" + "0" * 32, "nonsense", "fc_" + "0" * 32 + "_1"):
        refusal(await mount.get(f"/conversations/{conversation}/items", params={"after": cursor}), 400, param="after")
    refusal(await mount.get(f"/conversations/{conversation}/items/msg_{'0' * 32}"), 404)


async def test_the_async_sdk_raises_its_typed_errors(app: Any, tenant: Tenant, api: httpx.AsyncClient) -> None:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    client = openai.AsyncOpenAI(
        api_key=tenant.key, base_url=f"http://testserver{BASE}", http_client=http, max_retries=0
    )
    with pytest.raises(openai.BadRequestError) as none:
        await client.responses.create(model="gpt-4o", input="hi")
    assert none.value.code == "no_agent" and none.value.param == "model"
    with pytest.raises(openai.NotFoundError) as unknown:
        await client.responses.create(model="agent:nobody", input="hi")
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.AuthenticationError):
        await openai.AsyncOpenAI(
            api_key="tl_wrong", base_url=f"http://testserver{BASE}", http_client=http, max_retries=0
        ).conversations.create()
    await http.aclose()


async def test_over_its_budget_a_key_gets_openais_429(settings: Any, engine: Any, tenant: Tenant) -> None:
    app = create_app(settings.replace(rate_limit_per_key="2/minute"), engine=engine)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    client = openai.AsyncOpenAI(
        api_key=tenant.key, base_url=f"http://testserver{BASE}", http_client=http, max_retries=0
    )
    for _ in range(2):
        with pytest.raises(openai.NotFoundError):
            await client.conversations.retrieve("conv_nope")
    with pytest.raises(openai.RateLimitError) as limited:
        await client.conversations.retrieve("conv_nope")
    assert limited.value.response.headers["retry-after"]
    error = refusal(limited.value.response, 429)
    assert error["type"] == "requests"
    await http.aclose()
    await app.state.limits.close()
    await app.state.last_used.drain()
