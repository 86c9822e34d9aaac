"""The channels' tests share the providers' stand-ins on 127.0.0.1 and the clients the providers are to
the app (no API key: their signatures authenticate them)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import structlog

from tests.dialects.conftest import provider  # noqa: F401 - fixture: the scripted model, by the end user's message
from tests.fakes.twilio_server import TwilioStandIn
from tests.fakes.whatsapp_server import WhatsAppStandIn
from threadline.channels import inbound
from threadline.channels.twilio import inbound as twilio_inbound
from threadline.channels.whatsapp import inbound as whatsapp_inbound

HOST = "http://testserver"


@pytest.fixture
def twilio() -> Iterator[TwilioStandIn]:
    with TwilioStandIn() as server:
        yield server


@pytest.fixture
def whatsapp() -> Iterator[WhatsAppStandIn]:
    with WhatsAppStandIn() as server:
        yield server


@pytest.fixture
async def twilio_side(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """What Twilio is to the app: a client with no API key."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=HOST) as c:
        yield c


@pytest.fixture
async def meta_side(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """What Meta is to the app: a client with no API key."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=HOST) as c:
        yield c


@pytest.fixture
def channel_logs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the inbound channel modules log, as structlog entries (the app's loggers are cached at start-up,
    so each module's logger is swapped for one that records)."""
    capture = structlog.testing.LogCapture()
    logger = structlog.wrap_logger(structlog.PrintLogger(io.StringIO()), processors=[capture])
    for module in (inbound, twilio_inbound, whatsapp_inbound):
        monkeypatch.setattr(module, "log", logger)
    return capture.entries
