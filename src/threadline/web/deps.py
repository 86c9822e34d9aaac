"""FastAPI dependencies shared by every surface: the request's session and the caller's principal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.auth.principal import Principal
from threadline.auth.service import authenticate, extract_key
from threadline.errors import Forbidden, Unauthenticated
from threadline.models.enums import Scope
from threadline.web.session import SessionHolder


def get_session(request: Request) -> AsyncSession:
    holder: SessionHolder = request.scope["state"]["db"]
    return holder.session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def resolve_principal(request: Request) -> Principal | None:
    """Authenticate once per request (the idempotency layer may already have done it)."""
    state = request.scope.setdefault("state", {})
    if "principal" in state:
        cached: Principal | None = state["principal"]
        return cached
    key = extract_key(request.headers)
    principal = await authenticate(get_session(request), key) if key else None
    state["principal"] = principal
    if principal is not None:
        request.app.state.last_used.touch(principal.api_key_id)
    return principal


def require(scope: Scope) -> Callable[[Request], Awaitable[Principal]]:
    async def dependency(request: Request) -> Principal:
        principal = await resolve_principal(request)
        if principal is None:
            has_credentials = extract_key(request.headers) is not None
            raise Unauthenticated(
                "invalid or revoked API key" if has_credentials else
                "missing API key: send 'Authorization: Bearer KEY', 'Authorization: api-key KEY' or 'X-API-Key: KEY'"
            )
        if not principal.allows(scope):
            raise Forbidden(f"this API key lacks the '{scope.value}' scope")
        return principal

    return dependency


ReadAuth = Annotated[Principal, Depends(require(Scope.READ))]
WriteAuth = Annotated[Principal, Depends(require(Scope.WRITE))]
AdminAuth = Annotated[Principal, Depends(require(Scope.ADMIN))]
