"""Integrations' typed settings per type and their write-only secrets: validation, encrypted storage, merging
on PATCH, the channels' view (``channel_credentials``), and the secrets never showing anywhere else."""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
import structlog
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integrations.helpers import (
    ACCOUNT_SID,
    FROM_NUMBER,
    MESSAGING_SERVICE_SID,
    create_integration,
    sms_body,
    whatsapp_body,
)
from threadline.audit.service import Actor
from threadline.config import Settings
from threadline.db.base import Base
from threadline.errors import Conflict, NotFound
from threadline.integrations.schemas import IntegrationUpdate
from threadline.integrations.service import channel_credentials, update_integration
from threadline.kit.secrets import SecretDecryptionError, secret_box
from threadline.models import Agent, Integration
from threadline.models.enums import ChannelType

Maker = async_sessionmaker[AsyncSession]


def _marker(label: str) -> str:
    """A secret value no other test uses, so finding it anywhere means it leaked from here."""
    return f"{label}{secrets.token_hex(12)}"


async def _row(sessionmaker: Maker, public_id: str) -> Any:
    table = Integration.__table__
    async with sessionmaker() as session:
        return (await session.execute(select(table).where(table.c.public_id == uuid.UUID(public_id)))).one()


async def _database_dump(sessionmaker: Maker) -> list[Any]:
    """Every value of every row of every table: what a database dump would hold."""
    values: list[Any] = []
    async with sessionmaker() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                values.extend(row)
    return values


def _assert_nowhere(markers: list[str], *, texts: list[str], values: Sequence[Any] = ()) -> None:
    for marker in markers:
        for text in texts:
            assert marker not in text, f"a secret leaked into: {text[:300]}"
        for value in values:
            if isinstance(value, bytes):
                assert marker.encode() not in value
            else:
                assert marker not in str(value)


async def _credentials(sessionmaker: Maker, settings: Settings, integration_id: str) -> Any:
    async with sessionmaker() as session:
        return await channel_credentials(session, workspace_id=None, integration_id=integration_id, settings=settings)


# ------------------------------------------------------------------------------------------------ settings


async def test_sms_settings_are_typed_and_stored_normalized(api: httpx.AsyncClient) -> None:
    created = await create_integration(
        api,
        sms_body(
            settings={
                "account_sid": ACCOUNT_SID,
                "messaging_service_sid": MESSAGING_SERVICE_SID,
                "api_base_url": "http://127.0.0.1:8999/twilio/",
                "status_callback": False,
            }
        ),
    )
    assert created["settings"] == {
        "account_sid": ACCOUNT_SID,
        "messaging_service_sid": MESSAGING_SERVICE_SID,
        "api_base_url": "http://127.0.0.1:8999/twilio",
        "status_callback": False,
    }
    assert created["secrets_set"] == ["auth_token"]

    base = {"account_sid": ACCOUNT_SID, "from_number": FROM_NUMBER}
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"from_number": FROM_NUMBER}, "settings.account_sid", "required"),
        ({**base, "account_sid": "AC123"}, "settings.account_sid", "AC followed by 32 hexadecimal digits"),
        ({**base, "account_sid": MESSAGING_SERVICE_SID}, "settings.account_sid", "account SID"),
        ({**base, "account_sid": "AC" + "g" * 32}, "settings.account_sid", "account SID"),
        ({**base, "account_sid": 12}, "settings.account_sid", "string"),
        ({**base, "from_number": "4155550100"}, "settings.from_number", "E.164"),
        ({**base, "from_number": "+04155550100"}, "settings.from_number", "E.164"),
        ({**base, "from_number": "+1234567890123456"}, "settings.from_number", "E.164"),
        ({**base, "from_number": "+1 415 555 0100"}, "settings.from_number", "E.164"),
        ({"account_sid": ACCOUNT_SID, "messaging_service_sid": "MG12"}, "settings.messaging_service_sid", "MG"),
        ({**base, "messaging_service_sid": MESSAGING_SERVICE_SID}, "settings", "exactly one of"),
        ({"account_sid": ACCOUNT_SID}, "settings", "exactly one of"),
        ({**base, "api_base_url": "ftp://api.twilio.com"}, "settings.api_base_url", "http"),
        ({**base, "api_base_url": "https://user:pw@api.twilio.com"}, "settings.api_base_url", "credentials"),
        ({**base, "api_base_url": "https://api.twilio.com/?region=us1"}, "settings.api_base_url", "query"),
        ({**base, "api_base_url": "https://" + "a" * 2050}, "settings.api_base_url", "2048"),
        ({**base, "status_callback": "sometimes"}, "settings.status_callback", "boolean"),
        ({**base, "region": "us1"}, "settings.region", "not a setting of sms integrations"),
    ]
    for settings, param, words in cases:
        r = await api.post("/v1/integrations", json=sms_body(settings=settings))
        assert r.status_code == 422, (settings, r.text)
        error = r.json()["error"]
        assert error["param"] == param and words in error["message"], (settings, error)
        assert error["message"].startswith(f"{param}: ")


