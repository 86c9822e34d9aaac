"""FastAPI dependencies shared by every surface: the request's session and the caller's principal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.auth.principal import Principal
from threadline.auth.service import authenticate, extract_key
from threadline.config import Settings
from threadline.errors import Forbidden, Unauthenticated
from threadline.models.enums import Scope
from threadline.web.session import SessionHolder


def session_of(request: Request) -> AsyncSession:
    holder: SessionHolder = request.scope["state"]["db"]
    return holder.session


async def get_session(request: Request) -> AsyncSession:
    # async on purpose: FastAPI runs a plain `def` dependency in a worker thread, a hop per request.
    return session_of(request)


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(app_settings)]


async def resolve_principal(request: Request) -> Principal | None:
    """Authenticate once per request (the idempotency layer may already have done it)."""
    state = request.scope.setdefault("state", {})
    if "principal" in state:
        cached: Principal | None = state["principal"]
        return cached
    key = extract_key(request.headers)
    principal = await authenticate(session_of(request), key) if key else None
    state["principal"] = principal
    if principal is not None:
        request.app.state.last_used.touch(principal.api_key_id)
    return principal


# Declared for the OpenAPI document (and /docs' Authorize button); the key is read by extract_key,
# which also accepts `Authorization: api-key KEY`.
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key.")
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer KEY` (or `api-key KEY`).")


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    async def dependency(
        request: Request,
        _x_api_key: Annotated[str | None, Security(_api_key_header)] = None,
        _bearer_credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    ) -> Principal:
        principal = await resolve_principal(request)
        if principal is None:
            has_credentials = extract_key(request.headers) is not None
            raise Unauthenticated(
                "invalid or revoked API key"
                if has_credentials
                else "missing API key: send 'Authorization: Bearer KEY', "
                "'Authorization: api-key KEY' or 'X-API-Key: KEY'"
            )
        if not principal.allows(scope):
            raise Forbidden(f"this API key lacks the '{scope.value}' scope")
        return principal

    return dependency


ReadAuth = Annotated[Principal, Depends(require(Scope.READ))]
WriteAuth = Annotated[Principal, Depends(require(Scope.WRITE))]
AdminAuth = Annotated[Principal, Depends(require(Scope.ADMIN))]
