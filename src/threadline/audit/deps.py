"""The actor of an audited action made through the HTTP API."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from threadline.audit.service import Actor
from threadline.auth.principal import Principal
from threadline.web.access import client_address as access_address

_ADDRESS_MAX = 255


def client_address(connection: HTTPConnection) -> str | None:
    """The address a request came from, as the rate limits see it (behind a trusted proxy, the address that
    proxy reports in ``X-Forwarded-For``; else the peer)."""
    trusted = bool(getattr(connection.app.state.settings, "trust_forwarded_headers", False))
    address = access_address(connection.scope, trust_forwarded=trusted)
    return address[:_ADDRESS_MAX] if address != "unknown" else None


def request_actor(principal: Principal, connection: HTTPConnection) -> Actor:
    """The API key this request authenticated with, and where the request came from."""
    return Actor.for_key(principal, address=client_address(connection))
