"""Request bodies for integrations of each type, for these tests and for the channels' tests.

Secrets are random per call (``secrets.token_hex``), so a test can look for them anywhere they must not be.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
MESSAGING_SERVICE_SID = "MG" + "fedcba9876543210" * 2
FROM_NUMBER = "+15005550006"
PHONE_NUMBER_ID = "106540352242922"
BUSINESS_ACCOUNT_ID = "102290129340398"


def sms_body(*, api_base_url: str | None = None, auth_token: str | None = None, **fields: Any) -> dict[str, Any]:
    """An ``sms`` (Twilio) integration with a sending number; ``fields`` override the top-level fields."""
    settings: dict[str, Any] = {"account_sid": ACCOUNT_SID, "from_number": FROM_NUMBER}
    if api_base_url is not None:
        settings["api_base_url"] = api_base_url
    body: dict[str, Any] = {
        "type": "sms",
        "name": "SMS line",
        "settings": settings,
        "secrets": {"auth_token": auth_token or secrets.token_hex(16)},
    }
    return {**body, **fields}


def whatsapp_body(
    *,
    api_base_url: str | None = None,
    access_token: str | None = None,
    app_secret: str | None = None,
    verify_token: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A ``whatsapp`` (Cloud API) integration; ``fields`` override the top-level fields."""
    settings: dict[str, Any] = {"phone_number_id": PHONE_NUMBER_ID, "business_account_id": BUSINESS_ACCOUNT_ID}
    if api_base_url is not None:
        settings["api_base_url"] = api_base_url
    body: dict[str, Any] = {
        "type": "whatsapp",
        "name": "WhatsApp line",
        "settings": settings,
        "secrets": {
            "access_token": access_token or "EAAG" + secrets.token_urlsafe(48),
            "app_secret": app_secret or secrets.token_hex(16),
            "verify_token": verify_token or secrets.token_urlsafe(16),
        },
    }
    return {**body, **fields}


async def create_integration(api: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    r = await api.post("/v1/integrations", json=body)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created
