"""The providers' webhooks, mounted at the root (not under /v1): they authenticate by the provider's
signature made with the integration's own secret, never by an API key, and are left out of the OpenAPI
document (providers call them, not API clients). See docs/channels_inbound.md.

Each channel of ``channels.registry`` brings its own: the ``router`` of ``channels/<name>/inbound.py``,
mounted at ``/channels/<name>``.

- ``POST /channels/twilio/{integration_id}/sms``: an incoming SMS (answered with empty TwiML).
- ``POST /channels/twilio/{integration_id}/status``: a delivery status callback.
- ``GET  /channels/whatsapp/{integration_id}/webhook``: Meta's verification handshake.
- ``POST /channels/whatsapp/{integration_id}/webhook``: a notification (messages, statuses).
"""

from __future__ import annotations

import importlib

from fastapi import APIRouter

from threadline.channels.registry import provider_names

router = APIRouter(prefix="/channels", tags=["channels"], include_in_schema=False)
for _name in provider_names():
    router.include_router(importlib.import_module(f"threadline.channels.{_name}.inbound").router, prefix=f"/{_name}")
