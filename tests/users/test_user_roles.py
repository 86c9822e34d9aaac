"""A user's console role through /v1: shown, set on create and update, never a password."""

from __future__ import annotations

import httpx


async def test_role_defaults_to_operator_and_can_be_set_and_changed(api: httpx.AsyncClient) -> None:
    plain = await api.post("/v1/users", json={"email": "op@example.com"})
    assert plain.status_code == 201 and plain.json()["role"] == "operator"
    admin = await api.post("/v1/users", json={"email": "boss@example.com", "role": "admin"})
    assert admin.status_code == 201 and admin.json()["role"] == "admin"
    user_id = plain.json()["id"]
    r = await api.patch(f"/v1/users/{user_id}", json={"role": "admin"})
    assert r.status_code == 200 and r.json()["role"] == "admin"
    r = await api.patch(f"/v1/users/{user_id}", json={"first_name": "Ada"})
    assert r.json()["role"] == "admin"  # left out: unchanged
    listed = (await api.get("/v1/users")).json()["data"]
    assert {u["email"]: u["role"] for u in listed} == {"op@example.com": "admin", "boss@example.com": "admin"}


async def test_bad_roles_and_passwords_are_422s_naming_the_field(api: httpx.AsyncClient) -> None:
    for body, param in [
        ({"email": "a@example.com", "role": "root"}, "role"),
        ({"email": "a@example.com", "role": None}, "role"),
        ({"email": "a@example.com", "password": "secret123"}, "password"),
        ({"email": "a@example.com", "password_hash": "x"}, "password_hash"),
    ]:
        r = await api.post("/v1/users", json=body)
        assert r.status_code == 422 and r.json()["error"]["param"] == param, r.text
        assert "secret123" not in r.text
    user = (await api.post("/v1/users", json={"email": "a@example.com"})).json()
    for body, param in [({"role": None}, "role"), ({"role": "ADMIN"}, "role"), ({"password": "x" * 10}, "password")]:
        r = await api.patch(f"/v1/users/{user['id']}", json=body)
        assert r.status_code == 422 and r.json()["error"]["param"] == param, r.text
    assert "password" not in str((await api.get(f"/v1/users/{user['id']}")).json())
