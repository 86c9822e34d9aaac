"""The base of the providers' clients (``ProviderClient``, which ``twilio/client.py`` and ``whatsapp/client.py``
extend): one HTTP client per ``async with`` (or one per call without it), the SSRF guard of ``kit.ssrf`` on
every connection, no redirects, no proxy settings from the environment, a timeout for the whole request, and
the mapping of transport failures to ``ChannelError`` with the secrets scrubbed out of every text. No client
logs.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Final

import httpx

from threadline import __version__
from threadline.channels.errors import ChannelError, parse_retry_after
from threadline.kit.ssrf import AddressRefused, BadURL, GuardedTransport, parse_url

__all__ = ["DEFAULT_TIMEOUT_S", "ProviderClient", "clean_text", "first"]

DEFAULT_TIMEOUT_S: Final = 15.0
USER_AGENT: Final = f"threadline/{__version__}"
MAX_MESSAGE_CHARS: Final = 1000

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` encodable as UTF-8: a lone surrogate (from broken input) becomes U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def first(items: Any) -> Mapping[str, Any]:
    """The first element of a JSON list when it is an object, else an empty mapping."""
    if isinstance(items, list) and items and isinstance(items[0], dict):
        return items[0]
    return {}


class ProviderClient:
    """The base of a provider's client: ``allow_private`` lifts the SSRF guard (a provider stand-in on
    127.0.0.1), ``timeout_s`` bounds the whole request, and ``secrets`` are scrubbed from every error text."""

    provider: str = "provider"

    def __init__(self, base_url: str, *, secrets: Iterable[str], timeout_s: float, allow_private: bool) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.allow_private = allow_private
        self._secrets = tuple(s for s in secrets if s)
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> ProviderClient:
        if self._http is None:
            self._http = self._new_http()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    def _new_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=GuardedTransport(allow_private=self.allow_private),
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(self.timeout_s),
            headers={"user-agent": USER_AGENT, "accept": "application/json"},
        )

    def scrub(self, text: str) -> str:
        """``text`` without any of this client's secrets, clipped to a storable length."""
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        text = text.replace("\x00", "\ufffd")
        return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."

    async def _post(self, path: str, **kwargs: Any) -> httpx.Response:
        """POST ``base_url + path``; the answer whatever its status, or ``ChannelError`` without one."""
        url = self.base_url + path
        try:
            parse_url(url)
        except BadURL as exc:
            raise ChannelError("invalid_base_url", self.scrub(f"the {self.provider} base URL {exc}"), False) from None
        try:
            async with asyncio.timeout(self.timeout_s):
                if self._http is not None:
                    return await self._http.post(url, **kwargs)
                async with self._new_http() as http:
                    return await http.post(url, **kwargs)
        except (httpx.ConnectTimeout, httpx.PoolTimeout):  # nothing was sent
            raise ChannelError(
                "connect_timeout", f"cannot connect to {self.provider} within {self.timeout_s:g} s", True
            ) from None
        except (TimeoutError, httpx.TimeoutException):  # the request may have reached the provider
            raise ChannelError(
                "timeout", f"{self.provider} did not answer within {self.timeout_s:g} s", True, maybe_sent=True
            ) from None
        except httpx.ConnectError as exc:
            if isinstance(exc.__cause__, AddressRefused):  # the SSRF guard: "<host> resolves to <address>, a ..."
                reason = str(exc.__cause__).removeprefix("refused to connect: ").split(";")[0]
                message = f"refused to connect to {self.provider}: {reason}; its base URL must reach a public address"
                raise ChannelError("address_refused", self.scrub(message), False) from None
            raise ChannelError("connect_error", self.scrub(f"cannot connect to {self.provider}: {exc}"), True) from None
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:  # the connection broke after it was made
            detail = str(exc) or type(exc).__name__
            message = self.scrub(f"{self.provider}: {detail}")
            raise ChannelError("network_error", message, True, maybe_sent=True) from None
        except httpx.HTTPError as exc:  # an unsupported scheme or a URL httpx refuses
            raise ChannelError("invalid_base_url", self.scrub(f"{self.provider}: {exc}"), False) from None

    def _json(self, response: httpx.Response) -> Any:
        """The answer's JSON, or None if it is none."""
        try:
            return json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            return None

    def _excerpt(self, response: httpx.Response) -> str:
        text = response.content[:300].decode("utf-8", errors="replace").strip()
        return self.scrub(text) if text else f"HTTP {response.status_code}"

    def _retry_after(self, response: httpx.Response) -> float | None:
        return parse_retry_after(response.headers.get("retry-after"))
