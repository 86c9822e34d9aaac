"""What ``threadline chat`` asks of a running server: a small client of the native ``/v1`` API over httpx.

Every failure becomes a :class:`ChatError` with one sentence a person can act on (the server cannot be
reached, the key is refused, an id names nothing...). The key travels only in the ``Authorization`` header:
no message, log line or error ever holds it."""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Iterable, Iterator
from typing import Any

import httpx

from threadline import __version__

PAGE = 100  # the API's largest page
CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 30.0
# An event stream sends a keep-alive at least every THREADLINE_SSE_KEEPALIVE_S (15 s by default).
STREAM_READ_TIMEOUT_S = 60.0


# The envelopes of a stream's events, and None for each keep-alive (so that a reader can look at the clock).
Events = Generator[dict[str, Any] | None, None, None]


class ChatError(Exception):
    """A failure the user can act on: the message is one line, shown as it is."""


class NotFound(ChatError):
    """The server answered 404: what was asked for is not in this key's workspace."""


class Api:
    """The server at ``base_url``, as the holder of ``key`` sees it."""

    def __init__(self, base_url: str, key: str, *, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ChatError(f"--url must start with http:// or https:// (got '{base_url}')")
        self.http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {key}", "User-Agent": f"threadline-chat/{__version__}"},
            timeout=httpx.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------------------------------ plain requests

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer of one request; a :class:`ChatError` for anything but a 2xx."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        if response.is_success:
            return response.json() if response.content else None
        raise self._status_error(response.status_code, response.content)

    def pages(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a list, page after page (oldest first unless ``order`` says otherwise)."""
        after: str | None = None
        while True:
            page = self.call("GET", path, params={"limit": PAGE, **params, **({"after": after} if after else {})})
            yield from page["data"]
            if not page.get("has_more") or not page["data"]:
                return
            after = page["last_id"]

    # ------------------------------------------------------------------------------------------ event streams

    def send(self, thread_id: str, content: str, *, until: float) -> Events:
        """POST the end user's message with ``stream=true``: the thread's events from this message on (its
        ``message.created``, the run's token deltas and tool calls, the replies) until the run ends, the server's
        wait cap, or ``until`` (time.monotonic()) passes with nothing coming; the message is stored once the first
        event arrives."""
        return self._events(
            "POST",
            f"/v1/threads/{thread_id}/messages",
            until,
            params={"stream": "true"},
            json={"content": content},
        )

    def follow(self, thread_id: str, after_seq: int, *, until: float) -> Events:
        """The thread's live event stream from just after event ``after_seq``, until the caller stops reading or
        ``until`` passes with nothing coming."""
        return self._events("GET", f"/v1/threads/{thread_id}/events", until, params={"after": after_seq})

    def _events(self, method: str, path: str, until: float, **kwargs: Any) -> Events:
        # Each read may wait as long as is left (a stream sends a keep-alive every 15 s at least, by default).
        left = max(0.1, min(STREAM_READ_TIMEOUT_S, until - time.monotonic()))
        timeout = httpx.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S, read=left)
        try:
            with self.http.stream(method, path, timeout=timeout, **kwargs) as response:
                if not response.is_success:
                    raise self._status_error(response.status_code, response.read())
                if not response.headers.get("content-type", "").startswith("text/event-stream"):
                    raise ChatError(f"{self.base_url} did not answer with an event stream: is it a threadline server?")
                for message in sse_messages(response.iter_lines()):
                    yield json.loads(message[1]) if message is not None else None
        except httpx.ReadTimeout:
            if time.monotonic() < until:
                raise ChatError(f"the threadline server at {self.base_url} stopped sending") from None
            return  # the caller's time is up: the stream ends here
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None

    # ------------------------------------------------------------------------------------------ errors

    def _transport_error(self, exc: httpx.HTTPError) -> ChatError:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return ChatError(
                f"cannot reach the threadline server at {self.base_url} (is it running? `threadline serve` starts "
                "one; --url or THREADLINE_URL names another)"
            )
        if isinstance(exc, httpx.TimeoutException):
            return ChatError(f"the threadline server at {self.base_url} did not answer in time")
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
            return ChatError(f"the threadline server at {self.base_url} closed the connection")
        return ChatError(f"talking to {self.base_url} failed: {type(exc).__name__}")

    def _status_error(self, status: int, body: bytes) -> ChatError:
        error = _error_of(body)
        message = error.get("message") or ""
        if not error and status not in (401, 429):
            return ChatError(f"{self.base_url} answered {status} with no threadline error: is it a threadline server?")
        if status == 401:
            return ChatError(
                "the server refused the API key (401: unknown or revoked): set THREADLINE_API_KEY to a key of the "
                "workspace (`threadline keys create --workspace NAME --scopes read,write`)"
            )
        if status == 403:
            return ChatError(f"the API key may not do this (403): {message or 'permission denied'}")
        if status == 404:
            return NotFound(message or "not found")
        if status == 429:
            return ChatError(f"the server is limiting this key's requests (429): {message or 'try again later'}")
        return ChatError(f"the server answered {status}: {message}")


def _error_of(body: bytes) -> dict[str, Any]:
    """The ``error`` object of a threadline error body; empty when the body is not one."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) else {}


def sse_messages(lines: Iterable[str]) -> Iterator[tuple[str, str] | None]:
    """(event type, data) of each Server-Sent Event in ``lines`` (the text/event-stream format: fields up to a
    blank line, ``data`` lines joined by newlines; ``id`` and ``retry`` left out), and None for each comment
    (a keep-alive)."""
    event, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
            continue
        if line.startswith(":"):
            yield None
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    # An event cut off by the end of the stream (no blank line after it) is dropped, as the format says.
