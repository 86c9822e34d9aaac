"""The base every repository builds on: constructed with the workspace, so no query can forget the tenant."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.errors import InvalidRequest, NotFound
from threadline.kit.ids import parse_uuid

M = TypeVar("M")


class WorkspaceRepository:
    def __init__(self, session: AsyncSession, workspace_id: int) -> None:
        self.session = session
        self.workspace_id = workspace_id

    def scoped(self, model: Any) -> Select[Any]:
        """``SELECT model WHERE workspace_id = <this workspace>``: the start of every query."""
        return select(model).where(model.workspace_id == self.workspace_id)

    async def find(self, model: type[M], public_id: str | uuid.UUID) -> M | None:
        uid = public_id if isinstance(public_id, uuid.UUID) else parse_uuid(public_id)
        if uid is None:
            return None
        stmt = self.scoped(model).where(model.public_id == uid)  # type: ignore[attr-defined]
        row: M | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return row

    async def get(self, model: type[M], public_id: str | uuid.UUID, *, label: str, param: str | None = None) -> M:
        """The row, or NotFound (404) that reads the same for "absent" and "another workspace's";
        ``param`` names the request field that referred to it, when one did."""
        row = await self.find(model, public_id)
        if row is None:
            raise NotFound(f"no {label} with id '{public_id}'", param=param)
        return row

    async def cursor_key(self, model: Any, public_id: str | None, *, param: str, label: str) -> int | None:
        """The integer key behind an ``after``/``before`` id; an unknown id is a 400 that says so."""
        if public_id is None:
            return None
        row = await self.find(model, public_id)
        if row is None:
            raise InvalidRequest(f"{param}: no {label} with id '{public_id}' in this list", param=param)
        key: int = row.id
        return key

    async def many(self, model: type[M], public_ids: list[str], *, param: str, label: str) -> list[M]:
        """The rows named by ``public_ids``, each of which must exist here (404 naming ``param``), deduplicated."""
        uids = [parse_uuid(p) for p in public_ids]
        found: dict[uuid.UUID, M] = {}
        valid = [u for u in uids if u is not None]
        if valid:
            stmt = self.scoped(model).where(model.public_id.in_(valid))  # type: ignore[attr-defined]
            found = {row.public_id: row for row in (await self.session.execute(stmt)).scalars()}
        for raw, uid in zip(public_ids, uids, strict=True):
            if uid is None or uid not in found:
                raise NotFound(f"no {label} with id '{raw}'", param=param)
        return [found[u] for u in dict.fromkeys(valid)]

    async def public_ids(self, model: Any, ids: set[int]) -> dict[int, uuid.UUID]:
        """{row id: public id} for rows of ``model`` referenced by a page of results: one query."""
        if not ids:
            return {}
        stmt = select(model.id, model.public_id).where(model.workspace_id == self.workspace_id, model.id.in_(ids))
        return {row.id: row.public_id for row in (await self.session.execute(stmt))}
