"""Logs name objects by their public ids, as the API shows them, never by internal row ids: a real server
(JSON logs, debug level, its embedded workers) takes an SMS in, lets a FLOW agent answer it (a run), fails
to send the answer through a Twilio stand-in (a retry, then for good) and delivers the message events to a
webhook receiver that fails once; then every ``*_id`` in its log must be a public id. Jobs have none:
``job_id`` is the job's number."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.channels import test_twilio_inbound as sms
from tests.channels.test_channel_processes import Deployment, channel_env, demo_agent, reached, twilio_posts
from tests.conftest import make_tenant
from tests.fakes.twilio_server import TwilioError, TwilioStandIn
from tests.livesrv import _LOGS, free_port, live_server
from tests.webhooks.conftest import create_webhook, deliveries, settled
from tests.webhooks.receiver import Receiver
from threadline.config import Settings

ROW_IDS_ALLOWED = {"job_id"}  # jobs have no public id
# In a line that is not JSON: `something_id=123` (a UUID may start with digits, but never ends there).
CONSOLE_ROW_ID = re.compile(r"\b(\w+_id)=(\d+)(?=[\s,}]|$)")


@pytest.fixture
def twilio() -> Iterator[TwilioStandIn]:
    with TwilioStandIn() as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver().running() as r:
        yield r


@pytest.fixture
def server(database_url: str, engine: Any, settings: Settings) -> Iterator[Deployment]:
    """One server with its workers, for this test alone (its workers claim every job of the database)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **channel_env(settings, base),
        "THREADLINE_RUN_WORKERS": "true",
        "THREADLINE_LOG_LEVEL": "debug",
        "THREADLINE_LOG_FORMAT": "json",
        "THREADLINE_WEBHOOK_ALLOW_PRIVATE_URLS": "true",
        "THREADLINE_WEBHOOK_RETRY_SCHEDULE_S": "0.2,0.2",
    }
    with live_server(database_url, port=port, **env):
        yield Deployment(base)


def _server_log(base: str) -> str:
    return Path(_LOGS[base]).read_text(errors="replace")


def _row_ids(value: Any, path: str = "") -> list[str]:
    """``key=value`` of every ``*_id`` in a log object (nested too) whose value is an integer, or a string of
    digits, but the keys allowed."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            integer = isinstance(item, int) and not isinstance(item, bool)
            digits = isinstance(item, str) and item.isdigit()
            if str(key).endswith("_id") and key not in ROW_IDS_ALLOWED and (integer or digits):
                found.append(f"{where}={item}")
            found += _row_ids(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _row_ids(item, f"{path}[{index}]")
    return found


async def test_a_conversations_log_names_runs_messages_deliveries_and_webhooks_by_their_public_ids(
    server: Deployment, sessionmaker: Any, twilio: TwilioStandIn, receiver: Receiver
) -> None:
    tenant = await make_tenant(sessionmaker)
    # The first send fails as Twilio fails transiently (retried), the second for good (a bad number).
    twilio.script(TwilioError.server_error(), TwilioError.invalid_to())
    receiver.behave("/ids", fail=1, status=502)
    async with (
        httpx.AsyncClient(base_url=server.base, headers=tenant.headers, timeout=10) as api,
        httpx.AsyncClient(base_url=server.base, timeout=10) as provider,
    ):
        hook = await create_webhook(api, receiver.url("/ids"), event_types=["message.created"])
        agent = await demo_agent(api)
        line = await sms.sms_line(
            api,
            agent=agent,
            account_sid=twilio.account_sid,
            auth_token=twilio.auth_token,
            api_base_url=twilio.base_url,
        )
        r = await twilio_posts(provider, server.base + line.sms_path, line.sms(body="hi"), line.auth_token)
        assert r.status_code == 200, r.text
        (thread,) = await sms.threads_of_line(api, line)
        reply = await reached(server, api, thread["id"], 1, "FAILED")
        await settled(api, hook["id"], 2)  # the end user's message and the agent's answer
        delivery_ids = {d["id"] for d in await deliveries(api, hook["id"])}
        runs = (await api.get(f"/v1/threads/{thread['id']}/runs")).json()["data"]
        run_ids = {run["id"] for run in runs}
        assert run_ids

    text = _server_log(server.base)
    objects, leaks = [], []
    for line_text in text.splitlines():
        if line_text.startswith("{"):
            obj = json.loads(line_text)
            objects.append(obj)
            leaks += [f"{obj.get('event')}: {found}" for found in _row_ids(obj)]
        else:  # uvicorn's own lines in this server (started as `python -m uvicorn`), and anything else
            leaks += [f"{m.group(1)}={m.group(2)} in {line_text!r}" for m in CONSOLE_ROW_ID.finditer(line_text)]
    assert not leaks, leaks

    # The scenario did log what it is about, under the ids the API gave.
    def logged(event: str, **fields: Any) -> list[dict[str, Any]]:
        return [o for o in objects if o.get("event") == event and all(o.get(k) == v for k, v in fields.items())]

    assert logged("channels.send_retry", message_id=reply["id"]), text[-3000:]
    assert logged("channels.send_failed", message_id=reply["id"]), text[-3000:]
    attempts = [o for o in logged("webhook.attempt", webhook_id=hook["id"]) if o.get("delivery_id") in delivery_ids]
    assert {o["outcome"] for o in attempts} >= {"http_error", "succeeded"}, attempts
    ended = [o for o in objects if o.get("run_id") in run_ids]
    assert ended and all(o.get("thread_id") in (None, thread["id"]) for o in ended), ended
    jobs = [o for o in objects if "job_id" in o]
    assert jobs and all(isinstance(o["job_id"], int) for o in jobs)  # jobs keep their number, named job_id
