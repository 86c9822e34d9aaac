"""SMS and WhatsApp conversations through the real deployments, not a worker in the test: the app with its
embedded workers (``THREADLINE_RUN_WORKERS=true``, as ``threadline serve`` runs it), and an API process
without workers beside a separate ``threadline worker``. Everything goes over real HTTP: the providers'
signed webhooks to the server, the sends to the providers' stand-ins, the readback through /v1 and
Feather. What this proves beyond the in-process tests: each process imports the ``channels.deliver`` task
and takes the channel settings (public base URL, private URLs allowed, the secret key, the debounce window,
the backoff) from its environment."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.channels import test_twilio_inbound as sms
from tests.channels import test_whatsapp_inbound as wa
from tests.conftest import Tenant, make_tenant
from tests.factories import create_agent
from tests.fakes.twilio_server import TwilioStandIn
from tests.fakes.whatsapp_server import WhatsAppStandIn
from tests.jobs.test_processes import _start, _stop
from tests.livesrv import free_port, live_server, server_log
from threadline.config import Settings
from threadline.workspaces.bootstrap import DEMO_FLOW

WITHIN_S = 20.0  # generous: a bound on a wait that fails with the processes' logs, never a timing check
BUTTONS = "\n- Talk to sales\n- Get support"
NEXT_QUESTION = "Happy to help. What's your name?"


def channel_env(settings: Settings, base: str) -> dict[str, str]:
    """What both kinds of process need to take part in a conversation on a channel: the address the providers
    reach (Twilio's StatusCallback, and the URL its signatures are checked against), the stand-ins on
    loopback allowed, the test run's key (the API encrypts the integrations' secrets, the worker decrypts
    them), no debounce, quick retries and a worker that polls often (SQLite has no wake-up across
    processes)."""
    assert settings.database.secret_keys is not None
    return {
        "THREADLINE_PUBLIC_BASE_URL": base,
        "THREADLINE_CHANNEL_ALLOW_PRIVATE_URLS": "true",
        "THREADLINE_SECRET_KEYS": settings.database.secret_keys.get_secret_value(),
        "THREADLINE_RUN_DEBOUNCE_MESSAGING_S": "0",
        "THREADLINE_JOB_BACKOFF_BASE_S": "0.1",
        "THREADLINE_JOB_BACKOFF_CAP_S": "0.5",
        "THREADLINE_WORKER_POLL_INTERVAL_S": "0.1",
    }


class Deployment:
    """A running deployment: its base URL, its worker process if it has one, and where its processes log
    (shown when a wait fails)."""

    def __init__(
        self, base: str, worker: subprocess.Popen[bytes] | None = None, worker_log: Path | None = None
    ) -> None:
        self.base = base
        self.worker = worker
        self.worker_log = worker_log

    def worker_started(self) -> None:
        """Wait for the worker's start-up line: a worker stopped before it installs its signal handlers
        would not exit 0, and the fixture checks that it does."""
        assert self.worker is not None and self.worker_log is not None
        deadline = time.monotonic() + WITHIN_S
        while "running on" not in self.worker_log.read_text(errors="replace"):
            if self.worker.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the worker did not start\n{self.logs()}")
            time.sleep(0.05)

    def stop_worker(self) -> None:
        if self.worker is not None:
            _stop(self.worker)

    @property
    def worker_exit(self) -> int | None:
        return self.worker.returncode if self.worker is not None else None

    def logs(self) -> str:
        parts = [f"--- server\n{server_log(self.base)[-4000:]}"]
        if self.worker_log is not None and self.worker_log.exists():
            parts.append(f"--- worker\n{self.worker_log.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    async def until(self, check: Callable[[], Awaitable[bool]], what: str) -> None:
        deadline = time.monotonic() + WITHIN_S
        while not await check():
            if self.worker is not None and self.worker.poll() is not None:
                pytest.fail(f"the worker exited while waiting for {what}\n{self.logs()}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}\n{self.logs()}")
            await asyncio.sleep(0.05)


@pytest.fixture
def embedded(database_url: str, engine: Any, settings: Settings) -> Iterator[Deployment]:
    """One server process running the API and the workers. For its one test only: its workers claim every
    job of the database, so they must be gone before another deployment's test starts."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with live_server(database_url, port=port, THREADLINE_RUN_WORKERS="true", **channel_env(settings, base)):
        yield Deployment(base)


