"""All SQL of integrations. ``IntegrationRepository`` is built with the workspace; two parts are not, and say
so: ``find_for_channel`` (the providers' inbound webhooks, whose URL names the integration but not the
workspace) and ``CiphertextRepository`` (re-encrypting every workspace's stored secrets on key rotation)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, bindparam, cast, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.errors import NotFound
from threadline.kit.ids import parse_uuid
from threadline.kit.pagination import Page, PageRequest, keyset_page
from threadline.kit.repository import WorkspaceRepository
from threadline.models import Agent, AgentVersion, Integration, Thread, WebhookEndpoint, Workspace
from threadline.models.enums import ChannelType


class IntegrationRepository(WorkspaceRepository):
    async def get_integration(self, integration_id: str, *, for_update: bool = False) -> Integration:
        """The integration (404 if absent); ``for_update`` locks its row until the transaction ends, so
        read-modify-write changes (merging secrets) never lose a concurrent one (FOR UPDATE on PostgreSQL;
        SQLite runs one writer at a time already)."""
        if not for_update:
            return await self.get(Integration, integration_id, label="integration")
        uid = parse_uuid(integration_id)
        found = None
        if uid is not None:
            stmt = (
                self.scoped(Integration)
                .where(Integration.public_id == uid)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
            found = (await self.session.execute(stmt)).scalar_one_or_none()
        if found is None:
            raise NotFound(f"no integration with id '{integration_id}'")
        integration: Integration = found
        return integration

    async def get_agent(self, agent_id: str, *, param: str) -> Agent:
        return await self.get(Agent, agent_id, label="agent", param=param)

    async def agent_public_ids(self, ids: set[int]) -> dict[int, uuid.UUID]:
        """{agent row id: public id} for the agents a page of integrations points at, in one query."""
        if not ids:
            return {}
        stmt = select(Agent.id, Agent.public_id).where(Agent.workspace_id == self.workspace_id, Agent.id.in_(ids))
        return {row.id: row.public_id for row in await self.session.execute(stmt)}

    async def list(
        self,
        page: PageRequest,
        *,
        type: ChannelType | None = None,
        agent_id: int | None = None,
        enabled: bool | None = None,
    ) -> Page[Integration]:
        stmt = self.scoped(Integration)
        if type is not None:
            stmt = stmt.where(Integration.type == type)
        if agent_id is not None:
            stmt = stmt.where(Integration.agent_id == agent_id)
        if enabled is not None:
            stmt = stmt.where(Integration.enabled == enabled)
        return await keyset_page(self.session, stmt, Integration.id, page)

    async def has_threads(self, integration: Integration) -> bool:
        stmt = select(Thread.id).where(
            Thread.workspace_id == self.workspace_id, Thread.integration_id == integration.id
        )
        return (await self.session.execute(stmt.limit(1))).first() is not None

    async def delete_integration(self, integration: Integration) -> None:
        await self.session.execute(
            delete(Integration).where(Integration.id == integration.id, Integration.workspace_id == self.workspace_id)
        )

    async def oldest_enabled(self, type: ChannelType) -> Integration | None:
        """The workspace's first-created enabled integration of ``type``, if it has one."""
        stmt = (
            self.scoped(Integration)
            .where(Integration.type == type, Integration.enabled.is_(True))
            .order_by(Integration.id)
            .limit(1)
        )
        integration: Integration | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return integration

    async def lock_workspace(self) -> None:
        """Lock the workspace's row until the transaction ends (FOR NO KEY UPDATE on PostgreSQL, which two
        callers cannot both hold, but which leaves alone the foreign-key checks of every row written in the
        workspace; SQLite runs one writer at a time already)."""
        stmt = select(Workspace.id).where(Workspace.id == self.workspace_id).with_for_update(key_share=True)
        await self.session.execute(stmt)


async def find_for_channel(
    session: AsyncSession, *, workspace_id: int | None, integration_id: int | str | uuid.UUID
) -> Integration | None:
    """The integration a channel works with, by internal id (an int) or public id (a UUID or its string).

    ``workspace_id=None`` looks in EVERY workspace, on purpose and only for this: a provider's inbound
    webhook URL (``/channels/twilio/{integration_id}/...``) names the integration by its public id and
    nothing else, and the request is authenticated afterwards by the provider's signature made with that
    integration's own secret. A string is only ever taken as a public id (an unguessable UUID), never as
    an internal id, so a URL cannot reach an integration by counting.
    """
    stmt = select(Integration)
    if isinstance(integration_id, int):
        stmt = stmt.where(Integration.id == integration_id)
    else:
        uid = integration_id if isinstance(integration_id, uuid.UUID) else parse_uuid(integration_id)
        if uid is None:
            return None
        stmt = stmt.where(Integration.public_id == uid)
    if workspace_id is not None:
        stmt = stmt.where(Integration.workspace_id == workspace_id)
    found: Integration | None = (await session.execute(stmt)).scalar_one_or_none()
    return found


