"""What every vendor dialect shares: a mount, the auth header its document names, its error envelope,
and whole-thread JSON written in bounded memory.

A dialect is wire format only: it parses the vendor's request, calls the same services as /v1, and
renders through ``dialects.mapping``. No business rule lives under ``dialects/``.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic_core import to_json
from starlette.datastructures import Headers
from starlette.responses import Response, StreamingResponse

from threadline.auth.principal import Principal
from threadline.dialects.mapping import Vendor
from threadline.errors import Forbidden, Unauthenticated
from threadline.models.enums import Scope
from threadline.web.access import principal_for
from threadline.web.deps import session_of
from threadline.web.surfaces import ErrorRenderer

KeyExtractor = Callable[[Headers], str | None]


@dataclass(frozen=True, slots=True)
class Dialect:
    """A vendor's API served under ``prefix`` (its base URL), with its own error envelope."""

    vendor: Vendor | Literal["openai"]
    prefix: str
    router: APIRouter
    render_error: ErrorRenderer


def api_key_header(name: str) -> KeyExtractor:
    """The key is the whole value of header ``name`` (``X-API-Key: KEY``)."""

    def extract(headers: Headers) -> str | None:
        value = headers.get(name, "").strip()
        return value or None

    return extract


def authorization_scheme(scheme: str) -> KeyExtractor:
    """The key follows ``scheme`` in ``Authorization`` (``Bearer KEY``, ``api-key KEY``); the scheme's case
    does not matter (RFC 9110 section 11.1), any other scheme is no key."""

    def extract(headers: Headers) -> str | None:
        given, _, value = headers.get("authorization", "").strip().partition(" ")
        if given.lower() != scheme.lower():
            return None
        return value.strip() or None

    return extract


def dialect_auth(extract: KeyExtractor, scope: Scope, *, how: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: the principal of the key in the header this vendor's document names, and only there
    (a key sent the /v1 way is not this dialect's credential). ``how`` tells the caller what to send."""

    async def dependency(request: Request) -> Principal:
        key = extract(request.headers)
        if key is None:
            raise Unauthenticated(f"missing API key: send {how}")
        principal = await principal_for(request, key, session_of(request))
        if principal is None:
            raise Unauthenticated("invalid or revoked API key")
        if not principal.allows(scope):
            raise Forbidden(f"this API key lacks the '{scope.value}' scope")
        return principal

    return dependency


ChunkRenderer = Callable[[Sequence[Any]], Awaitable[list[Any]]]


def _items(rendered: list[Any]) -> bytes:
    """The members of a JSON array, without its brackets: ``a,b,c``."""
    return to_json(rendered)[1:-1]


async def json_list_response(
    chunks: AsyncIterable[Sequence[Any]],
    render: ChunkRenderer,
    *,
    head: bytes = b"[",
    tail: Callable[[int], bytes] = lambda count: b"]",
) -> Response:
    """``head`` + every rendered item, comma-separated + ``tail(count)``.

    A list that fits in two chunks answers as one body with a Content-Length (the usual case, and the
    fastest); a longer one streams chunk by chunk, so a 100,000-message thread never sits in memory whole.
    Errors are found before the first byte: the caller has resolved the thread already.
    """
    it = aiter(chunks)
    first = await anext(it, None)
    second = await anext(it, None) if first is not None else None
    if second is None:
        rendered = await render(first) if first else []
        return Response(head + _items(rendered) + tail(len(rendered)), media_type="application/json")

    head_chunks: tuple[Sequence[Any], ...] = (first, second) if first is not None else ()

    async def body() -> AsyncIterable[bytes]:
        yield head
        count = 0
        for chunk in head_chunks:
            rendered = await render(chunk)
            if rendered:
                yield (b"," if count else b"") + _items(rendered)
                count += len(rendered)
        async for chunk in it:
            rendered = await render(chunk)
            if rendered:
                yield (b"," if count else b"") + _items(rendered)
                count += len(rendered)
        yield tail(count)

    return StreamingResponse(body(), media_type="application/json")
