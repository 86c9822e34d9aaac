"""What each integration type takes: its typed ``settings`` (readable) and its ``secrets`` (write-only).

Settings are validated with the models below and stored normalized (defaults filled in, unset optionals
left out). Secrets are validated by hand, never by a pydantic model: pydantic's errors carry the input
(``input_value=...`` in their text), and a secret must never reach an error, a log line or a traceback.
Every message raised here names the field and never shows a secret's value.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from threadline.errors import ValidationFailed
from threadline.kit.schemas import InputModel
from threadline.kit.ssrf import BadURL, parse_url
from threadline.models.enums import ChannelType

TWILIO_API_BASE_URL = "https://api.twilio.com"
GRAPH_API_BASE_URL = "https://graph.facebook.com"
GRAPH_API_VERSION = "v21.0"
SECRET_MAX_CHARS = 4096
URL_MAX_CHARS = 2048

_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
_MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_DIGITS = re.compile(r"[0-9]{1,32}")
_GRAPH_VERSION = re.compile(r"v[0-9]{1,3}\.[0-9]{1,3}")


def _matching(pattern: re.Pattern[str], code: str, message: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise PydanticCustomError(code, message)
        return value

    return AfterValidator(check)


def _base_url(value: str) -> str:
    try:
        parsed = parse_url(value)
    except BadURL as exc:
        raise PydanticCustomError("invalid_url", "{problem}", {"problem": str(exc)}) from None
    if parsed.query or parsed.fragment:
        raise PydanticCustomError("invalid_url", "must have no query string or fragment")
    return value.rstrip("/")


AccountSid = Annotated[
    str,
    Field(
        description="The Twilio account SID: `AC` and 32 hexadecimal digits.",
        json_schema_extra={"pattern": "^AC[0-9a-fA-F]{32}$"},
    ),
    _matching(_ACCOUNT_SID, "account_sid", "must be a Twilio account SID: AC followed by 32 hexadecimal digits"),
]
MessagingServiceSid = Annotated[
    str,
    Field(
        description="A Twilio messaging service SID (`MG` and 32 hexadecimal digits), instead of `from_number`.",
        json_schema_extra={"pattern": "^MG[0-9a-fA-F]{32}$"},
    ),
    _matching(
        _MESSAGING_SERVICE_SID,
        "messaging_service_sid",
        "must be a Twilio messaging service SID: MG followed by 32 hexadecimal digits",
    ),
]
PhoneNumber = Annotated[
    str,
    Field(
        description="The sending number in E.164 (`+14155550100`), instead of `messaging_service_sid`.",
        json_schema_extra={"pattern": r"^\+[1-9][0-9]{1,14}$"},
    ),
    _matching(_E164, "e164", "must be a phone number in E.164 format: + and 2 to 15 digits, e.g. +14155550100"),
]
GraphId = Annotated[
    str,
    Field(json_schema_extra={"pattern": "^[0-9]{1,32}$"}),
    _matching(_DIGITS, "digits", "must be a string of digits (Meta's ids are too large for JSON numbers)"),
]
BaseUrl = Annotated[
    str,
    Field(
        max_length=URL_MAX_CHARS,
        description="http(s) URL without credentials, query or fragment.",
        json_schema_extra={"format": "uri", "pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@]+(/[^?#]*)?$"},
    ),
    AfterValidator(_base_url),
]


class SmsSettings(InputModel):
    """Settings of an ``sms`` integration (Twilio Programmable Messaging)."""

    # What _one_sender checks, for the document.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": [name], "properties": {name: {"type": "string"}}}
                for name in ("from_number", "messaging_service_sid")
            ]
        }
    )

    account_sid: AccountSid
    from_number: PhoneNumber | None = None
    messaging_service_sid: MessagingServiceSid | None = None
    api_base_url: BaseUrl = Field(default=TWILIO_API_BASE_URL, description="Twilio's REST API (a stand-in in tests).")
    status_callback: bool = Field(
        default=True, description="Ask Twilio for delivery status callbacks on every message sent."
    )

    @model_validator(mode="after")
    def _one_sender(self) -> SmsSettings:
        if (self.from_number is None) == (self.messaging_service_sid is None):
            raise PydanticCustomError(
                "one_sender", "give exactly one of from_number (E.164) or messaging_service_sid (MG...)"
            )
        return self


class WhatsAppSettings(InputModel):
    """Settings of a ``whatsapp`` integration (WhatsApp Cloud API)."""

    phone_number_id: Annotated[GraphId, Field(description="The WhatsApp Business phone number id (digits).")]
    business_account_id: Annotated[GraphId | None, Field(description="The WhatsApp Business account id (digits).")] = (
        None
    )
    api_base_url: BaseUrl = Field(default=GRAPH_API_BASE_URL, description="Meta's Graph API (a stand-in in tests).")
    api_version: Annotated[
        str,
        Field(
            description="The Graph API version in request paths.",
            json_schema_extra={"pattern": f"^{_GRAPH_VERSION.pattern}$"},
        ),
        _matching(_GRAPH_VERSION, "api_version", "must be a Graph API version such as v21.0"),
    ] = GRAPH_API_VERSION


SETTINGS_MODELS: dict[ChannelType, type[InputModel]] = {
    ChannelType.SMS: SmsSettings,
    ChannelType.WHATSAPP: WhatsAppSettings,
}


@dataclass(frozen=True, slots=True)
class SecretSpec:
    name: str
    description: str


SECRETS: dict[ChannelType, tuple[SecretSpec, ...]] = {
    ChannelType.API: (),
    ChannelType.SMS: (SecretSpec("auth_token", "The Twilio account's auth token (signs requests and callbacks)."),),
    ChannelType.WHATSAPP: (
        SecretSpec("access_token", "A Graph API access token allowed to send from the phone number."),
        SecretSpec("app_secret", "The Meta app's secret, which signs notifications (X-Hub-Signature-256)."),
        SecretSpec("verify_token", "The token Meta echoes in the webhook verification handshake."),
    ),
}
"""The secrets each type takes, all of them required when it is created."""


def describe_secrets() -> str:
    """For the API documentation: the secret names per type."""
    parts = []
    for type_, specs in SECRETS.items():
        names = ", ".join(f"`{s.name}`" for s in specs) or "none"
        parts.append(f"`{type_.value}`: {names}")
    return "; ".join(parts)


def validate_settings(type_: ChannelType, raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` checked against ``type_``'s settings and normalized; ValidationFailed naming the field.

    ``api`` integrations keep free-form settings (already checked for size and secret-looking keys)."""
    model = SETTINGS_MODELS.get(type_)
    if model is None:
        return raw
    try:
        parsed = model.model_validate(raw)
    except ValidationError as exc:
        raise _settings_error(type_, model, exc) from None
    normalized: dict[str, Any] = parsed.model_dump(mode="json", exclude_none=True)
    return normalized


