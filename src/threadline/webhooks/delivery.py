"""One delivery attempt, in three steps: read, send, record.

1. **Read** the delivery, its endpoint and the event in a short autocommit session of its own, closed
   before anything goes out.
2. **Send** the signed POST with no database connection held: a receiver that takes the whole timeout
   holds no connection, no row lock and (on SQLite) not the write lock. The worker opens the job's
   transaction (``ctx.session``) lazily, so it has not begun either.
3. **Record** the outcome in the job's transaction: the attempt row, the delivery's new state, the
   next attempt's job and the endpoint's run of failures commit together with the job's completion,
   or not at all (then the job is retried and the receiver may see the event twice; the ``webhook-id``
   header, the event's id, lets it tell).

A job carries the delivery's ``series``: a replay starts a new series, and a job of an older one finds
the delivery moved on and does nothing. Deliveries run in the worker's outbound pool (slots of their
own), so receivers that take their whole timeout delay only each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import uuid
import weakref
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import certifi
import httpcore
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from standardwebhooks import Webhook

from threadline import __version__
from threadline.config import Settings
from threadline.db.engine import read_engine
from threadline.events.schemas import encode, envelope
from threadline.kit.clock import utcnow
from threadline.kit.secrets import SecretDecryptionError, secret_box
from threadline.kit.ssrf import AddressRefused, BadURL, GuardedBackend, parse_url
from threadline.models.enums import WebhookDeliveryStatus
from threadline.webhooks import service
from threadline.webhooks.repository import WebhookRepository

if TYPE_CHECKING:
    from threadline.metrics import Metrics

log = structlog.get_logger(__name__)

EXCERPT_BYTES = 1024
MAX_ERROR_CHARS = 1000
USER_AGENT = f"threadline-webhooks/{__version__}"
OUTCOMES = ("succeeded", "http_error", "timeout", "network_error", "refused", "internal_error")

PENDING = WebhookDeliveryStatus.PENDING


def retry_schedule(settings: Settings) -> list[float]:
    """Seconds to wait before each retry: ``webhook_retry_schedule_s`` parsed."""
    return [float(part) for part in settings.webhooks.retry_schedule_s.split(",") if part.strip()]


@dataclass(frozen=True, slots=True)
class Plan:
    """What an attempt needs, read before it starts."""

    workspace_id: int
    delivery_id: int
    endpoint_id: int
    delivery_public_id: uuid.UUID  # what the API and the logs call the delivery and its webhook
    endpoint_public_id: uuid.UUID
    series: int
    enabled: bool
    url: str
    secret_ciphertexts: tuple[bytes, ...]  # the current secret first, then the previous one in its grace period
    event_id: uuid.UUID
    event_seq: int | None
    body: bytes | None  # None: the event is past its retention


@dataclass(frozen=True, slots=True)
class Outcome:
    outcome: str  # one of OUTCOMES
    started_at: datetime
    duration_ms: int = 0
    status_code: int | None = None
    error: str | None = None
    response_body: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.outcome == "succeeded"


# ---------------------------------------------------------------------------------------------- the job


async def attempt_delivery(
    session: AsyncSession,
    *,
    workspace_id: int,
    delivery_id: int,
    series: int,
    settings: Settings,
    metrics: Metrics | None = None,
) -> Outcome | None:
    """Make the due attempt of a delivery and record it in ``session`` (the job's transaction, not yet
    begun). Returns the outcome, or None when nothing was sent."""
    engine = session.bind
    assert isinstance(engine, AsyncEngine), "the job's session must be bound to an engine"
    plan = await load_plan(engine, workspace_id=workspace_id, delivery_id=delivery_id, series=series)
    if plan is None:
        return None  # deleted, finished, or a newer series took over
    if not plan.enabled:
        await finish_unsent(session, plan, error=service.DISABLED_ERROR)
        return None
    if plan.body is None:
        await finish_unsent(session, plan, error="the event is past its retention and can no longer be sent")
        return None
    try:
        secrets = [secret_box(settings).decrypt(c) for c in plan.secret_ciphertexts]
    except SecretDecryptionError as exc:
        outcome = Outcome("internal_error", utcnow(), error=f"cannot sign: {exc}")
    else:
        outcome = await send(
            plan, secrets, timeout_s=settings.webhooks.timeout_s, allow_private=settings.webhooks.allow_private_urls
        )
    if metrics is not None:
        metrics.observe_webhook(outcome.outcome, outcome.duration_ms / 1000)
    (log.debug if outcome.succeeded else log.info)(
        "webhook.attempt",
        delivery_id=str(plan.delivery_public_id),
        webhook_id=str(plan.endpoint_public_id),
        outcome=outcome.outcome,
        status_code=outcome.status_code,
        duration_ms=outcome.duration_ms,
        error=outcome.error,
    )
    await record(session, plan, outcome, settings=settings)
    return outcome


async def load_plan(engine: AsyncEngine, *, workspace_id: int, delivery_id: int, series: int) -> Plan | None:
    """Read in an autocommit session of its own (released before the request goes out)."""
    async with AsyncSession(read_engine(engine)) as session:
        found = await WebhookRepository(session, workspace_id).attempt_plan(delivery_id)
    if found is None:
        return None
    row, event = found
    if row.status != PENDING or row.series != series:
        return None
    ciphertexts = [row.secret_ciphertext]
    previous_until = row.previous_secret_expires_at
    if row.previous_secret_ciphertext is not None and previous_until is not None and previous_until > utcnow():
        ciphertexts.append(row.previous_secret_ciphertext)
    return Plan(
        workspace_id=workspace_id,
        delivery_id=row.delivery_id,
        endpoint_id=row.endpoint_id,
        delivery_public_id=row.delivery_public_id,
        endpoint_public_id=row.endpoint_public_id,
        series=series,
        enabled=row.enabled,
        url=row.url,
        secret_ciphertexts=tuple(ciphertexts),
        event_id=row.event_id,
        event_seq=event.seq if event is not None else row.event_seq,
        body=encode(envelope(event)) if event is not None else None,
    )


# ---------------------------------------------------------------------------------------------- sending


def sign(secrets: list[str], *, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: one ``v1,<base64 HMAC-SHA256>`` per secret, space-separated."""
    at = datetime.fromtimestamp(timestamp, UTC)
    text = body.decode()
    return " ".join(Webhook(secret).sign(msg_id, at, text) for secret in secrets)


