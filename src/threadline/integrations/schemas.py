from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator
from pydantic_core import PydanticCustomError

from threadline.integrations.channel_config import (
    SECRET_MAX_CHARS,
    SECRET_PATTERN,
    SECRETS,
    SETTINGS_MODELS,
    SmsSettings,
    WhatsAppSettings,
    describe_secrets,
)
from threadline.kit.schemas import IdRef, InputModel, ListPage, NotNull, OutputModel, bounded_json
from threadline.models import Integration
from threadline.models.enums import ChannelType

IntegrationName = Annotated[str, Field(max_length=200)]
AgentRef = Annotated[IdRef, Field(description="The id of the agent answering on this channel.")]


def _settings_variants() -> list[dict[str, Any]]:
    sms = SmsSettings.model_json_schema()
    whatsapp = WhatsAppSettings.model_json_schema()
    api = {"type": "object", "title": "ApiSettings", "description": "`api`: free-form.", "additionalProperties": True}
    return [
        {**sms, "description": "`sms` (Twilio): exactly one of `from_number` or `messaging_service_sid`."},
        {**whatsapp, "description": "`whatsapp` (WhatsApp Cloud API)."},
        api,
    ]


Settings = Annotated[
    dict[str, Any],
    Field(
        description="Non-secret settings, checked against the integration's type (`sms`: `account_sid`, "
        "`from_number` or `messaging_service_sid`, `api_base_url`, `status_callback`; `whatsapp`: "
        "`phone_number_id`, `business_account_id`, `api_base_url`, `api_version`; `api`: free-form); at most "
        "16 KiB serialized. Secrets (tokens, passwords) are not accepted here: send them in `secrets`.",
        json_schema_extra={"anyOf": _settings_variants()},
    ),
    bounded_json(16 * 1024),
]
Secrets = Annotated[
    dict[str, SecretStr],
    Field(
        description="Write-only credentials, stored encrypted and never returned (the response lists their "
        f"names in `secrets_set`). By type: {describe_secrets()}. All are required on create; a PATCH replaces "
        "the ones it names and keeps the others."
    ),
]

# Keys that name credentials: those belong in the encrypted secrets, never in readable settings.
_SECRET_WORDS = ("secret", "password", "passwd", "token", "api_key", "apikey", "private_key", "credential")


def _secret_keys(value: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            normalized = str(key).lower().replace("-", "_")
            if any(word in normalized for word in _SECRET_WORDS):
                found.append(where)
            found.extend(_secret_keys(item, where))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_secret_keys(item, f"{path}[{index}]"))
    return found


class _SettingsCheck(InputModel):
    @field_validator("settings", check_fields=False)
    @classmethod
    def _no_secrets(cls, settings: dict[str, Any] | None) -> dict[str, Any] | None:
        if settings and (keys := _secret_keys(settings)):
            raise PydanticCustomError(
                "secret_in_settings",
                "'{key}' looks like a secret; settings are readable by anyone with a read key, so they "
                "take no secrets (tokens, passwords): send those in `secrets`",
                {"key": keys[0]},
            )
        return settings


SECRET_VALUE = {"type": "string", "minLength": 1, "maxLength": SECRET_MAX_CHARS, "pattern": SECRET_PATTERN}


def _by_type(*, create: bool) -> dict[str, Any]:
    """For the document, what the service checks against ``type``: its settings model, and the secrets it takes
    (on create: all of them; a PATCH may name some)."""
    variants = []
    for type_ in ChannelType:
        names = [spec.name for spec in SECRETS[type_]]
        secrets = {"type": "object", "properties": dict.fromkeys(names, SECRET_VALUE), "additionalProperties": False}
        then: dict[str, Any] = {"properties": {"secrets": secrets}}
        required = []
        if (model := SETTINGS_MODELS.get(type_)) is not None:
            then["properties"]["settings"] = model.model_json_schema()
            required += ["settings"] if create else []
        if create and names:
            secrets["required"] = names
            required.append("secrets")
        if required:
            then["required"] = required
        variants.append({"if": {"required": ["type"], "properties": {"type": {"const": type_.value}}}, "then": then})
    return {"allOf": variants}


class IntegrationCreate(_SettingsCheck):
    model_config = ConfigDict(json_schema_extra=_by_type(create=True))

    type: ChannelType
    name: IntegrationName = ""
    agent_id: AgentRef | None = None
    enabled: bool = True
    settings: Settings = Field(default_factory=dict)
    secrets: Secrets = Field(default_factory=dict)


class IntegrationUpdate(_SettingsCheck):
    """``type`` cannot change: it is accepted only with the integration's current value. ``settings``
    replaces the settings as a whole; ``secrets`` replaces the secrets it names and keeps the others."""

    # Without ``type``, what settings and secrets the integration takes depends on its stored type.
    model_config = ConfigDict(json_schema_extra=_by_type(create=False))

    type: Annotated[ChannelType | None, NotNull] = None
    name: Annotated[IntegrationName | None, NotNull] = None
    agent_id: AgentRef | None = None
    enabled: Annotated[bool | None, NotNull] = None
    settings: Annotated[Settings | None, NotNull] = None
    secrets: Annotated[Secrets | None, NotNull] = None


class IntegrationRead(OutputModel):
    object: Literal["integration"] = "integration"
    id: str
    type: ChannelType
    name: str
    agent_id: str | None
    enabled: bool
    settings: dict[str, Any]
    secrets_set: list[str] = Field(description="The names of the secrets stored (their values are never shown).")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, integration: Integration, agent_public_id: uuid.UUID | None) -> IntegrationRead:
        return cls(
            id=str(integration.public_id),
            type=integration.type,
            name=integration.name,
            agent_id=str(agent_public_id) if agent_public_id else None,
            enabled=integration.enabled,
            settings=integration.settings,
            secrets_set=sorted(integration.secret_names or ()),
            created_at=integration.created_at,
            updated_at=integration.updated_at,
        )


IntegrationPage = ListPage[IntegrationRead]