def _settings_error(type_: ChannelType, model: type[InputModel], exc: ValidationError) -> ValidationFailed:
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    # An unknown key says the most (often: settings of another type), so it is named before anything missing.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    where = ".".join(str(part) for part in first["loc"])
    param = f"settings.{where}" if where else "settings"
    if first["type"] == "extra_forbidden":
        known = ", ".join(model.model_fields)
        message = f"{param}: not a setting of {type_.value} integrations (they take: {known})"
    elif first["type"] == "missing":
        message = f"{param}: required for {type_.value} integrations"
    else:
        message = f"{param}: {first['msg']}"
    return ValidationFailed(message, param=param)


# A name shown back in an error only if it is plainly a word: a token pasted as a key is never echoed.
_SHOWABLE_NAME = re.compile(r"[a-z][a-z_]{0,39}")


def validate_secrets(type_: ChannelType, given: Mapping[str, SecretStr] | None, *, require_all: bool) -> dict[str, str]:
    """The plaintext secrets in ``given`` (the names ``type_`` takes, each a well-formed value); with
    ``require_all`` (on create) every one of them must be there. Errors name the secret, never its value."""
    specs = {spec.name: spec for spec in SECRETS[type_]}
    given = given or {}
    for name in given:
        if name not in specs:
            shown = f"'{name}'" if _SHOWABLE_NAME.fullmatch(name) else "a name it does not take"
            takes = ", ".join(specs) if specs else "none"
            param = f"secrets.{name}" if _SHOWABLE_NAME.fullmatch(name) else "secrets"
            raise ValidationFailed(
                f"{param}: {type_.value} integrations take no secret {shown} (they take: {takes})",
                param=param,
                code="unknown_secret",
            )
    secrets: dict[str, str] = {}
    for name, value in given.items():
        plaintext = value.get_secret_value()
        if (problem := _secret_problem(plaintext)) is not None:
            raise ValidationFailed(f"secrets.{name}: {problem}", param=f"secrets.{name}", code="invalid_secret")
        secrets[name] = plaintext
    if require_all:
        for name, spec in specs.items():
            if name not in secrets:
                raise ValidationFailed(
                    f"secrets.{name}: required for {type_.value} integrations ({spec.description})",
                    param=f"secrets.{name}",
                    code="secret_required",
                )
    return secrets


# For the document, what _secret_problem accepts: no control characters, and no whitespace (str.isspace())
# first or last.
_EDGE = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
SECRET_PATTERN = rf"^{_EDGE}([^\x00-\x1f\x7f-\x9f]*{_EDGE})?$"


def _secret_problem(value: str) -> str | None:
    """What is wrong with a secret's value, in words that never quote it."""
    if not value:
        return "must not be empty"
    if len(value) > SECRET_MAX_CHARS:
        return f"must be at most {SECRET_MAX_CHARS} characters"
    if value != value.strip():
        return "must not start or end with whitespace (was a line break pasted with it?)"
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        return "must not contain control characters or unpaired surrogates"
    return None
