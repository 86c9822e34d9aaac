"""FastAPI dependencies shared by every surface: the request's session and the caller's principal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.auth.principal import Principal
from threadline.auth.service import presented_keys
from threadline.config import Settings
from threadline.errors import Forbidden, Unauthenticated
from threadline.flows.answer import Waiting, waiting_for
from threadline.models.enums import Scope
from threadline.web import idempotency
from threadline.web.access import principal_for
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
    """The principal of the request's key (checked by web.access before the request began), or None. A
    request that carries a key both ways (``X-API-Key`` and ``Authorization``) is authenticated only when
    both are the same valid key: credentials that disagree are refused, never half-believed."""
    principals = [await principal_for(request, key, session_of(request)) for key in presented_keys(request.headers)]
    if not principals or any(p is None for p in principals):
        return None
    if len({p.api_key_id for p in principals if p is not None}) > 1:
        return None
    return principals[0]


# Declared for the OpenAPI document (and /docs' Authorize button); the key is read by presented_keys,
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
            presented = presented_keys(request.headers)
            raise Unauthenticated(
                "missing API key: send 'Authorization: Bearer KEY', 'Authorization: api-key KEY' or 'X-API-Key: KEY'"
                if not presented
                else "invalid or revoked API key"
                if len(presented) == 1
                else "the request carries two API keys (X-API-Key and Authorization) that are not the same valid key"
            )
        if not principal.allows(scope):
            raise Forbidden(f"this API key lacks the '{scope.value}' scope")
        # Only now, for this API key and after its scope check, may an Idempotency-Key replay anything.
        await idempotency.claim(request, principal, session_of(request))
        return principal

    return dependency


ReadAuth = Annotated[Principal, Depends(require(Scope.READ))]
WriteAuth = Annotated[Principal, Depends(require(Scope.WRITE))]
AdminAuth = Annotated[Principal, Depends(require(Scope.ADMIN))]


def get_waiting(request: Request) -> Waiting:
    """How this request commits early and waits for a run (flows.answer): for surfaces that answer with the
    agent's replies, without reaching into ``request.state`` themselves."""
    return waiting_for(request.state.db.commit_early, request.app.state)


WaitingDep = Annotated[Waiting, Depends(get_waiting)]