async def test_whatsapp_settings_are_typed_and_stored_normalized(api: httpx.AsyncClient) -> None:
    body = whatsapp_body(settings={"phone_number_id": "1234567890"})
    created = await create_integration(api, body)
    assert created["type"] == "whatsapp"
    assert created["settings"] == {
        "phone_number_id": "1234567890",
        "api_base_url": "https://graph.facebook.com",
        "api_version": "v21.0",
    }
    assert created["secrets_set"] == ["access_token", "app_secret", "verify_token"]
    full = {
        "phone_number_id": "1",
        "business_account_id": "2",
        "api_base_url": "http://127.0.0.1:9000",
        "api_version": "v19.0",
    }
    created = await create_integration(api, whatsapp_body(settings=full))
    assert created["settings"] == full

    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "settings.phone_number_id"),
        ({"phone_number_id": 1234567890}, "settings.phone_number_id"),
        ({"phone_number_id": "12a"}, "settings.phone_number_id"),
        ({"phone_number_id": ""}, "settings.phone_number_id"),
        ({"phone_number_id": "1", "business_account_id": "acct"}, "settings.business_account_id"),
        ({"phone_number_id": "1", "api_version": "21.0"}, "settings.api_version"),
        ({"phone_number_id": "1", "api_base_url": "javascript:alert(1)"}, "settings.api_base_url"),
        ({"phone_number_id": "1", "account_sid": ACCOUNT_SID}, "settings.account_sid"),
    ]
    for settings, param in cases:
        r = await api.post("/v1/integrations", json=whatsapp_body(settings=settings))
        assert r.status_code == 422, (settings, r.text)
        assert r.json()["error"]["param"] == param, (settings, r.text)


async def test_patched_settings_are_checked_against_the_integrations_type(api: httpx.AsyncClient) -> None:
    sms = await create_integration(api, sms_body())
    r = await api.patch(f"/v1/integrations/{sms['id']}", json={"settings": {"phone_number_id": "1"}})
    assert r.status_code == 422 and r.json()["error"]["param"] == "settings.phone_number_id", r.text
    r = await api.patch(f"/v1/integrations/{sms['id']}", json={"settings": {"account_sid": ACCOUNT_SID}})
    assert r.status_code == 422 and "exactly one of" in r.json()["error"]["message"]
    wanted = {"account_sid": ACCOUNT_SID, "messaging_service_sid": MESSAGING_SERVICE_SID}
    r = await api.patch(f"/v1/integrations/{sms['id']}", json={"settings": wanted})
    assert r.status_code == 200, r.text
    assert r.json()["settings"] == {**wanted, "api_base_url": "https://api.twilio.com", "status_callback": True}
    assert r.json()["secrets_set"] == ["auth_token"]
    api_integration = await create_integration(api, {"type": "api"})
    r = await api.patch(f"/v1/integrations/{api_integration['id']}", json={"settings": {"anything": ["goes"]}})
    assert r.status_code == 200 and r.json()["settings"] == {"anything": ["goes"]}


# ------------------------------------------------------------------------------------------------- secrets


