"""Defect 7 of issue 12, staged against a real server: Twilio's signature is the HMAC of the URL followed by
every parameter's name and value, sorted, with nothing between them. So a captured incoming-SMS request with
``NumMedia=0`` left out and ``NumMedia0`` appended to ``MessageSid`` is signed exactly as the original was
(the `twilio` package's own ``RequestValidator`` says so below), and each such variant carried a "new"
MessageSid: the same SMS was stored again each time, starting a run each time. Only Twilio's id formats
are taken now: every variant is a 400 and the message is stored once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from twilio.request_validator import RequestValidator

from tests.channels.test_twilio_inbound import quiet_agent, sms_line
from tests.conftest import make_tenant
from tests.livesrv import live_server
from threadline.config import Settings


@pytest.fixture(scope="module")
def base(database_url: str, engine: Any, settings: Settings) -> Iterator[str]:
    assert settings.database.secret_keys is not None
    with live_server(database_url, THREADLINE_SECRET_KEYS=settings.database.secret_keys.get_secret_value()) as url:
        yield url


@pytest.fixture
async def live(base: str, sessionmaker: Any) -> AsyncIterator[httpx.AsyncClient]:
    tenant = await make_tenant(sessionmaker)
    async with httpx.AsyncClient(base_url=base, headers=tenant.headers, timeout=10) as c:
        yield c


def _moved(params: dict[str, str], into: str, *absorbed: str) -> dict[str, str]:
    """``params`` with each of ``absorbed`` (the parameters right after ``into`` in sorted order) left out
    and written, name and value, at the end of ``into``'s value: the same text for the signature."""
    names = sorted(params)
    at = names.index(into)
    assert names[at + 1 : at + 1 + len(absorbed)] == list(absorbed), "not the parameters that follow"
    changed = {k: v for k, v in params.items() if k not in absorbed}
    changed[into] = params[into] + "".join(name + params[name] for name in absorbed)
    return changed


async def test_a_captured_sms_rearranged_under_the_same_signature_is_refused_and_stored_once(
    live: httpx.AsyncClient, base: str
) -> None:
    line = await sms_line(live, agent=await quiet_agent(live))
    url = base + line.sms_path
    captured = line.sms(body="Please cancel my order")
    signed = RequestValidator(line.auth_token).compute_signature(url, captured)
    variants = [
        _moved(captured, "MessageSid", "NumMedia"),
        _moved(captured, "MessageSid", "NumMedia", "NumSegments"),
        _moved(captured, "SmsSid", "SmsStatus"),
        _moved(captured, "AccountSid", "ApiVersion"),
    ]
    for variant in variants:  # the premise: Twilio's own validator takes each of them
        assert RequestValidator(line.auth_token).validate(url, variant, signed)

    async with httpx.AsyncClient(base_url=base, timeout=10) as twilio:  # what Twilio is: no API key
        first = await twilio.post(line.sms_path, data=captured, headers={"X-Twilio-Signature": signed})
        assert first.status_code == 200, first.text
        answers = [
            await twilio.post(line.sms_path, data=variant, headers={"X-Twilio-Signature": signed})
            for variant in variants
        ]
        again = await twilio.post(line.sms_path, data=captured, headers={"X-Twilio-Signature": signed})

    assert again.status_code == 200, again.text  # the exact request again: Twilio's retry, stores nothing new
    r = await live.get("/v1/threads", params={"limit": 100})
    (thread,) = [t for t in r.json()["data"] if t["integration_id"] == line.id]
    r = await live.get(f"/v1/threads/{thread['id']}/messages", params={"limit": 100})
    stored = [(m["content"], m["external_id"]) for m in r.json()["data"]]
    assert stored == [("Please cancel my order", captured["MessageSid"])]
    refused = [(r.status_code, r.json()["error"]["param"] if r.status_code >= 400 else r.text) for r in answers]
    assert refused == [(400, "MessageSid"), (400, "MessageSid"), (400, "SmsSid"), (400, "AccountSid")]