# ------------------------------------------------------------------------------ key rotation (all workspaces)


@dataclass(frozen=True, slots=True)
class CiphertextRow:
    """One row's encrypted values, by column (a value None is absent). For agent versions the value is
    the whole ``tools`` list, whose HTTP tools carry ``headers_encrypted`` tokens."""

    id: int
    public_id: uuid.UUID
    workspace_id: int
    values: dict[str, Any]


class CiphertextRepository:
    """The rows that hold ciphertexts, in every workspace, read and rewritten in batches for key rotation
    (``threadline secrets rotate``). Rows are locked (FOR UPDATE) until the batch's transaction ends, so a
    concurrent change is never overwritten with the re-encryption of what it replaced. Rewrites keep
    ``updated_at``: re-encrypting the same plaintext is no change to the resource."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def integrations(self, *, after_id: int, limit: int) -> list[CiphertextRow]:
        stmt = (
            select(Integration.id, Integration.public_id, Integration.workspace_id, Integration.secrets_ciphertext)
            .where(Integration.id > after_id, Integration.secrets_ciphertext.is_not(None))
            .order_by(Integration.id)
            .limit(limit)
            .with_for_update()
        )
        rows = await self.session.execute(stmt)
        return [
            CiphertextRow(r.id, r.public_id, r.workspace_id, {"secrets_ciphertext": r.secrets_ciphertext}) for r in rows
        ]

    async def webhook_endpoints(self, *, after_id: int, limit: int) -> list[CiphertextRow]:
        stmt = (
            select(
                WebhookEndpoint.id,
                WebhookEndpoint.public_id,
                WebhookEndpoint.workspace_id,
                WebhookEndpoint.secret_ciphertext,
                WebhookEndpoint.previous_secret_ciphertext,
            )
            .where(WebhookEndpoint.id > after_id)
            .order_by(WebhookEndpoint.id)
            .limit(limit)
            .with_for_update()
        )
        rows = await self.session.execute(stmt)
        return [
            CiphertextRow(
                r.id,
                r.public_id,
                r.workspace_id,
                {"secret_ciphertext": r.secret_ciphertext, "previous_secret_ciphertext": r.previous_secret_ciphertext},
            )
            for r in rows
        ]

    async def agent_versions(self, *, after_id: int, limit: int) -> tuple[list[CiphertextRow], int | None]:
        """Agent versions whose tools hold sealed headers; and the last id looked at (None: no more rows),
        since a batch may find none among the rows it scanned."""
        scanned = (
            select(AgentVersion.id).where(AgentVersion.id > after_id).order_by(AgentVersion.id).limit(limit).subquery()
        )
        last = (await self.session.execute(select(scanned.c.id).order_by(scanned.c.id.desc()).limit(1))).scalar()
        if last is None:
            return [], None
        stmt = (
            select(AgentVersion.id, AgentVersion.public_id, AgentVersion.workspace_id, AgentVersion.tools)
            .where(
                AgentVersion.id > after_id,
                AgentVersion.id <= last,
                cast(AgentVersion.tools, Text).contains("headers_encrypted", autoescape=True),
            )
            .order_by(AgentVersion.id)
            .with_for_update()
        )
        rows = await self.session.execute(stmt)
        return [CiphertextRow(r.id, r.public_id, r.workspace_id, {"tools": r.tools}) for r in rows], int(last)

    async def rewrite(self, model: Any, rows: Sequence[CiphertextRow]) -> None:
        """Write each row's ``values`` back (one executemany), leaving ``updated_at`` as it was."""
        if not rows:
            return
        table = model.__table__
        columns = sorted({name for row in rows for name in row.values})
        values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in columns}
        if "updated_at" in table.c:
            values["updated_at"] = table.c.updated_at
        stmt = update(table).where(table.c.id == bindparam("v_row_id")).values(values)
        params = [{"v_row_id": row.id, **{f"v_{name}": row.values.get(name) for name in columns}} for row in rows]
        await self.session.execute(stmt, params)
