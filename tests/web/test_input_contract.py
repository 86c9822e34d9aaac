"""Native inputs take what the OpenAPI document says and nothing it does not: JSON's own booleans and numbers,
and one value per query parameter (schemathesis's negative cases found both taken silently)."""

from __future__ import annotations

import httpx
import pytest
from tests.factories import create_agent, create_thread


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/webhooks", {"url": "https://hooks.example.com/x", "enabled": 0}, "enabled"),
        ("/v1/webhooks", {"url": "https://hooks.example.com/x", "enabled": "true"}, "enabled"),
        ("/v1/agents", {"name": "a", "version": {"mode": "PROMPT", "max_tokens": "5"}}, "version.max_tokens"),
        ("/v1/agents", {"name": "a", "version": {"mode": "PROMPT", "max_tokens": True}}, "version.max_tokens"),
        ("/v1/agents", {"name": "a", "version": {"mode": "PROMPT", "temperature": "0.5"}}, "version.temperature"),
        ("/v1/threads", {"agent_id": "x", "end_user_id": "y", "active": 1}, "active"),
    ],
)
async def test_a_boolean_or_number_in_another_json_type_is_a_422_naming_the_field(
    api: httpx.AsyncClient, path: str, body: dict[str, object], param: str
) -> None:
    r = await api.post(path, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["param"] == param


async def test_integral_floats_are_integers_and_integers_are_numbers(api: httpx.AsyncClient) -> None:
    # JSON Schema's "integer" takes 5.0, and "number" takes 1: a client generated from the document may send them.
    version = {"mode": "PROMPT", "model": "gpt-4o-mini", "max_tokens": 5.0, "temperature": 1}
    agent = await create_agent(api, version=version)
    assert agent["current_version"]["max_tokens"] == 5
    assert agent["current_version"]["temperature"] == 1.0


async def test_an_integration_setting_in_another_json_type_is_a_422(api: httpx.AsyncClient) -> None:
    settings = {"account_sid": "AC" + "0" * 32, "from_number": "+14155550100", "status_callback": 0}
    r = await api.post("/v1/integrations", json={"type": "sms", "settings": settings, "secrets": {"auth_token": "t"}})
    assert r.status_code == 422 and r.json()["error"]["param"] == "settings.status_callback"


async def test_a_query_parameter_given_twice_is_a_422_naming_it(api: httpx.AsyncClient) -> None:
    thread = await create_thread(api)
    r = await api.get("/v1/threads", params=[("active", "true"), ("active", "false")])
    assert r.status_code == 422 and r.json()["error"]["param"] == "active"
    r = await api.get(f"/v1/threads/{thread['id']}/messages", params=[("limit", "1"), ("order", "asc"), ("limit", "2")])
    assert r.status_code == 422 and r.json()["error"]["param"] == "limit"
    assert (await api.get("/v1/threads", params={"active": "true", "limit": "1"})).status_code == 200
