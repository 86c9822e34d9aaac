"""Executing an erasure (the ``end_users.erase`` job): delete everything that holds an end user's words, in
bounded batches, each committed with the count of what it deleted.

The request that asked for it (``privacy.service.request_erasure``) has already blanked the end user's
profile, freed their address and marked their threads, which from then on take no new message and no run
answers in. Then, step by step (``Erasure.step``):

1. **planning**: the work list, kept on the erasure: the public ids of the end user's threads and of the
   threads (deleted ones too) whose events name them.
2. **threads**: for each thread, its events (with their webhook deliveries and those deliveries' attempts),
   its runs (with their jobs; token usage is added to the kept figures) and its messages (with their send
   and read-receipt jobs; counts, SMS segments and provider cost are kept), batch by batch; then, in one
   transaction holding the thread's row lock, what is left of those and the thread itself (its metadata,
   flow state, tags and assignees go with it).
3. **events**: the events left of the work list's threads (threads deleted before the erasure), and any
   event whose data names the end user.
4. **idempotency_keys**: stored responses (decrypted) and request paths naming the end user or one of
   their threads: every response that showed their words names one of those.
5. **end_user**: the end user's row; the erasure is ``completed`` and forgets its work list.

Every step deletes what is still there, so a retry after a crash starts over and finds less to do; the
figures are counted from what each statement deleted (``RETURNING``), so nothing is counted twice.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from threadline.channels.outbox import DELIVER_KIND, RECEIPT_KIND, dedupe_key, receipt_dedupe_key
from threadline.kit.clock import utcnow
from threadline.kit.secrets import SecretBox, SecretDecryptionError
from threadline.models import Erasure, ErasureStatus
from threadline.models.enums import Direction
from threadline.privacy.repository import ErasureRepository, ExportRepository
from threadline.search import service as search

log = structlog.get_logger(__name__)

ERASE_KIND = "end_users.erase"
BATCH_SIZE = 500
THREADS_AT_ONCE = 50
_UUID = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class ErasureGone(Exception):
    """The erasure row is not there (its workspace was deleted): nothing is left to do."""


def _added(totals: dict[str, Any] | None, **counts: int) -> dict[str, Any]:
    """``totals`` with ``counts`` added, as a new dict (a JSON column notices a new value, not a mutation)."""
    out = dict(totals or {})
    for key, count in counts.items():
        if count:
            out[key] = int(out.get(key, 0)) + count
    return out


def _with_cost(kept: dict[str, Any], rows: Sequence[Any]) -> dict[str, Any]:
    """``kept`` with the providers' prices of ``rows`` added to ``provider_cost``, per currency."""
    cost = dict(kept.get("provider_cost") or {})
    for row in rows:
        if row.price is None:
            continue
        try:
            price = Decimal(row.price)
        except InvalidOperation:
            continue
        currency = (row.price_currency or "").upper() or "unknown"
        cost[currency] = str(Decimal(cost.get(currency, "0")) + price)
    return {**kept, "provider_cost": cost} if cost else kept


def named_ids(path: str, body: bytes) -> set[str]:
    """Every UUID in a stored request's path and response body, lower case."""
    found = _UUID.findall(path.encode("utf-8", "surrogatepass")) + _UUID.findall(body)
    return {raw.decode().lower() for raw in found}


