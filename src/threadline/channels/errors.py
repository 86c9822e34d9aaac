"""What a provider's refusal looks like to us: ``ChannelError``, with whether trying again later may
succeed (network failures, timeouts, rate limits, the provider's 5xx) or not (the provider refused the
message, the credentials, the recipient). No secret (auth token, access token) is ever part of an error's
text or repr, even when a provider echoes it back: the clients scrub them out before raising."""

from __future__ import annotations

import email.utils
import math
import time
from typing import Any, Final

__all__ = ["MAX_RETRY_AFTER_S", "ChannelError", "parse_retry_after", "retryable_status"]

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


def retryable_status(status: int) -> bool:
    """An HTTP status after which the same request may succeed: 408, 425, 429 and the 5xx."""
    return status in (408, 425, 429) or status >= 500
