"""Messaging channels: the providers' clients (``channels.twilio``, ``channels.whatsapp``), what they share,
and how long a text may be on each (``channels.segments``).

A client sends one message and answers a ``SentMessage``, or raises a ``ChannelError`` that says whether
trying again later may succeed (network failures, timeouts, rate limits, the provider's 5xx) or not (the
provider refused the message, the credentials, the recipient). No client logs, and no secret (auth token,
access token) is ever part of an error's text or repr, even when a provider echoes it back.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

import httpx

from threadline import __version__
from threadline.kit.ssrf import AddressRefused, BadURL, GuardedTransport, parse_url

__all__ = ["DEFAULT_TIMEOUT_S", "ChannelError", "ProviderClient", "SentMessage", "parse_retry_after"]

DEFAULT_TIMEOUT_S: Final = 15.0
USER_AGENT: Final = f"threadline/{__version__}"
MAX_MESSAGE_CHARS: Final = 1000
MAX_RETRY_AFTER_S: Final = 24 * 3600.0


class ChannelError(Exception):
    """A message the provider did not take.

    ``code``: the provider's own error code as a string when it gave one (Twilio ``"21211"``, WhatsApp
    ``"131047"``), else ours: ``timeout``, ``connect_error``, ``network_error``, ``address_refused``,
    ``invalid_base_url``, ``invalid_response``, ``http_<status>``. ``message``: the provider's message (for
    WhatsApp with its ``details``), or what went wrong. ``retryable``: whether the same request may succeed
    later. ``status``: the HTTP status of the provider's answer (None without one). ``retry_after_s``: the
    wait the provider asked for (its ``Retry-After``), if any. ``trace_id``: the provider's request id for
    its support (WhatsApp's ``fbtrace_id``), if any. ``maybe_sent``: the request went out and no answer
    came back (a read timeout, a connection dropped mid-answer), so the provider may have taken the message:
    trying again could send it twice.
    """

    def __init__(
        self,
        code: str,
        message: str,
        retryable: bool,
        status: int | None = None,
        *,
        retry_after_s: float | None = None,
        trace_id: str | None = None,
        maybe_sent: bool = False,
    ) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s
        self.trace_id = trace_id
        self.maybe_sent = maybe_sent

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:  # picklable, keyword fields included
        state = {"retry_after_s": self.retry_after_s, "trace_id": self.trace_id, "maybe_sent": self.maybe_sent}
        return (type(self), (self.code, self.message, self.retryable, self.status), state)

    def __repr__(self) -> str:
        return (
            f"ChannelError(code={self.code!r}, message={self.message!r}, retryable={self.retryable!r}, "
            f"status={self.status!r}, retry_after_s={self.retry_after_s!r}, maybe_sent={self.maybe_sent!r})"
        )


@dataclass(frozen=True)
class SentMessage:
    """What the provider said when it took a message.

    ``provider_id``: its message id (Twilio's ``SM…`` sid, WhatsApp's ``wamid.…``). ``account_id``: the
    account that sent it (Twilio's account SID, WhatsApp's phone number id). ``segments``: the SMS
    segments Twilio bills (None when it does not know yet, as with a Messaging Service). ``price`` and
    ``price_currency``: as the provider reports them (Twilio's ``price`` is usually null until the message
    is sent; ``price_unit`` comes at once). ``status``: the provider's status word (Twilio ``queued`` or
    ``accepted``, WhatsApp ``accepted`` or ``held_for_quality_assessment``). ``recipient_id``: the
    recipient as the provider knows them (WhatsApp's ``wa_id``, which may differ from the number sent to).
    """

    provider_id: str
    account_id: str | None
    segments: int | None
    price: str | None
    price_currency: str | None
    status: str
    recipient_id: str | None = None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent or
    unreadable; never negative; at most a day."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` encodable as UTF-8: a lone surrogate (from broken input) becomes U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def retryable_status(status: int) -> bool:
    """An HTTP status after which the same request may succeed: 408, 425, 429 and the 5xx."""
    return status in (408, 425, 429) or status >= 500


class ProviderClient:
    """What the clients share: one HTTP client per ``async with`` (or one per call without it), the SSRF
    guard of ``kit.ssrf`` on every connection unless ``allow_private`` (a provider stand-in on 127.0.0.1),
    no redirects, no proxy settings from the environment, ``timeout_s`` for the whole request, and the
    mapping of transport failures to ``ChannelError`` with the secrets scrubbed out of every text."""

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


def first(items: Any) -> Mapping[str, Any]:
    """The first element of a JSON list when it is an object, else an empty mapping."""
    if isinstance(items, list) and items and isinstance(items[0], dict):
        return items[0]
    return {}
