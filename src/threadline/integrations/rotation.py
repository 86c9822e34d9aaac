"""Secret key rotation: every stored secret re-encrypted with the current first key, in every workspace.

What is encrypted at rest with ``THREADLINE_SECRET_KEYS`` and rewritten here: integrations' secrets,
webhook endpoints' signing secrets (the current one and the previous one of a rotation's grace period)
and the header values of agent versions' HTTP tools. Idempotency keys' stored responses are not: they
expire within ``idempotency_ttl_hours`` and, once unreadable, are refused with a 409 that asks for a new
key. The procedure: put the new key first (keeping the old one after it) on every process, run
``threadline secrets rotate``, then drop the old key.

Work goes in batches, each in its own transaction with its rows locked, so a large table is never held
at once and a concurrent change is never overwritten. Plaintexts never leave ``SecretBox.rotate``. Each row
re-encrypted is recorded in its workspace's audit log (``<kind>.secrets_reencrypted``), in its batch's
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from threadline.audit import service as audit
from threadline.audit.actions import AuditAction
from threadline.config import Settings
from threadline.integrations.repository import CiphertextRepository, CiphertextRow
from threadline.kit.secrets import SecretBox, SecretDecryptionError, secret_box
from threadline.models import AgentVersion, Integration, WebhookEndpoint

Kind = Literal["integration", "webhook_endpoint", "agent_version"]
KINDS: tuple[Kind, ...] = ("integration", "webhook_endpoint", "agent_version")
_AUDIT_ACTIONS: dict[Kind, AuditAction] = {
    "integration": AuditAction.INTEGRATION_SECRETS_REENCRYPTED,
    "webhook_endpoint": AuditAction.WEBHOOK_SECRETS_REENCRYPTED,
    "agent_version": AuditAction.AGENT_VERSION_SECRETS_REENCRYPTED,
}
DEFAULT_BATCH_SIZE = 200


@dataclass(frozen=True, slots=True)
class BatchResult:
    rotated: int
    unreadable: tuple[str, ...]  # "<kind> <public id>" of rows no configured key opens (left as they were)
    last_id: int | None  # where the next batch starts; None: this kind is done


@dataclass(slots=True)
class RotationReport:
    rotated: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    unreadable: list[str] = field(default_factory=list)


async def rotate_batch(
    session: AsyncSession, *, settings: Settings, kind: Kind, after_id: int, limit: int, actor: audit.Actor
) -> BatchResult:
    """Re-encrypt the next ``limit`` rows of ``kind`` after ``after_id`` with the first key, each recorded as
    done by ``actor`` (this flushes; the caller commits)."""
    box = secret_box(settings)
    repo = CiphertextRepository(session)
    model: Any
    if kind == "integration":
        rows, model = await repo.integrations(after_id=after_id, limit=limit), Integration
        last_id = rows[-1].id if rows else None
    elif kind == "webhook_endpoint":
        rows, model = await repo.webhook_endpoints(after_id=after_id, limit=limit), WebhookEndpoint
        last_id = rows[-1].id if rows else None
    else:
        (rows, last_id), model = await repo.agent_versions(after_id=after_id, limit=limit), AgentVersion
    rotated: list[CiphertextRow] = []
    unreadable: list[str] = []
    for row in rows:
        try:
            values = {name: _rotate_value(box, name, value) for name, value in row.values.items()}
        except SecretDecryptionError:
            unreadable.append(f"{kind} {row.public_id}")
            continue
        rotated.append(CiphertextRow(row.id, row.public_id, row.workspace_id, values))
    await repo.rewrite(model, rotated)
    for row in rotated:
        await audit.record(
            session, workspace_id=row.workspace_id, actor=actor, action=_AUDIT_ACTIONS[kind], target_id=row.public_id
        )
    return BatchResult(rotated=len(rotated), unreadable=tuple(unreadable), last_id=last_id)


def _rotate_value(box: SecretBox, name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "tools":
        return [_rotate_tool(box, tool) for tool in value]
    return box.rotate(value)


def _rotate_tool(box: SecretBox, tool: Any) -> Any:
    if not isinstance(tool, dict) or not isinstance(tool.get("headers_encrypted"), str):
        return tool
    token = tool["headers_encrypted"].encode("ascii")
    return {**tool, "headers_encrypted": box.rotate(token).decode("ascii")}


async def rotate_secret_keys(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    settings: Settings,
    actor: audit.Actor,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> RotationReport:
    """Every stored secret re-encrypted with the first of ``settings``' keys, ``batch_size`` rows per
    transaction, each row recorded in the audit log as done by ``actor``. Rows no configured key opens are
    left as they were and listed in the report."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = RotationReport()
    for kind in KINDS:
        after_id = 0
        while True:
            async with sessionmaker() as session, session.begin():
                result = await rotate_batch(
                    session, settings=settings, kind=kind, after_id=after_id, limit=batch_size, actor=actor
                )
            report.rotated[kind] += result.rotated
            report.unreadable.extend(result.unreadable)
            if result.last_id is None:
                break
            after_id = result.last_id
    return report
