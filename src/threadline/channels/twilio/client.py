"""Sends an SMS through Twilio's Messages API.

``POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded (``To``, ``Body``, ``From``
or ``MessagingServiceSid``, ``StatusCallback``), HTTP Basic auth with the account SID and the auth token.
Twilio answers 201 with the Message resource (``sid``, ``account_sid``, ``status``, ``num_segments`` as a
string, ``price`` and ``price_unit``), or an error ``{"code", "message", "more_info", "status"}``.

    async with TwilioClient(base_url, account_sid, auth_token) as twilio:
        sent = await twilio.send_sms(to="+15558675310", body="Hi", from_number="+15017122661")
"""

from __future__ import annotations

import base64
from typing import Any, Final
from urllib.parse import quote

import httpx

from threadline.channels.client import DEFAULT_TIMEOUT_S, ProviderClient, clean_text
from threadline.channels.errors import ChannelError
from threadline.channels.errors import retryable_status as _retryable_status
from threadline.channels.sender import SentMessage

__all__ = ["DEFAULT_BASE_URL", "TwilioClient"]

DEFAULT_BASE_URL: Final = "https://api.twilio.com"
API_VERSION: Final = "2010-04-01"
# Twilio's own codes for "try again later": too many requests, internal error, service unavailable.
_RETRYABLE_CODES: Final = frozenset({"20429", "20500", "20503"})


class TwilioClient(ProviderClient):
    """One Twilio account. ``allow_private`` lets it reach loopback and private addresses (a stand-in in
    tests, an operator's own proxy); production code leaves it off."""

    provider = "twilio"

    def __init__(
        self,
        base_url: str,
        account_sid: str,
        auth_token: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        allow_private: bool = False,
    ) -> None:
        basic = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()  # the Authorization header's
        super().__init__(base_url, secrets=[auth_token, basic], timeout_s=timeout_s, allow_private=allow_private)
        self.account_sid = account_sid
        self._auth = httpx.BasicAuth(account_sid, auth_token)

    def __repr__(self) -> str:
        return f"TwilioClient(base_url={self.base_url!r}, account_sid={self.account_sid!r})"

    async def __aenter__(self) -> TwilioClient:
        await super().__aenter__()
        return self

    async def send_sms(
        self,
        *,
        to: str,
        body: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        status_callback: str | None = None,
        media_url: str | None = None,
    ) -> SentMessage:
        """Create the message: from ``from_number`` or through ``messaging_service_sid`` (exactly one);
        Twilio reports its progress to ``status_callback`` if given. ``media_url``: a public URL Twilio
        fetches and sends as MMS (the body may then be empty). Raises ``ChannelError``."""
        if (from_number is None) == (messaging_service_sid is None):
            raise ValueError("give exactly one of from_number and messaging_service_sid")
        if not body and not media_url:
            raise ValueError("an SMS needs a body or a media_url")
        form = {"To": to, "Body": clean_text(body)}
        if media_url:
            form["MediaUrl"] = media_url
        if from_number is not None:
            form["From"] = from_number
        if messaging_service_sid is not None:
            form["MessagingServiceSid"] = messaging_service_sid
        if status_callback is not None:
            form["StatusCallback"] = status_callback
        path = f"/{API_VERSION}/Accounts/{quote(self.account_sid, safe='')}/Messages.json"
        response = await self._post(path, data=form, auth=self._auth)
        if response.status_code in (200, 201):
            return self._sent(response)
        raise self._error(response)

    def _sent(self, response: httpx.Response) -> SentMessage:
        resource = self._json(response)
        if not isinstance(resource, dict) or not isinstance(resource.get("sid"), str) or not resource["sid"]:
            # It may have been sent: not retried, so that it is not sent twice.
            raise ChannelError(
                "invalid_response",
                f"twilio answered {response.status_code} without a message sid: {self._excerpt(response)}",
                False,
                response.status_code,
            )
        return SentMessage(
            provider_id=resource["sid"],
            account_id=_text(resource.get("account_sid")) or self.account_sid,
            segments=_segments(resource.get("num_segments")),
            price=_text(resource.get("price")),
            price_currency=_text(resource.get("price_unit")),
            status=_text(resource.get("status")) or "queued",
        )

    def _error(self, response: httpx.Response) -> ChannelError:
        status = response.status_code
        body = self._json(response)
        code: str | None = None
        message: str | None = None
        if isinstance(body, dict):
            if isinstance(body.get("code"), int | str) and str(body["code"]).strip():
                code = str(body["code"]).strip()
            if isinstance(body.get("message"), str) and body["message"].strip():
                message = body["message"].strip()
        if code is None:
            code = f"http_{status}"
        if message is None:
            message = self._excerpt(response)
        auth_problem = status in (401, 403)
        retryable = not auth_problem and (_retryable_status(status) or code in _RETRYABLE_CODES)
        return ChannelError(
            code,
            self.scrub(message),
            retryable,
            status,
            retry_after_s=self._retry_after(response),
        )


def _text(value: Any) -> str | None:
    """A JSON value as Twilio's text, or None for null and anything that is not text or a number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float):
        return str(value)
    return None


def _segments(value: Any) -> int | None:
    """``num_segments`` ("2") as a number; None when Twilio does not know it yet ("0" through a Messaging
    Service, before a sender is chosen) or sends something else."""
    text = _text(value)
    if text is None:
        return None
    try:
        number = int(text)
    except ValueError:
        return None
    return number if number > 0 else None
