"""``tags.service.get_or_create``: what the runtime's ``add_tag`` tool calls with the model's argument."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Tenant
from threadline.tags import service as tags


async def _get_or_create(sessionmaker: Any, tenant: Tenant, ref: str) -> tuple[str, str, str]:
    async with sessionmaker() as session, session.begin():
        tag = await tags.get_or_create(session, tenant.workspace_id, ref)
        return str(tag.public_id), tag.name, tag.color.value


async def _names(api: httpx.AsyncClient) -> list[str]:
    return sorted(t["name"] for t in (await api.get("/v1/tags")).json()["data"])


async def test_a_tag_is_found_by_id_then_by_name_in_any_case_else_created_blue(
    api: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    vip = (await api.post("/v1/tags", json={"name": "VIP", "color": "purple"})).json()
    assert await _get_or_create(sessionmaker, tenant, vip["id"]) == (vip["id"], "VIP", "purple")
    assert await _get_or_create(sessionmaker, tenant, "  vip ") == (vip["id"], "VIP", "purple")
    made_id, name, color = await _get_or_create(sessionmaker, tenant, " Refund ")
    assert (name, color) == ("Refund", "blue")
    assert await _get_or_create(sessionmaker, tenant, "REFUND") == (made_id, "Refund", "blue")
    assert await _names(api) == ["Refund", "VIP"]
    # The name is now taken for the API too, whatever its case.
    r = await api.post("/v1/tags", json={"name": "refund"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "tag_exists"


async def test_an_id_of_no_tag_here_is_taken_as_a_name(
    api: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, sessionmaker: Any
) -> None:
    theirs = await _get_or_create(sessionmaker, other_tenant, "theirs")
    made = await _get_or_create(sessionmaker, tenant, theirs[0])
    assert made[0] != theirs[0] and made[1] == theirs[0]
    assert await _names(api) == [theirs[0]]


async def test_a_long_name_is_cut_to_the_column_and_found_again(
    api: httpx.AsyncClient, tenant: Tenant, sessionmaker: Any
) -> None:
    long = "x" * 150
    made = await _get_or_create(sessionmaker, tenant, long)
    assert made[1] == "x" * 100
    assert await _get_or_create(sessionmaker, tenant, long.upper()) == made