@dataclass
class Eraser:
    """One execution of one erasure; ``run`` may be called again after a failure, and does what is left."""

    sessionmaker: async_sessionmaker[AsyncSession]
    workspace_id: int
    erasure_id: int
    box: SecretBox
    batch_size: int = BATCH_SIZE
    public_id: uuid.UUID | None = field(default=None, init=False)  # the erasure's, once read: what logs show

    async def run(self) -> None:
        started = await self.plan()
        if started is None:
            return
        end_user_key, end_user_uid, thread_uids = started
        bound = log.bind(erasure_id=str(self.public_id))
        bound.info("erasure.started", threads=len(thread_uids))
        if end_user_key is not None:
            await self.erase_threads(end_user_key)
        await self.erase_events(thread_uids, end_user_uid)
        await self.erase_idempotency_keys({str(end_user_uid), *(str(t) for t in thread_uids)})
        await self.finish(end_user_key)
        bound.info("erasure.completed")

    @asynccontextmanager
    async def batch(self, step: str) -> AsyncIterator[tuple[ErasureRepository, Erasure]]:
        """A short transaction of its own, holding the erasure's row lock, in which ``step`` deletes a batch
        and counts it on the erasure."""
        async with self.sessionmaker() as session, session.begin():
            repo = ErasureRepository(session, self.workspace_id)
            erasure = await repo.lock(self.erasure_id)
            if erasure is None:
                raise ErasureGone(f"erasure {self.erasure_id} is gone")
            if erasure.step != step and erasure.status is not ErasureStatus.COMPLETED:
                erasure.step = step
            yield repo, erasure
            erasure.updated_at = utcnow()

    # ------------------------------------------------------------------------------------ 1. planning

    async def plan(self) -> tuple[int | None, uuid.UUID, list[uuid.UUID]] | None:
        """(the end user's row id, or None once deleted; their public id; the work list), or None when the
        erasure is complete already."""
        async with self.batch("planning") as (repo, erasure):
            self.public_id = erasure.public_id
            if erasure.status is ErasureStatus.COMPLETED:
                return None
            erasure.status = ErasureStatus.RUNNING
            erasure.started_at = erasure.started_at or utcnow()
            end_user_key = await repo.end_user_key(erasure.end_user_id)
            if erasure.thread_ids is None:
                current, messages = await repo.plan(end_user_key) if end_user_key is not None else ([], 0)
                named = await ExportRepository(repo.session, self.workspace_id).threads_named_in_events(
                    erasure.end_user_id
                )
                erasure.thread_ids = sorted({str(t) for t in (*current, *named)})
                erasure.planned = {"threads": len(current), "messages": messages}
            return end_user_key, erasure.end_user_id, [uuid.UUID(t) for t in erasure.thread_ids]

    # ------------------------------------------------------------------------------------ 2. threads

    async def erase_threads(self, end_user_key: int) -> None:
        while True:
            async with self.sessionmaker() as session:
                thread_keys = await ErasureRepository(session, self.workspace_id).thread_batch(
                    end_user_key, limit=THREADS_AT_ONCE
                )
            if not thread_keys:
                return
            for thread in thread_keys:
                await self.erase_thread(thread.id, thread.public_id)

    async def erase_thread(self, thread_key: int, thread_uid: uuid.UUID) -> None:
        while await self._events_batch("threads", thread_uid=thread_uid):
            pass
        while await self._runs_batch(thread_key):
            pass
        while await self._messages_batch(thread_key):
            pass
        # What arrived between the batches (a run's last event, a late status callback), and the thread: under
        # its row lock, so nothing can name it after this commits.
        async with self.batch("threads") as (repo, erasure):
            if await repo.lock_thread(thread_key) is None:
                return
            await self.delete_events(repo, erasure, thread_uid=thread_uid, limit=None)
            await self.delete_runs(repo, erasure, thread_key, limit=None)
            await self.delete_messages(repo, erasure, thread_key, limit=None)
            deleted = await repo.delete_thread(thread_key)
            erasure.erased = _added(erasure.erased, threads=deleted)
            erasure.kept = _added(erasure.kept, threads=deleted)

    async def _events_batch(self, step: str, **which: Any) -> bool:
        """One batch of events; whether there may be more."""
        async with self.batch(step) as (repo, erasure):
            count = await self.delete_events(repo, erasure, limit=self.batch_size, **which)
        return count >= self.batch_size

    async def _runs_batch(self, thread_key: int) -> bool:
        async with self.batch("threads") as (repo, erasure):
            count = await self.delete_runs(repo, erasure, thread_key, limit=self.batch_size)
        return count >= self.batch_size

    async def _messages_batch(self, thread_key: int) -> bool:
        async with self.batch("threads") as (repo, erasure):
            count = await self.delete_messages(repo, erasure, thread_key, limit=self.batch_size)
        return count >= self.batch_size

    async def delete_events(
        self,
        repo: ErasureRepository,
        erasure: Erasure,
        *,
        limit: int | None,
        thread_uid: uuid.UUID | None = None,
        end_user_uid: uuid.UUID | None = None,
    ) -> int:
        events, deliveries = await repo.delete_events(thread_uid=thread_uid, end_user_uid=end_user_uid, limit=limit)
        erasure.erased = _added(erasure.erased, events=events, webhook_deliveries=deliveries)
        return events

    async def delete_runs(
        self, repo: ErasureRepository, erasure: Erasure, thread_key: int, *, limit: int | None
    ) -> int:
        rows = await repo.delete_runs(thread_key, limit=limit)
        jobs = await repo.delete_jobs([r.job_id for r in rows if r.job_id is not None])
        usage = [r.usage or {} for r in rows]
        tokens_in = sum(int(u.get("input_tokens", 0) or 0) for u in usage)
        tokens_out = sum(int(u.get("output_tokens", 0) or 0) for u in usage)
        erasure.erased = _added(erasure.erased, runs=len(rows), jobs=jobs)
        erasure.kept = _added(
            erasure.kept,
            runs=len(rows),
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            total_tokens=tokens_in + tokens_out,
        )
        return len(rows)

    async def delete_messages(
        self, repo: ErasureRepository, erasure: Erasure, thread_key: int, *, limit: int | None
    ) -> int:
        rows = await repo.delete_messages(thread_key, limit=limit)
        jobs = await repo.delete_keyed_jobs(*_send_jobs([r.id for r in rows]))
        inbound = sum(1 for r in rows if r.direction == Direction.INBOUND)
        erasure.erased = _added(erasure.erased, messages=len(rows), jobs=jobs)
        kept = _added(
            erasure.kept,
            messages=len(rows),
            messages_inbound=inbound,
            messages_outbound=len(rows) - inbound,
            sms_segments=sum(r.segments or 0 for r in rows),
        )
        erasure.kept = _with_cost(kept, rows)
        return len(rows)

    # ------------------------------------------------------------------------------------ 3. events

    async def erase_events(self, thread_uids: list[uuid.UUID], end_user_uid: uuid.UUID) -> None:
        for thread_uid in thread_uids:
            while await self._events_batch("events", thread_uid=thread_uid):
                pass
        while await self._events_batch("events", end_user_uid=end_user_uid):
            pass

    # ------------------------------------------------------------------------------------ 4. stored responses

    async def erase_idempotency_keys(self, targets: set[str]) -> None:
        """Delete the stored responses (and their requests) that name any of ``targets``: the end user's id
        and their threads' ids. Expired ones too: until the hourly purge, they are still stored."""
        after = 0
        while True:
            async with self.batch("idempotency_keys") as (repo, erasure):
                rows = await repo.idempotency_batch(after=after, limit=self.batch_size)
                if not rows:
                    return
                doomed = [row.id for row in rows if named_ids(row.path, self._plaintext(row)) & targets]
                deleted = await repo.delete_idempotency_keys(doomed)
                erasure.erased = _added(erasure.erased, idempotency_keys=deleted)
                after = rows[-1].id

    def _plaintext(self, row: Any) -> bytes:
        if not row.response_body:
            return b""  # a claim whose response is not stored (yet): its path is all there is
        try:
            return self.box.decrypt_bytes(row.response_body)
        except SecretDecryptionError:
            # No configured key opens it: nobody can read it either (a replay answers 409). Its path still counts.
            log.warning("erasure.idempotency_unreadable", erasure_id=str(self.public_id))
            return b""

    # ------------------------------------------------------------------------------------ 5. the end user

    async def finish(self, end_user_key: int | None) -> None:
        async with self.batch("end_user") as (repo, erasure):
            if end_user_key is not None:
                if await repo.thread_batch(end_user_key, limit=1):
                    # Cannot happen (their threads take no new thread); should it, the job's retry erases it.
                    raise RuntimeError("the end user still has a thread")
                await repo.delete_end_user(end_user_key)
            # Their words out of SQLite's full-text index too, before the erasure says it is complete.
            await search.compact_index(repo.session)
            erasure.status = ErasureStatus.COMPLETED
            erasure.step = "done"
            erasure.thread_ids = None
            erasure.error = None
            erasure.finished_at = utcnow()


async def record_failure(
    sessionmaker: async_sessionmaker[AsyncSession], *, workspace_id: int, erasure_id: int, error: str, final: bool
) -> None:
    """Note why an attempt failed (the kind of error only: a message could quote what is being erased); on
    the job's last attempt the erasure is ``failed`` (a new erasure request starts it again)."""
    async with sessionmaker() as session, session.begin():
        erasure = await ErasureRepository(session, workspace_id).lock(erasure_id)
        if erasure is None or erasure.status is ErasureStatus.COMPLETED:
            return
        erasure.error = error[:200]
        if final:
            erasure.status = ErasureStatus.FAILED
            erasure.finished_at = utcnow()
        erasure.updated_at = utcnow()


def _send_jobs(message_ids: list[int]) -> tuple[list[str], list[str]]:
    """The kinds and dedupe keys of the jobs that send these messages or their read receipts."""
    keys = [dedupe_key(i) for i in message_ids] + [receipt_dedupe_key(i) for i in message_ids]
    return [DELIVER_KIND, RECEIPT_KIND], keys