async def send(plan: Plan, secrets: list[str], *, timeout_s: float, allow_private: bool) -> Outcome:
    """POST the event to the endpoint: one request, no redirects followed, ``timeout_s`` for all of it
    (name resolution, connect, TLS, request and response), at most ``EXCERPT_BYTES`` of the answer read."""
    assert plan.body is not None
    started_at = utcnow()
    began = time.perf_counter()

    def done(outcome: str, **fields: Any) -> Outcome:
        elapsed = round((time.perf_counter() - began) * 1000)
        return Outcome(outcome, started_at, duration_ms=elapsed, **fields)

    try:
        url = parse_url(plan.url)
    except BadURL as exc:
        return done("refused", error=_clean(f"refused: the URL {exc}"))
    timestamp = int(time.time())
    headers = [
        (b"content-type", b"application/json"),
        (b"user-agent", USER_AGENT.encode()),
        (b"webhook-id", str(plan.event_id).encode()),
        (b"webhook-timestamp", str(timestamp).encode()),
        (b"webhook-signature", sign(secrets, msg_id=str(plan.event_id), timestamp=timestamp, body=plan.body).encode()),
    ]
    target = httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path)
    timeouts = {"connect": timeout_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
    try:
        async with asyncio.timeout(timeout_s):
            async with _pool(allow_private).stream(
                "POST", target, headers=headers, content=plan.body, extensions={"timeout": timeouts}
            ) as response:
                status = response.status
                excerpt = await _excerpt(response)
    except (TimeoutError, httpcore.TimeoutException):
        return done("timeout", error=f"timed out after {timeout_s:g} s")
    except AddressRefused as exc:
        return done("refused", error=_clean(str(exc)))
    except httpcore.ConnectError as exc:
        return done("network_error", error=_clean(f"cannot connect: {exc or type(exc).__name__}"))
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
        return done("network_error", error=_clean(f"{type(exc).__name__}: {exc}"))
    if 200 <= status < 300:
        return done("succeeded", status_code=status, response_body=excerpt)
    return done("http_error", status_code=status, error=f"HTTP {status}", response_body=excerpt)


async def _excerpt(response: httpcore.Response) -> str | None:
    """The start of the body; the rest is never read (the connection is then closed, not reused)."""
    data = bytearray()
    stream = cast(AsyncGenerator[bytes, None], response.aiter_stream())  # an async generator: close it early
    async with contextlib.aclosing(stream):
        async for chunk in stream:
            data += chunk
            if len(data) >= EXCERPT_BYTES:
                break
    return _clean(bytes(data[:EXCERPT_BYTES]).decode("utf-8", errors="replace"), EXCERPT_BYTES) if data else None


def _clean(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Storable in both databases (no NUL) and at most ``limit`` characters."""
    text = text.replace("\x00", "\ufffd")
    return text if len(text) <= limit else text[: limit - 3] + "..."


_ssl_context: ssl.SSLContext | None = None
# One pool per event loop (an httpcore pool belongs to the loop it first ran in) and per SSRF policy.
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bool, httpcore.AsyncConnectionPool]] = (
    weakref.WeakKeyDictionary()
)


def _pool(allow_private: bool) -> httpcore.AsyncConnectionPool:
    """Keep-alive connections to receivers, shared by this process's attempts. httpcore directly rather
    than an httpx client: its pool takes the guarded network backend (httpx's transport does not expose
    one), never reads proxy settings from the environment and never follows redirects."""
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context(cafile=certifi.where())
    pools = _pools.setdefault(asyncio.get_running_loop(), {})
    pool = pools.get(allow_private)
    if pool is None:
        pool = pools[allow_private] = httpcore.AsyncConnectionPool(
            ssl_context=_ssl_context,
            max_connections=None,  # the worker's concurrency bounds them; a slow receiver must not queue others
            max_keepalive_connections=100,
            keepalive_expiry=30,
            retries=0,
            network_backend=GuardedBackend(allow_private=allow_private),
        )
    return pool


# ---------------------------------------------------------------------------------------------- recording


async def record(session: AsyncSession, plan: Plan, outcome: Outcome, *, settings: Settings) -> None:
    """Write what the attempt did, in the job's transaction: the endpoint's run of failures first (its row
    is the first lock taken), then the attempt and the delivery, then, if the run is long enough, the
    endpoint's disabling. Plain statements, no ORM objects: this is the hot path of every delivery."""
    now = utcnow()
    repo = WebhookRepository(session, plan.workspace_id)
    disable_reason = None
    if outcome.succeeded:
        await repo.reset_failures(plan.endpoint_id)
    else:
        run = await repo.count_failure(plan.endpoint_id, now=now)
        if run is not None and run.enabled and _long_enough(run.consecutive_failures, run.failing_since, now, settings):
            disable_reason = (
                f"disabled after {run.consecutive_failures} consecutive failed attempts since "
                f"{run.failing_since:%Y-%m-%d %H:%M:%S} UTC; the last: {outcome.error}"
            )
    noted = await repo.note_attempt(
        plan.delivery_id,
        series=plan.series,
        succeeded=outcome.succeeded,
        status_code=outcome.status_code,
        error=outcome.error,
        event_seq=plan.event_seq,
    )
    if noted is not None:
        await repo.add_attempt(
            plan.delivery_id,
            attempt=noted.attempts,
            status_code=outcome.status_code,
            duration_ms=outcome.duration_ms,
            error=outcome.error,
            response_body=outcome.response_body,
            created_at=outcome.started_at,
        )
        still_pending = noted.series == plan.series and noted.status == PENDING
        if not outcome.succeeded and still_pending:
            await _next_attempt(session, repo, plan, noted.series_attempts, now, settings, final=bool(disable_reason))
    if disable_reason is not None:
        endpoint = await repo.endpoint_by_key(plan.endpoint_id, lock=True)
        if endpoint is not None and endpoint.enabled:
            await service.disable_endpoint(session, repo, endpoint, reason=disable_reason, automatic=True)


def _long_enough(failures: int, since: datetime | None, now: datetime, settings: Settings) -> bool:
    if failures < settings.webhooks.disable_after_failures:
        return False
    return since is None or (now - since).total_seconds() >= settings.webhooks.disable_after_s


async def _next_attempt(
    session: AsyncSession,
    repo: WebhookRepository,
    plan: Plan,
    failed_in_series: int,
    now: datetime,
    settings: Settings,
    *,
    final: bool,
) -> None:
    """After a failed attempt: the next one scheduled (a job of its own), or failed after the last retry."""
    schedule = retry_schedule(settings)
    if final or failed_in_series > len(schedule):
        await repo.end_series(plan.delivery_id, status=WebhookDeliveryStatus.FAILED)
        return
    run_at = now + timedelta(seconds=schedule[failed_in_series - 1])
    await repo.end_series(plan.delivery_id, status=PENDING, next_attempt_at=run_at)
    await service.enqueue_attempt(
        session, workspace_id=plan.workspace_id, delivery_id=plan.delivery_id, series=plan.series, run_at=run_at
    )


async def finish_unsent(session: AsyncSession, plan: Plan, *, error: str) -> None:
    """End a delivery that cannot be sent (endpoint disabled, event gone) as failed, without an attempt."""
    delivery = await WebhookRepository(session, plan.workspace_id).delivery_by_key(plan.delivery_id, lock=True)
    if delivery is not None and delivery.status == PENDING and delivery.series == plan.series:
        delivery.status = WebhookDeliveryStatus.FAILED
        delivery.last_error = error
        delivery.next_attempt_at = None
        await session.flush()
