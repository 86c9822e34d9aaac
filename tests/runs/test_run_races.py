"""Races that only PostgreSQL lets happen (SQLite runs one writer at a time), each staged step by step with
two sessions: the second waits on the first's row lock (or reads between two statements of the first),
the first commits, and what the second did then is checked. Found by bench/channels.py under load:
replies lost to a run claimed while a message joined it, a deadlock between an inbound message and a run
finishing on the same end user's thread, and a delivery report lost to the send job's commit."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from tests.conftest import Tenant
from tests.factories import create_agent, create_thread
from tests.integrations.helpers import create_integration, sms_body
from threadline.channels import outbox
from threadline.flows.send import append_message
from threadline.kit.clock import utcnow
from threadline.messages import lifecycle
from threadline.messages.service import NewMessage
from threadline.models import Job, Message, Run, RunStatus, Thread
from threadline.models.enums import MessageStatus, Role
from threadline.threads.repository import ThreadRepository

pytestmark = pytest.mark.postgres_only


async def lock_waiters(sessionmaker: Any) -> int:
    """How many sessions wait on a row lock right now."""
    async with sessionmaker() as s:
        stmt = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        return int((await s.execute(stmt)).scalar_one())


async def until_waiting(sessionmaker: Any) -> None:
    for _ in range(500):
        if await lock_waiters(sessionmaker):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the second session never waited for the first one's lock")


async def say(sessionmaker: Any, tenant: Tenant, thread_id: str, content: str) -> None:
    async with sessionmaker() as s, s.begin():
        new = NewMessage(role=Role.USER, content=content)
        await append_message(s, workspace_id=tenant.workspace_id, thread_id=thread_id, new=new)


async def runs_of(sessionmaker: Any, thread_id: str) -> list[tuple[RunStatus, int]]:
    async with sessionmaker() as s:
        key = select(Thread.id).where(Thread.public_id == uuid.UUID(thread_id)).scalar_subquery()
        stmt = select(Run.status, Run.input_seq).where(Run.thread_id == key).order_by(Run.id)
        return [(status, seq) for status, seq in (await s.execute(stmt)).all()]


async def test_a_message_for_a_run_claimed_meanwhile_gets_a_run_of_its_own(
    api: httpx.AsyncClient, sessionmaker: Any, tenant: Tenant
) -> None:
    # A long debounce window: the first message's run stays queued, no worker takes it.
    version = {"mode": "PROMPT", "provider": "openai", "model": "m", "settings": {"debounce_s": 600}}
    agent = await create_agent(api, version=version)
    thread = await create_thread(api, agent_id=agent["id"])
    await say(sessionmaker, tenant, thread["id"], "first")
    [(status, seq)] = await runs_of(sessionmaker, thread["id"])
    assert (status, seq) == (RunStatus.QUEUED, 1)

    # A worker claims the run (its UPDATE holds the row) while the second message's request, which read
    # the run as queued, tries to join it.
    async with sessionmaker() as worker, worker.begin():
        key = select(Thread.id).where(Thread.public_id == uuid.UUID(thread["id"])).scalar_subquery()
        await worker.execute(
            update(Run).where(Run.thread_id == key).values(status=RunStatus.RUNNING, started_at=utcnow())
        )
        second = asyncio.create_task(say(sessionmaker, tenant, thread["id"], "second"))
        await until_waiting(sessionmaker)
    await asyncio.wait_for(second, 10)

    # The claimed run answers what it read; the second message waits for a run of its own.
    assert await runs_of(sessionmaker, thread["id"]) == [(RunStatus.RUNNING, 1), (RunStatus.QUEUED, 2)]
    for run in (await api.get(f"/v1/threads/{thread['id']}/runs")).json()["data"]:
        await api.post(f"/v1/runs/{run['id']}/cancel")  # nothing left for other tests' workers


async def test_an_end_user_held_for_an_inbound_message_does_not_block_a_run_finishing_on_their_thread(
    api: httpx.AsyncClient, sessionmaker: Any, tenant: Tenant
) -> None:
    thread = await create_thread(api)
    uid = uuid.UUID(thread["id"])
    async with sessionmaker() as inbound, inbound.begin():
        # An inbound message holds its sender (channels.inbound, threads.service.thread_between)...
        assert await ThreadRepository(inbound, tenant.workspace_id).lock_end_user(thread["end_user_id"]) is not None
        # ...while a run finishing holds the thread and updates it twice: the reply's number, then its flow
        # state. The second update re-checks the thread's foreign key to the end user (the row version it
        # updates is its own), which must not wait for the inbound message's lock.
        async with sessionmaker() as run, run.begin():
            await run.execute(text("SET LOCAL lock_timeout = '5s'"))
            await run.execute(select(Thread.id).where(Thread.public_id == uid).with_for_update())
            await run.execute(update(Thread).where(Thread.public_id == uid).values(last_seq=Thread.last_seq + 1))
            await run.execute(update(Thread).where(Thread.public_id == uid).values(flow_state={"node": "next"}))
        # Two inbound messages of one sender still take turns.
        async with sessionmaker() as other, other.begin():
            await other.execute(text("SET LOCAL lock_timeout = '100ms'"))
            with pytest.raises(DBAPIError, match="lock timeout"):
                await ThreadRepository(other, tenant.workspace_id).lock_end_user(thread["end_user_id"])
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).where(Thread.public_id == uid, Thread.flow_state.is_not(None)))


async def test_a_report_that_races_the_send_jobs_commit_still_finds_its_message(
    api: httpx.AsyncClient, sessionmaker: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    integration = await create_integration(api, sms_body())
    thread = await create_thread(api, integration_id=integration["id"])
    async with sessionmaker() as s, s.begin():
        new = NewMessage(role=Role.ASSISTANT, content="Your order shipped.")
        message = (await append_message(s, workspace_id=tenant.workspace_id, thread_id=thread["id"], new=new)).message
        await s.execute(delete(Job).where(Job.dedupe_key == outbox.dedupe_key(message.id)))  # no send here
    sid = "SM" + uuid.uuid4().hex

    # Twilio reports delivery the moment it took the message: the report's lookup by sid finds nothing yet,
    # and the send job commits SENT with that sid before the report looks the message up by its tag.
    looked_up = lifecycle._tagged

    async def tagged_after_the_send_committed(*args: Any) -> Any:
        async with sessionmaker() as job, job.begin():
            await job.execute(
                update(Message).where(Message.id == message.id).values(status=MessageStatus.SENT, external_id=sid)
            )
        return await looked_up(*args)

    monkeypatch.setattr(lifecycle, "_tagged", tagged_after_the_send_committed)
    async with sessionmaker() as report, report.begin():
        integration_key = await report.scalar(select(Message.integration_id).where(Message.id == message.id))
        moved = await lifecycle.advance_by_external_id(
            report,
            integration_id=integration_key,
            external_id=sid,
            to=MessageStatus.DELIVERED,
            at=utcnow(),
            tag=str(message.public_id),
        )
    assert moved is not None and moved.moved
    shown = (await api.get(f"/v1/threads/{thread['id']}/messages/{message.public_id}")).json()
    assert (shown["status"], shown["external_id"]) == ("DELIVERED", sid)
