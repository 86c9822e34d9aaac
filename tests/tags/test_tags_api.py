from __future__ import annotations

import httpx


async def test_create_get_list_update_delete_tag(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/tags", json={"name": "vip", "color": "purple"})
    assert r.status_code == 201, r.text
    tag = r.json()
    assert tag["object"] == "tag" and tag["name"] == "vip" and tag["color"] == "purple"
    assert (await api.get(f"/v1/tags/{tag['id']}")).json() == tag
    r = await api.patch(f"/v1/tags/{tag['id']}", json={"color": "red"})
    assert r.status_code == 200 and r.json()["color"] == "red"
    page = (await api.get("/v1/tags")).json()
    assert page["object"] == "list" and [t["id"] for t in page["data"]] == [tag["id"]]
    assert page["first_id"] == page["last_id"] == tag["id"] and page["has_more"] is False
    assert (await api.delete(f"/v1/tags/{tag['id']}")).status_code == 204
    r = await api.get(f"/v1/tags/{tag['id']}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_duplicate_tag_name_is_a_409(api: httpx.AsyncClient) -> None:
    assert (await api.post("/v1/tags", json={"name": "Billing"})).status_code == 201
    r = await api.post("/v1/tags", json={"name": "billing"})
    assert r.status_code == 409 and r.json()["error"]["param"] == "name"


async def test_unknown_colour_is_a_422_naming_the_field(api: httpx.AsyncClient) -> None:
    r = await api.post("/v1/tags", json={"name": "x", "color": "teal"})
    assert r.status_code == 422
    assert r.json()["error"]["param"] == "color"
