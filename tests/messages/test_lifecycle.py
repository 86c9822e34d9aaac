"""The delivery lifecycle (messages.lifecycle): allowed and refused transitions, timestamps, merged provider
fields, idempotent and out-of-order callbacks, concurrent ones, and the events they record.

Messages are created through /v1 on a thread of an SMS integration, so outbound ones start QUEUED. The
integration row is inserted directly: its creation through /v1 (credentials) is another part of the work.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import Tenant
from tests.factories import create_thread, post_message
from threadline.errors import NotFound
from threadline.events.repository import EventRepository
from threadline.messages import lifecycle
from threadline.messages.lifecycle import Advance, ProviderFields
from threadline.models import Integration, Message
from threadline.models.enums import ChannelType, MessageStatus

S = MessageStatus
T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def t(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


# The allowed transitions, written out independently of the module (its docstring's table).
OUTBOUND = [S.QUEUED, S.SENDING, S.SENT, S.FAILED, S.UNDELIVERED, S.DELIVERED, S.READ]
ALLOWED = {
    S.QUEUED: {S.SENDING, S.SENT, S.FAILED, S.UNDELIVERED, S.DELIVERED, S.READ},
    S.SENDING: {S.SENT, S.FAILED, S.UNDELIVERED, S.DELIVERED, S.READ},
    S.SENT: {S.FAILED, S.UNDELIVERED, S.DELIVERED, S.READ},
    S.FAILED: {S.DELIVERED, S.READ},
    S.UNDELIVERED: {S.DELIVERED, S.READ},
    S.DELIVERED: {S.READ},
    S.READ: set(),
}
# The timestamps a report sets (when missing or later than its time).
STAMPS = {
    S.SENT: ["sent_at"],
    S.DELIVERED: ["sent_at", "delivered_at"],
    S.READ: ["sent_at", "delivered_at", "read_at"],
    S.FAILED: ["failed_at"],
    S.UNDELIVERED: ["failed_at"],
}
TIMESTAMPS = ("sent_at", "delivered_at", "read_at", "failed_at")
PROVIDER = (
    "external_id",
    "provider_account_id",
    "segments",
    "price",
    "price_currency",
    "error_code",
    "error_message",
)


@dataclass
class Channel:
    api: httpx.AsyncClient
    sessionmaker: async_sessionmaker[AsyncSession]
    tenant: Tenant
    integration_id: int
    thread_id: str

    async def outbound(self, content: str = "hello") -> dict[str, Any]:
        message = await post_message(self.api, self.thread_id, content, role="assistant")
        assert message["status"] == "QUEUED"
        return message

    async def step(
        self,
        message: dict[str, Any],
        to: MessageStatus,
        at: datetime,
        provider: ProviderFields | None = None,
        *,
        workspace_id: int | Literal["tenant"] | None = "tenant",
    ) -> Advance:
        """One report in its own transaction (as a channel's request or job makes it)."""
        ws = self.tenant.workspace_id if workspace_id == "tenant" else workspace_id
        row_id = await self.row_id(message)
        async with self.sessionmaker() as session, session.begin():
            return await lifecycle.advance(session, workspace_id=ws, message_id=row_id, to=to, at=at, provider=provider)

    async def row_id(self, message: dict[str, Any]) -> int:
        """The message's primary key, what channels and jobs name it by (never shown by the API); a
        ``row_id`` given in ``message`` as it is."""
        if "row_id" in message:
            return int(message["row_id"])
        async with self.sessionmaker() as session:
            found = await session.scalar(select(Message.id).where(Message.public_id == uuid.UUID(message["id"])))
        assert found is not None
        return int(found)

    async def callback(
        self, external_id: str, to: MessageStatus, at: datetime, provider: ProviderFields | None = None
    ) -> Advance | None:
        async with self.sessionmaker() as session, session.begin():
            return await lifecycle.advance_by_external_id(
                session, integration_id=self.integration_id, external_id=external_id, to=to, at=at, provider=provider
            )

    async def get(self, message: dict[str, Any]) -> dict[str, Any]:
        r = await self.api.get(f"/v1/threads/{self.thread_id}/messages/{message['id']}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def updates(self, message: dict[str, Any]) -> list[Any]:
        """The message.updated events recorded for ``message``, oldest first."""
        async with self.sessionmaker() as session:
            log = await EventRepository(session, self.tenant.workspace_id).after(
                0, limit=1000, thread_id=uuid.UUID(self.thread_id), types=["message.updated"]
            )
        return [e for e in log if e.data["id"] == message["id"]]


async def _sms_integration(sessionmaker: async_sessionmaker[AsyncSession], workspace_id: int) -> Integration:
    async with sessionmaker() as session, session.begin():
        integration = Integration(workspace_id=workspace_id, type=ChannelType.SMS, name="sms")
        session.add(integration)
    return integration


@pytest.fixture
async def channel(api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], tenant: Tenant) -> Channel:
    integration = await _sms_integration(sessionmaker, tenant.workspace_id)
    thread = await create_thread(api, integration_id=str(integration.public_id))
    return Channel(api, sessionmaker, tenant, integration.id, thread["id"])


def _parsed(rendered: dict[str, Any], name: str) -> datetime | None:
    raw = rendered[name]
    return None if raw is None else datetime.fromisoformat(raw.replace("Z", "+00:00"))


async def _at(channel: Channel, status: MessageStatus, n: int) -> dict[str, Any]:
    """A new outbound message brought to ``status`` (from QUEUED, one report at t(n))."""
    message = await channel.outbound(f"m{n}")
    if status is not S.QUEUED:
        result = await channel.step(message, status, t(n), ProviderFields(external_id=f"SM{n}", segments=1))
        assert result.moved and result.message.status is status
    return message


async def test_every_allowed_transition_moves_the_status_and_records_one_event(channel: Channel) -> None:
    n = 0
    for source in OUTBOUND:
        for to in sorted(ALLOWED[source], key=OUTBOUND.index):
            n += 1
            message = await _at(channel, source, n)
            before = len(await channel.updates(message))
            result = await channel.step(message, to, t(100 + n))
            where = f"{source} -> {to}"
            assert result.moved and result.previous is source and result.message.status is to, where
            assert result.changes[0] == "status", where
            events = await channel.updates(message)
            assert len(events) == before + 1, where
            assert events[-1].data["status"] == to and list(events[-1].changes) == list(result.changes), where
            assert (await channel.get(message))["status"] == to, where
    assert n == sum(len(targets) for targets in ALLOWED.values()) == 20


async def test_every_backwards_or_repeated_transition_keeps_the_status_and_merges_new_fields(
    channel: Channel,
) -> None:
    n = 0
    for source in OUTBOUND:
        for to in OUTBOUND:
            if to in ALLOWED[source] or to is S.QUEUED:
                continue
            n += 1
            message = await _at(channel, source, n)
            before = await channel.get(message)
            events_before = len(await channel.updates(message))
            report = ProviderFields(external_id="SMother", segments=3, price="-0.0075", price_currency="USD")
            result = await channel.step(message, to, t(500 + n), report)
            where = f"{source} -> {to}"
            assert not result.moved and result.previous is source and result.message.status is source, where
            # Missing facts are filled; known ones (the id and segments the first report gave) are kept.
            missing_stamps = [name for name in STAMPS.get(to, []) if before[name] is None]
            assert list(result.changes) == [*missing_stamps, "price", "price_currency"], where
            after = await channel.get(message)
            assert after["status"] == source and after["price"] == "-0.0075", where
            assert after["external_id"] == f"SM{n}" and after["segments"] == 1, where
            events = await channel.updates(message)
            assert len(events) == events_before + 1 and "status" not in events[-1].changes, where
            # The same report again tells nothing new: no change, no event.
            again = await channel.step(message, to, t(600 + n), report)
            assert again.changes == () and not again.moved, where
            assert len(await channel.updates(message)) == events_before + 1, where
    assert n == 7 * 6 - 20  # every same-machine pair but the allowed ones (QUEUED is never a target)


async def test_each_status_sets_its_timestamps_and_read_implies_delivery(channel: Channel) -> None:
    ladder = await channel.outbound()
    await channel.step(ladder, S.SENDING, t(1))
    seen = await channel.get(ladder)
    assert [seen[name] for name in TIMESTAMPS] == [None] * 4
    await channel.step(ladder, S.SENT, t(2))
    await channel.step(ladder, S.DELIVERED, t(3))
    await channel.step(ladder, S.READ, t(4))
    seen = await channel.get(ladder)
    assert seen["status"] == "READ"
    assert [_parsed(seen, name) for name in TIMESTAMPS] == [t(2), t(3), t(4), None]

    # READ straight after SENT: delivered no later than read.
    skipped = await channel.outbound()
    await channel.step(skipped, S.SENT, t(10))
    result = await channel.step(skipped, S.READ, t(12))
    assert result.changes == ("status", "delivered_at", "read_at")
    seen = await channel.get(skipped)
    assert [_parsed(seen, name) for name in TIMESTAMPS] == [t(10), t(12), t(12), None]

    # The first report is READ: it was sent and delivered by then.
    first = await channel.outbound()
    result = await channel.step(first, S.READ, t(20))
    assert result.changes == ("status", "sent_at", "delivered_at", "read_at")
    assert [getattr(result.message, name) for name in TIMESTAMPS] == [t(20), t(20), t(20), None]

    for failure in (S.FAILED, S.UNDELIVERED):
        failed = await channel.outbound()
        await channel.step(failed, S.SENDING, t(30))
        result = await channel.step(
            failed, failure, t(31), ProviderFields(error_code="30003", error_message="Unreachable destination handset")
        )
        assert result.changes == ("status", "failed_at", "error_code", "error_message")
        seen = await channel.get(failed)
        assert seen["status"] == failure and seen["error_code"] == "30003"
        assert [_parsed(seen, name) for name in TIMESTAMPS] == [None, None, None, t(31)]


async def test_a_repeated_callback_changes_nothing_and_records_no_second_event(channel: Channel) -> None:
    message = await channel.outbound()
    report = ProviderFields(external_id="SMrepeat", provider_account_id="AC1", segments=2)
    first = await channel.step(message, S.SENT, t(1), report)
    assert first.changes == ("status", "sent_at", "external_id", "provider_account_id", "segments")
    delivered = await channel.callback("SMrepeat", S.DELIVERED, t(5), ProviderFields(price="-0.0150"))
    assert delivered is not None and delivered.changes == ("status", "delivered_at", "price")
    stored = await channel.get(message)
    # Providers retry: the same callback again, now or later (Twilio's carry no time: "now" is later).
    for at in (t(5), t(60)):
        again = await channel.callback("SMrepeat", S.DELIVERED, at, ProviderFields(price="-0.0150"))
        assert again is not None and again.changes == () and not again.moved
        assert again.previous is S.DELIVERED
    assert await channel.get(message) == stored
    assert [e.changes for e in await channel.updates(message)] == [list(first.changes), list(delivered.changes)]


async def test_out_of_order_callbacks_end_in_the_right_state(channel: Channel) -> None:
    # SENT after DELIVERED: stays DELIVERED; the SENT's time and price fill what was missing.
    late_sent = await channel.outbound()
    await channel.step(late_sent, S.DELIVERED, t(5), ProviderFields(external_id="SMa"))
    result = await channel.callback("SMa", S.SENT, t(2), ProviderFields(price="-0.0075", price_currency="USD"))
    assert result is not None and not result.moved
    assert result.changes == ("sent_at", "price", "price_currency")
    seen = await channel.get(late_sent)
    assert seen["status"] == "DELIVERED" and seen["price"] == "-0.0075" and seen["price_currency"] == "USD"
    assert (_parsed(seen, "sent_at"), _parsed(seen, "delivered_at")) == (t(2), t(5))

    # DELIVERED after READ: stays READ; the real delivery time replaces the one READ implied.
    late_delivered = await channel.outbound()
    await channel.step(late_delivered, S.READ, t(9))
    result = await channel.step(late_delivered, S.DELIVERED, t(7))
    assert not result.moved and result.changes == ("sent_at", "delivered_at")
    seen = await channel.get(late_delivered)
    assert seen["status"] == "READ"
    assert [_parsed(seen, name) for name in TIMESTAMPS] == [t(7), t(7), t(9), None]

    # FAILED after DELIVERED does not win (its facts are kept); DELIVERED after FAILED does.
    failure = ProviderFields(error_code="131026", error_message="Message undeliverable")
    delivered_first = await channel.outbound()
    await channel.step(delivered_first, S.DELIVERED, t(3))
    result = await channel.step(delivered_first, S.FAILED, t(4), failure)
    assert not result.moved and result.message.status is S.DELIVERED
    assert result.changes == ("failed_at", "error_code", "error_message")
    failed_first = await channel.outbound()
    await channel.step(failed_first, S.FAILED, t(4), failure)
    result = await channel.step(failed_first, S.DELIVERED, t(3))
    assert result.moved and result.previous is S.FAILED and result.message.status is S.DELIVERED
    keys = ("status", *TIMESTAMPS, *PROVIDER)
    first, second = await channel.get(delivered_first), await channel.get(failed_first)
    assert {k: first[k] for k in keys} == {k: second[k] for k in keys}

    # FAILED and UNDELIVERED share a rung: the first verdict stays.
    verdict = await channel.outbound()
    await channel.step(verdict, S.UNDELIVERED, t(6), ProviderFields(error_code="30005"))
    result = await channel.step(verdict, S.FAILED, t(5), ProviderFields(error_code="30008", error_message="Unknown"))
    assert not result.moved and result.changes == ("failed_at", "error_message")
    seen = await channel.get(verdict)
    assert (seen["status"], seen["error_code"], _parsed(seen, "failed_at")) == ("UNDELIVERED", "30005", t(5))


async def test_any_order_of_the_same_reports_ends_in_the_same_message(channel: Channel) -> None:
    reports = [
        (S.SENT, t(1), ProviderFields(external_id="SM", provider_account_id="AC1", segments=2)),
        (S.FAILED, t(2), ProviderFields(error_code="30003", error_message="Unreachable")),
        (S.DELIVERED, t(3), ProviderFields(price="-0.0150", price_currency="USD")),
        (S.READ, t(4), None),
    ]
    keys = ("status", *TIMESTAMPS, *PROVIDER)
    finals = []
    for i, order in enumerate(itertools.permutations(reports)):
        message = await channel.outbound(f"p{i}")
        for to, at, fields in order:
            if fields is not None and fields.external_id:
                fields = replace(fields, external_id=f"SM{i}")
            await channel.step(message, to, at, fields)
        seen = await channel.get(message)
        assert seen["external_id"] == f"SM{i}"
        finals.append({k: seen[k] for k in keys if k != "external_id"})
        events = await channel.updates(message)
        ranks = [OUTBOUND.index(S(e.data["status"])) for e in events]
        assert ranks == sorted(ranks), order  # never backwards, whatever the order
        assert events[-1].data == seen
    assert len(finals) == 24
    assert all(final == finals[0] for final in finals)
    assert finals[0]["status"] == "READ" and finals[0]["error_code"] == "30003" and finals[0]["price"] == "-0.0150"


async def test_concurrent_identical_callbacks_record_one_change(channel: Channel) -> None:
    message = await channel.outbound()
    await channel.step(message, S.SENT, t(1), ProviderFields(external_id="SMrace"))
    results = await asyncio.gather(
        *(channel.callback("SMrace", S.DELIVERED, t(2), ProviderFields(price="-0.0075")) for _ in range(8))
    )
    changed = [r for r in results if r is not None and r.changes]
    assert len(changed) == 1 and changed[0].changes == ("status", "delivered_at", "price")
    assert all(r is not None and r.message.status is S.DELIVERED for r in results)
    assert [e.changes for e in await channel.updates(message)][1:] == [["status", "delivered_at", "price"]]

    # Late reports that do not move the status race the same way: their facts are merged once.
    late = await channel.outbound()
    await channel.step(late, S.DELIVERED, t(3), ProviderFields(external_id="SMlate"))
    results = await asyncio.gather(
        *(channel.callback("SMlate", S.SENT, t(1), ProviderFields(price="-0.0075")) for _ in range(8))
    )
    changed = [r for r in results if r is not None and r.changes]
    assert len(changed) == 1 and changed[0].changes == ("sent_at", "price") and not changed[0].moved
    assert [e.changes for e in await channel.updates(late)][1:] == [["sent_at", "price"]]


async def test_concurrent_different_callbacks_lose_nothing_and_never_go_back(channel: Channel) -> None:
    for round_ in range(4):
        message = await channel.outbound(f"r{round_}")
        await channel.step(message, S.SENDING, t(0))
        reports = [
            (S.SENT, t(1), ProviderFields(external_id=f"SMc{round_}", segments=1)),
            (S.FAILED, t(2), ProviderFields(error_code="30003")),
            (S.DELIVERED, t(3), ProviderFields(price="-0.0075")),
            (S.READ, t(4), ProviderFields(price_currency="USD")),
            (S.DELIVERED, t(3), ProviderFields(price="-0.0075")),
        ]
        results = await asyncio.gather(*(channel.step(message, to, at, fields) for to, at, fields in reports))
        seen = await channel.get(message)
        assert seen["status"] == "READ"
        assert [_parsed(seen, name) for name in TIMESTAMPS] == [t(1), t(3), t(4), t(2)]
        assert (seen["external_id"], seen["segments"], seen["error_code"]) == (f"SMc{round_}", 1, "30003")
        assert (seen["price"], seen["price_currency"]) == ("-0.0075", "USD")
        events = (await channel.updates(message))[1:]
        # One event per report that changed something, each listing exactly what it changed.
        assert sorted(e.changes for e in events) == sorted(list(r.changes) for r in results if r.changes)
        assert sum("status" in e.changes for e in events) == sum(r.moved for r in results)
        ranks = [OUTBOUND.index(S(e.data["status"])) for e in events]
        assert ranks == sorted(ranks)
        assert events[-1].data == seen  # the last change committed is the message as it stays


@pytest.mark.postgres_only
async def test_a_transition_planned_from_a_state_that_moved_on_is_planned_again(channel: Channel) -> None:
    message = await channel.outbound()
    await channel.step(message, S.SENT, t(1))
    row_id = await channel.row_id(message)
    async with channel.sessionmaker() as first:
        async with first.begin():
            delivered = await lifecycle.advance(first, workspace_id=None, message_id=row_id, to=S.DELIVERED, at=t(3))
            assert delivered.moved
            # The READ reads the committed SENT, plans from it, and waits for this transaction's row lock.
            read = asyncio.create_task(channel.step(message, S.READ, t(5)))
            await _until_waiting_on_a_lock(channel.sessionmaker, read)
        result = await read
    # Its first plan (delivered_at from the READ's time) was refused by the guard; the second one
    # started from the committed DELIVERED, so the real delivery time is kept.
    assert result.moved and result.previous is S.DELIVERED and result.changes == ("status", "read_at")
    seen = await channel.get(message)
    assert [_parsed(seen, name) for name in TIMESTAMPS] == [t(1), t(3), t(5), None]


async def _until_waiting_on_a_lock(sessionmaker: async_sessionmaker[AsyncSession], task: asyncio.Task[Any]) -> None:
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(2000):
        assert not task.done(), "the second transition did not wait for the first"
        async with sessionmaker() as session:
            if (await session.execute(query)).scalar_one() > 0:
                return
        await asyncio.sleep(0.005)
    raise AssertionError("the second transition never waited for the row")


async def test_a_callback_for_an_unknown_provider_id_finds_nothing_and_changes_nothing(
    channel: Channel, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    message = await channel.outbound()
    await channel.step(message, S.SENT, t(1), ProviderFields(external_id="SMknown"))
    assert await channel.callback("SMunknown", S.DELIVERED, t(2)) is None
    # The same provider id in another integration is another message.
    other = await _sms_integration(sessionmaker, channel.tenant.workspace_id)
    async with sessionmaker() as session, session.begin():
        assert (
            await lifecycle.advance_by_external_id(
                session, integration_id=other.id, external_id="SMknown", to=S.DELIVERED, at=t(2)
            )
            is None
        )
    assert (await channel.get(message))["status"] == "SENT"
    assert len(await channel.updates(message)) == 1


async def test_another_workspace_cannot_advance_a_message(channel: Channel, other_tenant: Tenant) -> None:
    message = await channel.outbound()
    with pytest.raises(NotFound):
        await channel.step(message, S.SENT, t(1), workspace_id=other_tenant.workspace_id)
    with pytest.raises(NotFound):
        await channel.step({"row_id": 2**62}, S.SENT, t(1))
    assert (await channel.get(message))["status"] == "QUEUED"
    result = await channel.step(message, S.SENT, t(1), workspace_id=None)
    assert result.moved and result.message.workspace_id == channel.tenant.workspace_id


async def test_inbound_messages_only_move_from_received_to_discarded(channel: Channel) -> None:
    inbound = await post_message(channel.api, channel.thread_id, "hi")
    assert inbound["status"] == "RECEIVED"
    for outbound_status in (S.SENT, S.DELIVERED, S.READ, S.FAILED):
        result = await channel.step(inbound, outbound_status, t(1), ProviderFields(price="1"))
        assert result.changes == () and result.message.status is S.RECEIVED
    result = await channel.step(inbound, S.DISCARDED, t(2))
    assert result.moved and result.changes == ("status",)
    assert (await channel.step(inbound, S.RECEIVED, t(3))).changes == ()
    seen = await channel.get(inbound)
    assert seen["status"] == "DISCARDED" and seen["price"] is None and seen["delivered_at"] is None
    # And an outbound message never takes an inbound status.
    outbound = await channel.outbound()
    assert (await channel.step(outbound, S.DISCARDED, t(4))).changes == ()
    assert [e.changes for e in await channel.updates(inbound)] == [["status"]]


async def test_the_event_carries_the_message_as_v1_shows_it(channel: Channel) -> None:
    message = await channel.outbound()
    result = await channel.step(
        message, S.SENT, t(1), ProviderFields(external_id="SMev", provider_account_id="AC9", segments=1)
    )
    (event,) = await channel.updates(message)
    seen = await channel.get(message)
    assert event.data == seen
    assert event.data["status"] == "SENT" and event.data["external_id"] == "SMev"
    assert event.changes == list(result.changes) and event.thread_id == uuid.UUID(channel.thread_id)
    assert seen["updated_at"] > message["updated_at"]