async def test_every_secret_of_the_type_is_required_on_create_and_no_other(api: httpx.AsyncClient) -> None:
    sms = sms_body()
    whatsapp = whatsapp_body()
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({k: v for k, v in sms.items() if k != "secrets"}, "secrets.auth_token", "secret_required"),
        ({**sms, "secrets": {}}, "secrets.auth_token", "secret_required"),
        (
            {**whatsapp, "secrets": {k: v for k, v in whatsapp["secrets"].items() if k != "verify_token"}},
            "secrets.verify_token",
            "secret_required",
        ),
        ({**whatsapp, "secrets": {}}, "secrets.access_token", "secret_required"),
        ({**sms, "secrets": {**sms["secrets"], "app_secret": "x"}}, "secrets.app_secret", "unknown_secret"),
        ({"type": "api", "secrets": {"auth_token": "x"}}, "secrets.auth_token", "unknown_secret"),
        ({**whatsapp, "secrets": {**whatsapp["secrets"], "Auth-Token": "x"}}, "secrets", "unknown_secret"),
    ]
    for body, param, code in cases:
        r = await api.post("/v1/integrations", json=body)
        assert r.status_code == 422, (body, r.text)
        error = r.json()["error"]
        assert (error["param"], error["code"]) == (param, code), (body, error)
    r = await api.post("/v1/integrations", json={"type": "api", "secrets": {}})
    assert r.status_code == 201 and r.json()["secrets_set"] == [], r.text
    assert (await create_integration(api, {"type": "api"}))["secrets_set"] == []


async def test_an_unknown_name_that_may_be_a_token_is_not_echoed(api: httpx.AsyncClient) -> None:
    token = secrets.token_hex(16)
    body = sms_body()
    body["secrets"] = {token: body["secrets"]["auth_token"]}
    r = await api.post("/v1/integrations", json=body)
    assert r.status_code == 422 and r.json()["error"]["param"] == "secrets", r.text
    assert token not in r.text and "auth_token" in r.json()["error"]["message"]


