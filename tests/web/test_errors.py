"""Every failure leaves in the /v1 error format, with the right status and no internals."""

from __future__ import annotations

from typing import Any

import httpx
from tests.conftest import Tenant

from threadline.app import create_app


async def test_unknown_route_and_wrong_method_use_the_error_format(api: httpx.AsyncClient) -> None:
    r = await api.get("/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await api.put("/v1/tags")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


async def test_unexpected_exception_is_a_plain_500_without_internals(
    settings: Any, engine: Any, tenant: Tenant
) -> None:
    app = create_app(settings, engine=engine)

    @app.get("/v1/_boom")
    async def boom() -> None:
        raise RuntimeError("secret-internal-detail")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/v1/_boom", headers=tenant.headers)
    assert r.status_code == 500
    body = r.json()
    assert body["error"]["code"] == "internal_error" and body["error"]["type"] == "api_error"
    assert "secret-internal-detail" not in r.text and "Traceback" not in r.text
    assert r.headers["x-request-id"]


async def test_request_id_is_echoed_or_made(api: httpx.AsyncClient) -> None:
    r = await api.get("/v1/tags", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await api.get("/v1/tags", headers={"X-Request-ID": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces" and len(r.headers["x-request-id"]) == 32


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert r.json()["migration"] == r.json()["migration_head"]


async def test_openapi_is_3_1_and_documents_the_error_format(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    responses = doc["paths"]["/v1/threads/{thread_id}/messages"]["get"]["responses"]
    assert responses["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert (await client.get("/docs")).status_code == 200


async def test_oversized_body_is_413_in_the_error_format(api: httpx.AsyncClient, settings: Any) -> None:
    thread = (await api.get("/v1/threads")).json()  # any authenticated route will do for the limit
    assert thread["object"] == "list"
    big = "x" * (settings.server.max_request_bytes + 1)
    r = await api.post("/v1/tags", content=f'{{"name": "{big}"}}', headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

    async def chunks() -> Any:  # no Content-Length: the limit applies while reading
        for _ in range(3):
            yield b"x" * (settings.server.max_request_bytes // 2)

    for headers in ({}, {"Idempotency-Key": "big-one"}):
        r = await api.post("/v1/tags", content=chunks(), headers={"content-type": "application/json", **headers})
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "payload_too_large"
    assert (
        await api.post("/v1/tags", json={"name": "small"}, headers={"Idempotency-Key": "big-one"})
    ).status_code == 201
