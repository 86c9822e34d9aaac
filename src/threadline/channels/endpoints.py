"""The providers' webhooks, mounted at the root (not under /v1): they authenticate by the provider's
signature made with the integration's own secret, never by an API key, and are left out of the OpenAPI
document (providers call them, not API clients). See docs/channels_inbound.md.

- ``POST /channels/twilio/{integration_id}/sms``: an incoming SMS (answered with empty TwiML).
- ``POST /channels/twilio/{integration_id}/status``: a delivery status callback.
- ``GET  /channels/whatsapp/{integration_id}/webhook``: Meta's verification handshake.
- ``POST /channels/whatsapp/{integration_id}/webhook``: a notification (messages, statuses).
"""

from __future__ import annotations

from fastapi import APIRouter

from threadline.channels.twilio.inbound import router as twilio
from threadline.channels.whatsapp.inbound import router as whatsapp

router = APIRouter(prefix="/channels", tags=["channels"], include_in_schema=False)
router.include_router(twilio, prefix="/twilio")
router.include_router(whatsapp, prefix="/whatsapp")