async def test_bad_secret_values_are_refused_without_echoing_them(api: httpx.AsyncClient) -> None:
    existing = await create_integration(api, sms_body())
    mark = _marker("bad")
    values: list[Any] = [
        "",
        f" {mark}",
        f"{mark}\n",
        f"a\x00{mark}",
        f"a\x1b{mark}",
        mark * 200,
        [mark],
        {"value": mark},
        None,
        12345,
    ]
    for value in values:
        for method, url in (("POST", "/v1/integrations"), ("PATCH", f"/v1/integrations/{existing['id']}")):
            body = sms_body(auth_token="placeholder") if method == "POST" else {}
            body["secrets"] = {"auth_token": value}
            r = await api.request(method, url, json=body)
            assert r.status_code == 422, (method, value, r.text)
            assert r.json()["error"]["param"] == "secrets.auth_token", (method, value, r.text)
            assert mark not in r.text and "12345" not in r.text, r.text
    # A lone surrogate, which httpx would not encode: sent as the JSON escape it is on the wire.
    raw = json.dumps(sms_body(auth_token=f"\ud800{mark}"))
    r = await api.post("/v1/integrations", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "secrets.auth_token", r.text
    assert mark not in r.text


async def test_secrets_never_appear_in_responses_errors_events_logs_or_the_database(
    api: httpx.AsyncClient, sessionmaker: Maker, caplog: pytest.LogCaptureFixture
) -> None:
    sms_token = _marker("twilio")
    wa = {"access_token": _marker("EAAG"), "app_secret": _marker("appsecret"), "verify_token": _marker("verify")}
    replaced = {"auth_token": _marker("newtwilio"), "app_secret": _marker("newappsecret")}
    refused = _marker("refused")
    markers = [sms_token, *wa.values(), *replaced.values(), refused]
    texts: list[str] = []

    async def call(method: str, url: str, body: Any = None, status: int = 200) -> dict[str, Any]:
        r = await api.request(method, url, json=body)
        texts.append(r.text)
        assert r.status_code == status, r.text
        result: dict[str, Any] = r.json()
        return result

    # Every standard-library log line at DEBUG (SQLAlchemy's statements with their parameters among them) and
    # every structlog line the app emits, while secrets go in and out.
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # whatever set it quieter before
    with structlog.testing.capture_logs() as struct_logs:
        sms = await call("POST", "/v1/integrations", sms_body(auth_token=sms_token), 201)
        whatsapp = await call("POST", "/v1/integrations", whatsapp_body(**wa), 201)
        await call("GET", f"/v1/integrations/{sms['id']}")
        await call("GET", f"/v1/integrations/{whatsapp['id']}")
        page = await call("GET", "/v1/integrations")
        assert {i["id"]: i["secrets_set"] for i in page["data"]} == {
            sms["id"]: ["auth_token"],
            whatsapp["id"]: ["access_token", "app_secret", "verify_token"],
        }
        sms_url, wa_url = f"/v1/integrations/{sms['id']}", f"/v1/integrations/{whatsapp['id']}"
        await call("PATCH", sms_url, {"secrets": {"auth_token": replaced["auth_token"]}})
        await call("PATCH", wa_url, {"secrets": {"app_secret": replaced["app_secret"]}})
        await call("PATCH", wa_url, {"name": "renamed", "enabled": False})
        # Refused requests that carry a secret: the error names the field, never the value.
        await call("PATCH", sms_url, {"type": "whatsapp", "secrets": {"auth_token": refused}}, 422)
        await call("PATCH", sms_url, {"settings": {}, "secrets": {"auth_token": refused}}, 422)
        await call("PATCH", sms_url, {"secrets": {"auth_token": refused, "x": "y"}}, 422)
        await call("POST", "/v1/integrations", {**sms_body(auth_token=refused), "agent_id": str(uuid.uuid4())}, 404)
        await call("POST", "/v1/integrations", {**sms_body(auth_token=refused), "unknown": 1}, 422)
    assert "INSERT INTO integrations" in caplog.text  # the logs were being captured
    for text in texts:
        body = json.loads(text)
        for item in body.get("data", [body]):
            assert "secrets" not in item and "secrets_ciphertext" not in item
    # The database as a dump would show it: the events (integration changes record none), jobs and all.
    values = await _database_dump(sessionmaker)
    _assert_nowhere(markers, texts=[*texts, caplog.text, repr(struct_logs)], values=values)


async def test_the_row_holds_one_encrypted_json_object_and_the_names(
    api: httpx.AsyncClient, sessionmaker: Maker, settings: Settings
) -> None:
    given = {"access_token": _marker("EAAG"), "app_secret": _marker("app"), "verify_token": _marker("verify")}
    created = await create_integration(api, whatsapp_body(**given))
    row = await _row(sessionmaker, created["id"])
    assert isinstance(row.secrets_ciphertext, bytes) and row.secret_names == sorted(given)
    assert secret_box(settings).decrypt_json(row.secrets_ciphertext) == given
    for value in given.values():
        assert value.encode() not in row.secrets_ciphertext
        assert all(value not in str(column) for column in row)
    # Each encryption is fresh: the same secrets stored again make another ciphertext.
    again = await _row(sessionmaker, (await create_integration(api, whatsapp_body(**given)))["id"])
    assert again.secrets_ciphertext != row.secrets_ciphertext
    # An integration without secrets stores no ciphertext at all.
    assert (await _row(sessionmaker, (await create_integration(api, {"type": "api"}))["id"])).secrets_ciphertext is None


async def test_patch_replaces_the_secrets_it_names_and_keeps_the_others(
    api: httpx.AsyncClient, sessionmaker: Maker, settings: Settings
) -> None:
    first = {"access_token": _marker("EAAG"), "app_secret": _marker("app"), "verify_token": _marker("verify")}
    created = await create_integration(api, whatsapp_body(**first))
    url = f"/v1/integrations/{created['id']}"

    async def stored() -> dict[str, str]:
        return dict((await _credentials(sessionmaker, settings, created["id"])).secrets)

    new_token = _marker("EAAG")
    r = await api.patch(url, json={"secrets": {"access_token": new_token}})
    assert r.status_code == 200 and r.json()["secrets_set"] == ["access_token", "app_secret", "verify_token"]
    assert await stored() == {**first, "access_token": new_token}

    assert (await api.patch(url, json={"secrets": {}})).status_code == 200
    r = await api.patch(url, json={"settings": {"phone_number_id": "42"}, "name": "new"})
    assert r.status_code == 200 and r.json()["settings"]["phone_number_id"] == "42"
    assert "business_account_id" not in r.json()["settings"]  # settings are replaced whole
    assert await stored() == {**first, "access_token": new_token}

    # A refused PATCH changes nothing, its valid secrets included.
    for body, param in [
        ({"settings": {"phone_number_id": "x"}, "secrets": {"app_secret": _marker("app")}}, "settings.phone_number_id"),
        ({"secrets": {"app_secret": _marker("app"), "auth_token": "x"}}, "secrets.auth_token"),
        ({"secrets": {"app_secret": _marker("app"), "verify_token": ""}}, "secrets.verify_token"),
        ({"secrets": {"access_token": None}}, "secrets.access_token"),
        ({"secrets": None}, "secrets"),
    ]:
        r = await api.patch(url, json=body)
        assert r.status_code == 422 and r.json()["error"]["param"] == param, (body, r.text)
    assert await stored() == {**first, "access_token": new_token}
    assert (await api.get(url)).json()["name"] == "new"

    api_integration = await create_integration(api, {"type": "api"})
    r = await api.patch(f"/v1/integrations/{api_integration['id']}", json={"secrets": {"token": "x"}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_secret", r.text


async def test_secrets_no_key_opens_can_only_be_replaced_whole(
    api: httpx.AsyncClient, tenant: Any, sessionmaker: Maker, settings: Settings
) -> None:
    created = await create_integration(api, whatsapp_body())
    other = settings.replace(secret_keys=SecretStr(Fernet.generate_key().decode()))
    replacement = {"access_token": _marker("EAAG"), "app_secret": _marker("app"), "verify_token": _marker("v")}

    async def patch(secrets_: dict[str, str]) -> None:
        async with sessionmaker() as session, session.begin():
            data = IntegrationUpdate.model_validate({"secrets": secrets_})
            await update_integration(
                session,
                workspace_id=tenant.workspace_id,
                integration_id=created["id"],
                data=data,
                settings=other,
                actor=Actor.cli(),
            )

    with pytest.raises(Conflict) as refused:
        await patch({"access_token": replacement["access_token"]})
    assert refused.value.code == "secrets_unreadable" and refused.value.param == "secrets"
    assert "app_secret, verify_token" in refused.value.message
    assert replacement["access_token"] not in refused.value.message

    await patch(replacement)
    assert (await _credentials(sessionmaker, other, created["id"])).secrets == replacement
    with pytest.raises(SecretDecryptionError) as unreadable:
        await _credentials(sessionmaker, settings, created["id"])
    assert all(value not in str(unreadable.value) for value in replacement.values())


# ------------------------------------------------------------------------------------- channel_credentials


async def test_channel_credentials_by_public_id_without_the_workspace(
    api: httpx.AsyncClient, tenant: Any, other_tenant: Any, sessionmaker: Maker, settings: Settings
) -> None:
    agent = (await api.post("/v1/agents", json={"name": "SMS agent"})).json()
    token = _marker("tw")
    created = await create_integration(api, sms_body(auth_token=token, agent_id=agent["id"]))
    async with sessionmaker() as session:
        agent_row = (await session.execute(select(Agent).where(Agent.public_id == uuid.UUID(agent["id"])))).scalar_one()
    row = await _row(sessionmaker, created["id"])

    creds = await _credentials(sessionmaker, settings, created["id"])
    assert (creds.id, creds.public_id, creds.workspace_id) == (row.id, uuid.UUID(created["id"]), tenant.workspace_id)
    assert (creds.type, creds.agent_id, creds.enabled) == (ChannelType.SMS, agent_row.id, True)
    assert creds.settings == created["settings"] and creds.secrets == {"auth_token": token}
    for shown in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert token not in shown and "auth_token" in shown

    async with sessionmaker() as session:
        for workspace_id, integration_id in [
            (None, uuid.UUID(created["id"])),
            (None, row.id),
            (tenant.workspace_id, row.id),
            (tenant.workspace_id, created["id"]),
        ]:
            found = await channel_credentials(
                session, workspace_id=workspace_id, integration_id=integration_id, settings=settings
            )
            assert found == creds, (workspace_id, integration_id)
        for workspace_id, integration_id in [
            (other_tenant.workspace_id, created["id"]),  # another workspace's: not found, even by public id
            (other_tenant.workspace_id, row.id),
            (None, str(uuid.uuid4())),
            (None, "not-an-id"),
            (None, str(row.id)),  # a string is only ever a public id: no reaching rows by counting
        ]:
            with pytest.raises(NotFound):
                await channel_credentials(
                    session, workspace_id=workspace_id, integration_id=integration_id, settings=settings
                )

    api_integration = await create_integration(api, {"type": "api"})
    plain = await _credentials(sessionmaker, settings, api_integration["id"])
    assert plain.secrets == {} and plain.type == ChannelType.API and plain.agent_id is None
    r = await api.patch(f"/v1/integrations/{created['id']}", json={"enabled": False})
    assert r.status_code == 200
    assert (await _credentials(sessionmaker, settings, created["id"])).enabled is False
