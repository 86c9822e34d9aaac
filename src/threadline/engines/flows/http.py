"""The HTTP calls of ``http`` nodes: what the engine asks for, what it gets back, and the default caller.

The engine takes any ``HttpCaller`` (an async callable), so tests and the run loop can stand in their own.
``HttpxCaller`` is the real one: httpx, the node's timeout for the whole call, no redirects, no proxy
settings from the environment, at most ``MAX_RESPONSE_BYTES`` read, and the SSRF guard of
``threadline.kit.ssrf`` (no loopback, private or link-local addresses unless ``allow_private``). It never
raises: every failure is an ``HttpResult`` with ``error`` set.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from threadline.kit.ssrf import BadURL, GuardedTransport, parse_url

MAX_RESPONSE_BYTES: Final = 1024 * 1024
MAX_ERROR_CHARS: Final = 500
USER_AGENT: Final = "threadline-flow/1"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None  # None: no body
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class HttpResult:
    """``status`` is None when no answer came; ``body`` is the parsed JSON answer (None if empty or not JSON);
    ``error`` says why the call failed (None: it succeeded, with a 2xx status)."""

    status: int | None
    body: Any = None
    error: str | None = None
    is_json: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


HttpCaller = Callable[[HttpRequest], Awaitable[HttpResult]]


class HttpxCaller:
    """The default ``HttpCaller``. One client per call: flows call out rarely, and a client belongs to
    the event loop it was made in."""

    def __init__(self, *, allow_private: bool = False, max_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self.allow_private = allow_private
        self.max_bytes = max_bytes

    async def __call__(self, request: HttpRequest) -> HttpResult:
        try:
            parse_url(request.url)
        except BadURL as exc:
            return HttpResult(None, error=f"refused: the URL {exc}")
        try:
            async with asyncio.timeout(request.timeout):
                return await self._call(request)
        except TimeoutError:
            return HttpResult(None, error=f"timed out after {request.timeout:g} s")
        except httpx.TimeoutException:
            return HttpResult(None, error=f"timed out after {request.timeout:g} s")
        except httpx.HTTPError as exc:
            return HttpResult(None, error=_clip(f"{type(exc).__name__}: {exc}"))
        except (ValueError, TypeError, OSError) as exc:  # a header httpx refuses, a body json cannot encode
            return HttpResult(None, error=_clip(f"{type(exc).__name__}: {exc}"))

    async def _call(self, request: HttpRequest) -> HttpResult:
        headers = {"user-agent": USER_AGENT, "accept": "application/json", **request.headers}
        transport = GuardedTransport(allow_private=self.allow_private)
        async with httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False) as client:
            kwargs: dict[str, Any] = {"headers": headers, "timeout": request.timeout}
            if request.json is not None:
                kwargs["json"] = request.json
            async with client.stream(request.method, request.url, **kwargs) as response:
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > self.max_bytes:
                        return HttpResult(
                            response.status_code, error=f"the answer is larger than {self.max_bytes} bytes"
                        )
        status = response.status_code
        body, is_json = _parse_json(bytes(data))
        error = None if 200 <= status < 300 else f"HTTP {status}"
        return HttpResult(status, body=body, error=error, is_json=is_json)


def _parse_json(data: bytes) -> tuple[Any, bool]:
    if not data.strip():
        return None, False
    try:
        return json.loads(data, parse_constant=_refuse_constant), True
    except (ValueError, RecursionError):
        return None, False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity could not be stored with the state


def _clip(text: str) -> str:
    text = text.replace("\x00", "\ufffd")
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."
