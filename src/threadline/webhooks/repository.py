"""All SQL of webhooks. ``WebhookRepository`` is built with the workspace; ``recent_deliveries`` is the
operators' cross-workspace view (``threadline webhooks deliveries``), like the job queue's."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.db.types import UTCDateTime
from threadline.errors import InvalidRequest, NotFound
from threadline.kit.ids import parse_uuid
from threadline.kit.pagination import Page, PageRequest, keyset_page
from threadline.kit.repository import WorkspaceRepository
from threadline.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from threadline.models.enums import WebhookDeliveryStatus

PENDING = WebhookDeliveryStatus.PENDING
# What events.schemas.envelope reads from an event row.
_EVENT_COLUMNS = (Event.public_id, Event.seq, Event.type, Event.thread_id, Event.data, Event.changes, Event.created_at)
_EVENT_KEYS = tuple(c.key for c in _EVENT_COLUMNS)
_PLAN_COLUMNS = (
    WebhookDelivery.id.label("delivery_id"),
    WebhookDelivery.public_id.label("delivery_public_id"),
    WebhookDelivery.status,
    WebhookDelivery.series,
    WebhookDelivery.event_id,
    WebhookDelivery.event_seq,
    WebhookEndpoint.id.label("endpoint_id"),
    WebhookEndpoint.public_id.label("endpoint_public_id"),
    WebhookEndpoint.enabled,
    WebhookEndpoint.url,
    WebhookEndpoint.secret_ciphertext,
    WebhookEndpoint.previous_secret_ciphertext,
    WebhookEndpoint.previous_secret_expires_at,
)
_PLAN_KEYS = (
    "delivery_id",
    "delivery_public_id",
    "status",
    "series",
    "event_id",
    "event_seq",
    "endpoint_id",
    "endpoint_public_id",
    "enabled",
    "url",
    "secret_ciphertext",
    "previous_secret_ciphertext",
    "previous_secret_expires_at",
)


def pattern_condition(patterns: Sequence[str]) -> ColumnElement[bool]:
    """SQL for ``events.types.matches`` over ``patterns``: ``*``, ``family.*`` or an exact type."""
    if "*" in patterns:
        return true()
    exact = [p for p in patterns if not p.endswith(".*")]
    families = [Event.type.startswith(p[:-1], autoescape=True) for p in patterns if p.endswith(".*")]
    conditions: list[ColumnElement[bool]] = [*families]
    if exact:
        conditions.append(Event.type.in_(exact))
    return or_(*conditions) if conditions else false()


class WebhookRepository(WorkspaceRepository):
    # ------------------------------------------------------------------------------------ endpoints

    async def get_endpoint(self, webhook_id: str) -> WebhookEndpoint:
        return await self.get(WebhookEndpoint, webhook_id, label="webhook")

    async def endpoint_by_key(self, endpoint_id: int, *, lock: bool = False) -> WebhookEndpoint | None:
        stmt = self.scoped(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
        if lock:
            stmt = stmt.with_for_update()
        result = await self.session.execute(stmt.execution_options(populate_existing=True))
        endpoint: WebhookEndpoint | None = result.scalar_one_or_none()
        return endpoint

    async def enabled_endpoints(self) -> Sequence[Any]:
        """(id, event_types) of the enabled endpoints: what the fan-out matches each event against."""
        stmt = select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(
            WebhookEndpoint.workspace_id == self.workspace_id, WebhookEndpoint.enabled.is_(True)
        )
        return (await self.session.execute(stmt)).all()

    async def page_endpoints(self, page: PageRequest, *, enabled: bool | None = None) -> Page[WebhookEndpoint]:
        stmt = self.scoped(WebhookEndpoint)
        if enabled is not None:
            stmt = stmt.where(WebhookEndpoint.enabled.is_(enabled))
        return await keyset_page(self.session, stmt, WebhookEndpoint.id, page)

    async def delete_endpoint(self, endpoint: WebhookEndpoint) -> None:
        await self.session.execute(
            delete(WebhookEndpoint).where(
                WebhookEndpoint.id == endpoint.id, WebhookEndpoint.workspace_id == self.workspace_id
            )
        )

    async def count_failure(self, endpoint_id: int, *, now: datetime) -> Any | None:
        """One more failed attempt in the endpoint's current run (row-locked until commit); returns
        (consecutive_failures, failing_since, enabled) after the change."""
        stmt = (
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.workspace_id == self.workspace_id)
            .values(
                consecutive_failures=WebhookEndpoint.consecutive_failures + 1,
                failing_since=func.coalesce(
                    WebhookEndpoint.failing_since, literal(now, UTCDateTime()), type_=UTCDateTime()
                ),
            )
            .returning(WebhookEndpoint.consecutive_failures, WebhookEndpoint.failing_since, WebhookEndpoint.enabled)
            .execution_options(synchronize_session=False)
        )
        return (await self.session.execute(stmt)).one_or_none()

    async def reset_failures(self, endpoint_id: int) -> None:
        """End the endpoint's run of failures; writes (and locks) nothing when there is none."""
        await self.session.execute(
            update(WebhookEndpoint)
            .where(
                WebhookEndpoint.id == endpoint_id,
                WebhookEndpoint.workspace_id == self.workspace_id,
                WebhookEndpoint.consecutive_failures > 0,
            )
            .values(consecutive_failures=0, failing_since=None)
            .execution_options(synchronize_session=False)
        )

    # ------------------------------------------------------------------------------------ deliveries

    async def insert_deliveries(self, rows: list[dict[str, Any]]) -> list[int]:
        """Insert deliveries; returns their ids in the order of ``rows``."""
        if not rows:
            return []
        stmt = (
            insert(WebhookDelivery)
            .returning(WebhookDelivery.id, sort_by_parameter_order=True)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt, [{**r, "workspace_id": self.workspace_id} for r in rows])
        return [row[0] for row in result.all()]

    async def note_attempt(
        self,
        delivery_id: int,
        *,
        series: int,
        succeeded: bool,
        status_code: int | None,
        error: str | None,
        event_seq: int | None,
    ) -> Any | None:
        """Count an attempt on the delivery (row-locked until commit) and keep its outcome as the last one. If
        the delivery is still pending in ``series``, the attempt also counts in the series, and a success ends
        it. Returns (attempts, series, series_attempts, status) after the change, or None when it is gone."""
        current = and_(WebhookDelivery.status == PENDING, WebhookDelivery.series == series)
        values: dict[str, Any] = {
            "attempts": WebhookDelivery.attempts + 1,
            "series_attempts": case(
                (current, WebhookDelivery.series_attempts + 1), else_=WebhookDelivery.series_attempts
            ),
            "last_status_code": status_code,
            "last_error": error,
            "event_seq": func.coalesce(WebhookDelivery.event_seq, event_seq),
        }
        if succeeded:
            values["status"] = case((current, WebhookDeliveryStatus.SUCCEEDED.value), else_=WebhookDelivery.status)
            values["next_attempt_at"] = case((current, null()), else_=WebhookDelivery.next_attempt_at)
        stmt = (
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.workspace_id == self.workspace_id)
            .values(**values)
            .returning(
                WebhookDelivery.attempts,
                WebhookDelivery.series,
                WebhookDelivery.series_attempts,
                WebhookDelivery.status,
            )
            .execution_options(synchronize_session=False)
        )
        return (await self.session.execute(stmt)).one_or_none()

    async def add_attempt(self, delivery_id: int, **values: Any) -> None:
        await self.session.execute(
            insert(WebhookAttempt).values(workspace_id=self.workspace_id, delivery_id=delivery_id, **values)
        )

    async def end_series(
        self, delivery_id: int, *, status: WebhookDeliveryStatus, next_attempt_at: datetime | None = None
    ) -> None:
        """The delivery's state after a failed attempt: pending until ``next_attempt_at``, or failed."""
        await self.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.workspace_id == self.workspace_id)
            .values(status=status, next_attempt_at=next_attempt_at)
            .execution_options(synchronize_session=False)
        )

    async def delivery_by_key(self, delivery_id: int, *, lock: bool = False) -> WebhookDelivery | None:
        stmt = self.scoped(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
        if lock:
            stmt = stmt.with_for_update()
        result = await self.session.execute(stmt.execution_options(populate_existing=True))
        delivery: WebhookDelivery | None = result.scalar_one_or_none()
        return delivery

    async def attempt_plan(self, delivery_id: int) -> tuple[Any, Any | None] | None:
        """What an attempt reads, in one query of plain columns: the delivery with its endpoint, and its
        event as an ``EventRepository``-like row (None once purged)."""
        stmt = (
            select(*_PLAN_COLUMNS, *_EVENT_COLUMNS)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .outerjoin(
                Event,
                and_(Event.workspace_id == WebhookDelivery.workspace_id, Event.public_id == WebhookDelivery.event_id),
            )
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.workspace_id == self.workspace_id)
        )
        row = (await self.session.execute(stmt)).one_or_none()
        if row is None:
            return None
        values = tuple(row)
        plan = SimpleNamespace(**dict(zip(_PLAN_KEYS, values[: len(_PLAN_KEYS)], strict=True)))
        event_values = values[len(_PLAN_KEYS) :]
        event = SimpleNamespace(**dict(zip(_EVENT_KEYS, event_values, strict=True))) if event_values[0] else None
        return plan, event

    async def get_delivery(self, endpoint: WebhookEndpoint, delivery_id: str) -> WebhookDelivery:
        uid = parse_uuid(delivery_id)
        delivery = None
        if uid is not None:
            stmt = self.scoped(WebhookDelivery).where(
                WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.public_id == uid
            )
            delivery = (await self.session.execute(stmt)).scalar_one_or_none()
        if delivery is None:
            raise NotFound(f"no delivery with id '{delivery_id}' for this webhook")
        return delivery

    async def delivery_cursor(self, endpoint: WebhookEndpoint, delivery_id: str | None, *, param: str) -> int | None:
        if delivery_id is None:
            return None
        try:
            return (await self.get_delivery(endpoint, delivery_id)).id
        except NotFound:
            raise InvalidRequest(f"{param}: no delivery with id '{delivery_id}' in this list", param=param) from None

    async def page_deliveries(
        self, endpoint: WebhookEndpoint, page: PageRequest, *, status: WebhookDeliveryStatus | None
    ) -> Page[WebhookDelivery]:
        stmt = self.scoped(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
        if status is not None:
            stmt = stmt.where(WebhookDelivery.status == status)
        return await keyset_page(self.session, stmt, WebhookDelivery.id, page)

    async def deliveries_for_events(self, endpoint_id: int, event_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
        """{event id: delivery id} of the endpoint's deliveries of these events."""
        if not event_ids:
            return {}
        stmt = select(WebhookDelivery.event_id, WebhookDelivery.id).where(
            WebhookDelivery.workspace_id == self.workspace_id,
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.event_id.in_(event_ids),
        )
        return {row.event_id: row.id for row in await self.session.execute(stmt)}

    async def restart_deliveries(self, delivery_ids: list[int], *, now: datetime) -> list[tuple[int, int]]:
        """Start a new attempt series on each delivery, due now; returns (id, series) of each."""
        if not delivery_ids:
            return []
        stmt = (
            update(WebhookDelivery)
            .where(WebhookDelivery.workspace_id == self.workspace_id, WebhookDelivery.id.in_(delivery_ids))
            .values(
                status=PENDING,
                series=WebhookDelivery.series + 1,
                series_attempts=0,
                next_attempt_at=now,
            )
            .returning(WebhookDelivery.id, WebhookDelivery.series)
            .execution_options(synchronize_session=False)
        )
        return [(row[0], row[1]) for row in (await self.session.execute(stmt)).all()]

    async def fail_pending(self, endpoint_id: int, *, error: str) -> int:
        """End every pending delivery of the endpoint as failed with ``error``; their queued jobs do nothing."""
        result = await self.session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.workspace_id == self.workspace_id,
                WebhookDelivery.endpoint_id == endpoint_id,
                WebhookDelivery.status == PENDING,
            )
            .values(status=WebhookDeliveryStatus.FAILED, last_error=error, next_attempt_at=None)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def attempts(self, delivery: WebhookDelivery) -> list[WebhookAttempt]:
        stmt = (
            select(WebhookAttempt)
            .where(WebhookAttempt.workspace_id == self.workspace_id, WebhookAttempt.delivery_id == delivery.id)
            .order_by(WebhookAttempt.attempt)
        )
        return list((await self.session.scalars(stmt)).all())

    # ------------------------------------------------------------------------------------ events

    async def events_after(self, seq: int, *, patterns: Sequence[str], limit: int) -> Sequence[Any]:
        """(public_id, seq, type) of the retained events after ``seq`` that match ``patterns``, oldest first."""
        stmt = (
            select(Event.public_id, Event.seq, Event.type)
            .where(Event.workspace_id == self.workspace_id, Event.seq > seq, pattern_condition(patterns))
            .order_by(Event.seq)
            .limit(limit)
        )
        return (await self.session.execute(stmt)).all()

    async def event_exists(self, event_id: uuid.UUID) -> bool:
        stmt = select(Event.id).where(Event.workspace_id == self.workspace_id, Event.public_id == event_id)
        return (await self.session.execute(stmt.limit(1))).first() is not None


async def recent_deliveries(
    session: AsyncSession,
    *,
    endpoint_public_id: uuid.UUID | None = None,
    status: WebhookDeliveryStatus | None = None,
    limit: int = 100,
) -> list[tuple[WebhookDelivery, WebhookEndpoint]]:
    """The newest deliveries of every workspace (operators only: the CLI), with their endpoints."""
    stmt = (
        select(WebhookDelivery, WebhookEndpoint)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if endpoint_public_id is not None:
        stmt = stmt.where(WebhookEndpoint.public_id == endpoint_public_id)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    return [(row[0], row[1]) for row in (await session.execute(stmt)).all()]


def has_enabled_endpoints(workspace_id: int) -> Any:
    """A scalar SQL expression, true when the workspace has an enabled endpoint (read by the statement that
    numbers the events: the fan-out's guard)."""
    return exists().where(WebhookEndpoint.workspace_id == workspace_id, WebhookEndpoint.enabled.is_(True))