@pytest.fixture(scope="module")
def split(
    database_url: str, engine: Any, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """An API process without workers and a ``threadline worker`` process (all kinds: the default set-up)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environment = channel_env(settings, base)
    log = tmp_path_factory.mktemp("channel-processes") / "worker.log"
    worker_env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    worker_env.update(THREADLINE_DATABASE_URL=database_url, THREADLINE_LOG_LEVEL="warning", **environment)
    with live_server(database_url, port=port, THREADLINE_RUN_WORKERS="false", **environment):
        deployment = Deployment(base, _start(["worker"], worker_env, log), log)
        try:
            deployment.worker_started()
            yield deployment
        finally:
            deployment.stop_worker()
        assert deployment.worker_exit == 0, deployment.logs()


@contextlib.asynccontextmanager
async def clients(deployment: Deployment, tenant: Tenant) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """The tenant's API client, and the provider's side (no API key: its requests are signed)."""
    async with (
        httpx.AsyncClient(base_url=deployment.base, headers=tenant.headers, timeout=10) as api,
        httpx.AsyncClient(base_url=deployment.base, timeout=10) as provider,
    ):
        yield api, provider


async def demo_agent(api: httpx.AsyncClient) -> dict[str, Any]:
    """The demo flow, with no debounce of its own: the window the process was given applies."""
    return await create_agent(api, name="Demo", version={"mode": "FLOW", "provider": "flow", "flow": DEMO_FLOW})


async def message_at(api: httpx.AsyncClient, thread_id: str, index: int) -> dict[str, Any]:
    messages = await sms.messages_of(api, thread_id)
    return messages[index] if len(messages) > index else {}


async def reached(
    deployment: Deployment, api: httpx.AsyncClient, thread_id: str, index: int, status: str
) -> dict[str, Any]:
    async def check() -> bool:
        return (await message_at(api, thread_id, index)).get("status") == status

    await deployment.until(check, f"message {index} of the thread to be {status}")
    return await message_at(api, thread_id, index)


async def requests_reached(deployment: Deployment, stand_in: TwilioStandIn | WhatsAppStandIn, count: int) -> None:
    async def check() -> bool:
        return len(stand_in.requests) >= count

    await deployment.until(check, f"{count} request(s) at the {stand_in.name}")


async def twilio_posts(
    provider: httpx.AsyncClient, url: str, params: dict[str, str], auth_token: str
) -> httpx.Response:
    """Twilio's webhook request: form-encoded, signed over the exact URL it calls."""
    return await provider.post(url, data=params, headers=sms.sign(auth_token, url, params))


async def meta_posts(provider: httpx.AsyncClient, line: wa.Line, document: dict[str, Any]) -> httpx.Response:
    """Meta's webhook request: JSON, with the HMAC-SHA256 of the raw body under the app secret."""
    body = json.dumps(document).encode()
    headers = {"content-type": "application/json", "x-hub-signature-256": wa.signature(line.app_secret, body)}
    return await provider.post(line.path, content=body, headers=headers)


# ------------------------------------------------------------------------------------------ SMS


async def sms_conversation(deployment: Deployment, tenant: Tenant, twilio: TwilioStandIn) -> None:
    """The demo flow over SMS: its greeting sent with the buttons as lines and a StatusCallback to the
    deployment's public URL, Twilio's delivered and read reports shown in Feather, then a typed button
    answered by the flow's next question."""
    async with clients(deployment, tenant) as (api, provider):
        agent = await demo_agent(api)
        line = await sms.sms_line(
            api,
            agent=agent,
            account_sid=twilio.account_sid,
            auth_token=twilio.auth_token,
            api_base_url=twilio.base_url,
        )
        inbound_url = deployment.base + line.sms_path
        r = await twilio_posts(provider, inbound_url, line.sms(body="hi"), line.auth_token)
        assert (r.status_code, r.text) == (200, sms.EMPTY_TWIML)
        (thread,) = await sms.threads_of_line(api, line)

        await requests_reached(deployment, twilio, 1)
        reply = await reached(deployment, api, thread["id"], 1, "SENT")
        (request,) = twilio.requests
        (resource,) = twilio.messages
        assert reply["type"] == "button" and reply["content"].startswith("Hi there!")
        assert request.form["To"] == sms.CUSTOMER
        assert request.form["Body"] == reply["content"] + BUTTONS
        assert request.form["StatusCallback"] == f"{deployment.base}{line.status_path}?message={reply['id']}"
        assert reply["external_id"] == resource["sid"]

        for status in ("delivered", "read"):
            url, params = twilio.status_callback(resource["sid"], status)
            assert url is not None and url.startswith(deployment.base + "/")
            r = await twilio_posts(provider, url, params, line.auth_token)
            assert r.status_code == 200, r.text

        r = await provider.get(f"/feather/api/v1/threads/{thread['id']}/messages", headers={"X-API-Key": tenant.key})
        assert r.status_code == 200, r.text
        shown = {m["id"]: m for m in r.json()["thread"]["messages"]}[reply["id"]]
        assert (shown["direction"], shown["status"], shown["twilioMessageSid"]) == ("OUTBOUND", "READ", resource["sid"])
        assert shown["sentAt"] and shown["deliveredAt"] and shown["readAt"]

        r = await twilio_posts(provider, inbound_url, line.sms(body="Talk to sales"), line.auth_token)
        assert r.status_code == 200, r.text
        await requests_reached(deployment, twilio, 2)
        question = twilio.requests[1]
        assert (question.form["To"], question.form["Body"]) == (sms.CUSTOMER, NEXT_QUESTION)
        answered = await reached(deployment, api, thread["id"], 3, "SENT")
        assert answered["content"] == NEXT_QUESTION
        assert line.auth_token not in deployment.logs()


async def test_an_sms_conversation_through_the_server_with_embedded_workers(
    embedded: Deployment, sessionmaker: Any, twilio: TwilioStandIn
) -> None:
    await sms_conversation(embedded, await make_tenant(sessionmaker), twilio)


async def test_an_sms_conversation_through_an_api_process_and_a_worker_process(
    split: Deployment, sessionmaker: Any, twilio: TwilioStandIn
) -> None:
    await sms_conversation(split, await make_tenant(sessionmaker), twilio)


# ------------------------------------------------------------------------------------------ WhatsApp


async def test_a_whatsapp_conversation_through_an_api_process_and_a_worker_process(
    split: Deployment, sessionmaker: Any, whatsapp: WhatsAppStandIn
) -> None:
    tenant = await make_tenant(sessionmaker)
    async with clients(split, tenant) as (api, provider):
        agent = await demo_agent(api)
        line, _ = await wa.whatsapp_line(
            api,
            agent=agent,
            phone_number_id=whatsapp.phone_number_id,
            access_token=whatsapp.access_token,
            api_base_url=whatsapp.base_url,
        )
        r = await meta_posts(provider, line, line.notification(wa.wa_message("text", {"body": "hi"})))
        assert r.status_code == 200, r.text
        thread = await wa.the_thread(api, line)

        await requests_reached(split, whatsapp, 1)
        reply = await reached(split, api, thread["id"], 1, "SENT")
        (sent,) = whatsapp.messages
        assert sent["to"] == "+" + wa.WA_ID
        assert (sent["type"], sent["interactive"]["type"]) == ("interactive", "button")
        assert sent["interactive"]["body"] == {"text": reply["content"]}
        assert [b["reply"] for b in sent["interactive"]["action"]["buttons"]] == [
            {"id": "sales", "title": "Talk to sales"},
            {"id": "support", "title": "Get support"},
        ]
        assert sent["biz_opaque_callback_data"] == reply["id"]
        assert reply["external_id"] == sent["id"]

        r = await meta_posts(provider, line, whatsapp.status_notification(sent["id"], "delivered"))
        assert r.status_code == 200, r.text
        delivered = await message_at(api, thread["id"], 1)
        assert delivered["status"] == "DELIVERED" and delivered["delivered_at"] is not None

        pressed = {"type": "button_reply", "button_reply": {"id": "sales", "title": "Talk to sales"}}
        r = await meta_posts(provider, line, line.notification(wa.wa_message("interactive", pressed)))
        assert r.status_code == 200, r.text
        await requests_reached(split, whatsapp, 2)
        question = whatsapp.messages[1]
        assert (question["type"], question["text"]["body"]) == ("text", NEXT_QUESTION)
        assert line.access_token not in split.logs()
