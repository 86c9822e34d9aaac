"""Asking for an end user's erasure and following it. Services flush; the caller commits.

The request does at once what must not wait for the job: it blanks the end user's profile and frees their
address (so the next message from that phone number makes a new end user), marks them and their threads
as being erased (their threads take no new message from then on, and no run answers in them), and queues
the job that deletes the rest (privacy.erasure). All of it in the caller's transaction, under the end
user's row lock, which the channels' inbound messages and new threads for them take too: a message is
either stored before the erasure begins (and erased with them) or after it (with a new end user).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from threadline.audit import service as audit
from threadline.audit.actions import AuditAction
from threadline.audit.service import Actor
from threadline.errors import NotFound
from threadline.jobs.service import enqueue
from threadline.kit.clock import utcnow
from threadline.kit.ids import parse_uuid
from threadline.models import Erasure, ErasureStatus
from threadline.models.enums import JobState
from threadline.privacy.erasure import ERASE_KIND
from threadline.privacy.repository import ErasureRepository
from threadline.threads.repository import ThreadRepository

_UNDER_WAY = frozenset({JobState.QUEUED, JobState.RUNNING})


async def request_erasure(session: AsyncSession, *, workspace_id: int, end_user_id: str, actor: Actor) -> Erasure:
    """Begin erasing end user ``end_user_id`` and return the erasure; for an end user whose erasure began
    already, that erasure (queued again if it failed). 404 when there is no such end user here. Beginning
    (or resuming) an erasure is recorded in the audit log, as ``actor``'s."""
    uid = parse_uuid(end_user_id)
    if uid is None:
        raise NotFound(f"no end user with id '{end_user_id}'")
    repo = ErasureRepository(session, workspace_id)
    existing = await repo.by_end_user(uid)
    if existing is not None:
        was = existing.status
        erasure = await _resume(session, repo, existing)
        if erasure.status is ErasureStatus.QUEUED and was is not ErasureStatus.QUEUED:
            await _audit(session, workspace_id, actor, erasure, resumed=True)
        return erasure
    end_user = await ThreadRepository(session, workspace_id).lock_end_user(end_user_id)
    if end_user is None:
        # Not here, or a concurrent request erased them while we waited for their row.
        existing = await repo.by_end_user(uid)
        if existing is None:
            raise NotFound(f"no end user with id '{end_user_id}'")
        return existing
    now = utcnow()
    erasure = Erasure(
        workspace_id=workspace_id,
        end_user_id=uid,
        status=ErasureStatus.QUEUED,
        step="queued",
        erased={},
        kept={},
        created_at=now,
        updated_at=now,
    )
    session.add(erasure)
    await session.flush()
    await repo.mark_erased(end_user.id, now=now)
    await _enqueue(session, erasure)
    await _audit(session, workspace_id, actor, erasure, resumed=False)
    return erasure


async def record_export(session: AsyncSession, *, workspace_id: int, end_user_id: str, actor: Actor) -> None:
    """Record in the audit log that ``actor`` exported the end user's data (in ``session``'s transaction)."""
    await audit.record(
        session, workspace_id=workspace_id, actor=actor, action=AuditAction.END_USER_EXPORTED, target_id=end_user_id
    )


async def _audit(session: AsyncSession, workspace_id: int, actor: Actor, erasure: Erasure, *, resumed: bool) -> None:
    await audit.record(
        session,
        workspace_id=workspace_id,
        actor=actor,
        action=AuditAction.END_USER_ERASED,
        target_id=erasure.end_user_id,
        details={"erasure_id": str(erasure.public_id), "resumed": resumed},
    )


async def _resume(session: AsyncSession, repo: ErasureRepository, erasure: Erasure) -> Erasure:
    """The erasure as it is, or, when it stopped unfinished (its job used up its attempts), queued again."""
    if erasure.status is ErasureStatus.COMPLETED or await repo.job_state(erasure.job_id) in _UNDER_WAY:
        return erasure
    erasure.status = ErasureStatus.QUEUED
    erasure.finished_at = None
    erasure.updated_at = utcnow()
    await _enqueue(session, erasure)
    return erasure


async def _enqueue(session: AsyncSession, erasure: Erasure) -> None:
    job = await enqueue(session, kind=ERASE_KIND, payload={"erasure_id": erasure.id}, workspace_id=erasure.workspace_id)
    erasure.job_id = job.id
    await session.flush()


async def get_erasure(session: AsyncSession, *, workspace_id: int, erasure_id: str) -> tuple[Erasure, bool]:
    """The erasure, and whether it has stopped unfinished (its job is dead or gone, whatever the erasure row
    last said: a worker that died on the last attempt could not say it)."""
    repo = ErasureRepository(session, workspace_id)
    erasure = await repo.get(Erasure, erasure_id, label="erasure")
    stopped = erasure.status is not ErasureStatus.COMPLETED and await repo.job_state(erasure.job_id) in (
        JobState.DEAD,
        None,
    )
    return erasure, stopped
