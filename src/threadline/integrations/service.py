"""Integrations: the channels (plain API, SMS, WhatsApp) an agent is reachable on.

Each type has typed ``settings`` (readable) and write-only ``secrets`` (see channel_config). The secrets
are stored as ONE JSON object encrypted with the settings' secret box (Fernet, ``THREADLINE_SECRET_KEYS``)
in ``secrets_ciphertext``; only their names are kept in the clear (``secret_names``, shown as
``secrets_set``). The channels get the plaintexts from ``channel_credentials`` and nowhere else.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from threadline.audit import service as audit
from threadline.audit.actions import AuditAction
from threadline.config import Settings
from threadline.errors import Conflict, NotFound, ValidationFailed
from threadline.integrations.channel_config import SECRETS, validate_secrets, validate_settings
from threadline.integrations.repository import IntegrationRepository, find_for_channel
from threadline.integrations.schemas import IntegrationCreate, IntegrationUpdate
from threadline.kit.pagination import Page, PageRequest
from threadline.kit.secrets import SecretDecryptionError, secret_box
from threadline.models import Integration
from threadline.models.enums import ChannelType


class IntegrationWithAgent(NamedTuple):
    integration: Integration
    agent_public_id: uuid.UUID | None


@dataclass(frozen=True, slots=True, repr=False)
class ChannelCredentials:
    """What a channel needs to talk to its provider for one integration, secrets decrypted.

    ``id``, ``workspace_id`` and ``agent_id`` are internal row ids (``agent_id`` None: no agent routed).
    ``settings`` are the stored settings (for ``sms``: ``account_sid``, ``from_number`` or
    ``messaging_service_sid``, ``api_base_url``, ``status_callback``; for ``whatsapp``: ``phone_number_id``,
    ``business_account_id`` if set, ``api_base_url``, ``api_version``). ``secrets`` maps each stored
    secret's name to its plaintext; the repr shows the names only, never a value.
    """

    id: int
    public_id: uuid.UUID
    workspace_id: int
    type: ChannelType
    agent_id: int | None
    enabled: bool
    settings: dict[str, Any]
    secrets: dict[str, str]

    def __repr__(self) -> str:
        return (
            f"ChannelCredentials(id={self.id!r}, public_id={self.public_id!r}, workspace_id={self.workspace_id!r}, "
            f"type={self.type!r}, agent_id={self.agent_id!r}, enabled={self.enabled!r}, settings={self.settings!r}, "
            f"secrets=<{', '.join(sorted(self.secrets)) or 'none'}: hidden>)"
        )


async def channel_credentials(
    session: AsyncSession, *, workspace_id: int | None, integration_id: int | str | uuid.UUID, settings: Settings
) -> ChannelCredentials:
    """The integration ``integration_id`` (an internal id, or a public id as a UUID or string) with its
    secrets decrypted with ``settings``' keys. ``workspace_id=None`` finds it in any workspace: only for
    the providers' inbound webhooks, whose URL names the integration alone (see
    ``repository.find_for_channel``). NotFound (404) when there is none; SecretDecryptionError when no
    configured key opens its secrets (a key was dropped before ``threadline secrets rotate`` ran)."""
    integration = await find_for_channel(session, workspace_id=workspace_id, integration_id=integration_id)
    if integration is None:
        raise NotFound(f"no integration with id '{integration_id}'")
    return ChannelCredentials(
        id=integration.id,
        public_id=integration.public_id,
        workspace_id=integration.workspace_id,
        type=integration.type,
        agent_id=integration.agent_id,
        enabled=integration.enabled,
        settings=dict(integration.settings),
        secrets=_open_secrets(integration, settings),
    )


def _open_secrets(integration: Integration, settings: Settings) -> dict[str, str]:
    if integration.secrets_ciphertext is None:
        return {}
    opened = secret_box(settings).decrypt_json(integration.secrets_ciphertext)
    if not isinstance(opened, dict):
        raise SecretDecryptionError(f"integration {integration.public_id}: its secrets are not a JSON object")
    return {str(name): str(value) for name, value in opened.items()}


def _store_secrets(integration: Integration, secrets: dict[str, str], settings: Settings) -> None:
    integration.secrets_ciphertext = secret_box(settings).encrypt_json(secrets) if secrets else None
    integration.secret_names = sorted(secrets)


async def create_integration(
    session: AsyncSession, *, workspace_id: int, data: IntegrationCreate, settings: Settings, actor: audit.Actor
) -> IntegrationWithAgent:
    """A new integration; its settings are checked against its type and all its type's secrets are required
    (422 naming the field, never quoting a secret)."""
    channel_settings = validate_settings(data.type, data.settings)
    secrets = validate_secrets(data.type, data.secrets, require_all=True)
    repo = IntegrationRepository(session, workspace_id)
    agent = await repo.get_agent(data.agent_id, param="agent_id") if data.agent_id is not None else None
    integration = Integration(
        workspace_id=workspace_id,
        type=data.type,
        name=data.name,
        agent_id=agent.id if agent else None,
        enabled=data.enabled,
        settings=channel_settings,
    )
    _store_secrets(integration, secrets, settings)
    session.add(integration)
    await session.flush()
    await audit.record(
        session,
        workspace_id=workspace_id,
        actor=actor,
        action=AuditAction.INTEGRATION_CREATED,
        target_id=integration.public_id,
        details={"type": integration.type.value, "secrets": list(integration.secret_names)},
    )
    return IntegrationWithAgent(integration, agent.public_id if agent else None)


async def default_api_integration(session: AsyncSession, *, workspace_id: int) -> Integration:
    """The integration that messages arriving through an API (not a channel) come in by: the workspace's
    oldest enabled integration of type ``api``, created (named "API") when it has none. Creating it is
    serialized on the workspace's row, so concurrent first callers share one."""
    repo = IntegrationRepository(session, workspace_id)
    found = await repo.oldest_enabled(ChannelType.API)
    if found is not None:
        return found
    await repo.lock_workspace()
    found = await repo.oldest_enabled(ChannelType.API)  # someone may have created it while we waited
    if found is not None:
        return found
    integration = Integration(
        workspace_id=workspace_id, type=ChannelType.API, name="API", enabled=True, settings={}, secret_names=[]
    )
    session.add(integration)
    await session.flush()
    return integration


async def get_integration(session: AsyncSession, *, workspace_id: int, integration_id: str) -> IntegrationWithAgent:
    repo = IntegrationRepository(session, workspace_id)
    integration = await repo.get_integration(integration_id)
    return await _with_agent(repo, integration)


async def list_integrations(
    session: AsyncSession,
    *,
    workspace_id: int,
    page: PageRequest,
    type: ChannelType | None = None,
    agent_id: str | None = None,
    enabled: bool | None = None,
) -> Page[IntegrationWithAgent]:
    repo = IntegrationRepository(session, workspace_id)
    agent = await repo.get_agent(agent_id, param="agent_id") if agent_id is not None else None
    result = await repo.list(page, type=type, agent_id=agent.id if agent else None, enabled=enabled)
    agents = await repo.agent_public_ids({i.agent_id for i in result.items if i.agent_id is not None})
    items = [IntegrationWithAgent(i, agents.get(i.agent_id) if i.agent_id is not None else None) for i in result.items]
    return Page(items=items, has_more=result.has_more)


async def update_integration(
    session: AsyncSession,
    *,
    workspace_id: int,
    integration_id: str,
    data: IntegrationUpdate,
    settings: Settings,
    actor: audit.Actor,
) -> IntegrationWithAgent:
    """Changes the fields present in ``data``; ``agent_id: null`` detaches the agent. ``type`` is fixed.
    ``settings`` are replaced as a whole (and checked against the type); ``secrets`` replace the stored
    secrets they name and keep the others. The audit log records the names of the fields that changed
    (and of the secrets replaced)."""
    repo = IntegrationRepository(session, workspace_id)
    new_secrets = data.secrets if "secrets" in data.model_fields_set else None
    integration = await repo.get_integration(integration_id, for_update=bool(new_secrets))
    changes = data.model_dump(include=data.model_fields_set - {"secrets"})
    new_type = changes.pop("type", integration.type)
    if new_type != integration.type:
        raise ValidationFailed(
            f"type: an integration's type cannot change (it is '{integration.type.value}'); "
            "create a new integration for another channel",
            param="type",
            code="immutable_field",
        )
    if "settings" in changes:
        changes["settings"] = validate_settings(integration.type, changes["settings"])
    before = _audited_fields(integration)
    replaced: list[str] = []
    if new_secrets:
        given = validate_secrets(integration.type, new_secrets, require_all=False)
        _merge_secrets(integration, given, settings)
        replaced = sorted(given)
    if "agent_id" in changes:
        wanted = changes.pop("agent_id")
        agent = await repo.get_agent(wanted, param="agent_id") if wanted is not None else None
        integration.agent_id = agent.id if agent else None
    for field, value in changes.items():
        setattr(integration, field, value)
    await session.flush()
    after = _audited_fields(integration)
    changed = [name for name in before if before[name] != after[name]] + (["secrets"] if replaced else [])
    if changed:
        details: dict[str, Any] = {"fields": changed}
        if replaced:
            details["secrets"] = replaced
        await audit.record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            action=AuditAction.INTEGRATION_UPDATED,
            target_id=integration.public_id,
            details=details,
        )
    return await _with_agent(repo, integration)


def _audited_fields(integration: Integration) -> dict[str, Any]:
    """The integration's fields an update may change, by their API names (secrets apart: never compared)."""
    return {
        "name": integration.name,
        "agent_id": integration.agent_id,
        "enabled": integration.enabled,
        "settings": dict(integration.settings),
    }


async def delete_integration(
    session: AsyncSession, *, workspace_id: int, integration_id: str, actor: audit.Actor
) -> None:
    """Deletes an integration no thread came through; messages sent through it keep no integration."""
    repo = IntegrationRepository(session, workspace_id)
    integration = await repo.get_integration(integration_id)
    public_id = integration.public_id
    if await repo.has_threads(integration):
        raise _in_use(integration)
    try:
        async with session.begin_nested():
            await repo.delete_integration(integration)
    except IntegrityError:
        # A thread took it up between the check and the delete.
        raise _in_use(integration) from None
    await audit.record(
        session, workspace_id=workspace_id, actor=actor, action=AuditAction.INTEGRATION_DELETED, target_id=public_id
    )


def _merge_secrets(integration: Integration, given: dict[str, str], settings: Settings) -> None:
    """Store ``given`` over the integration's current secrets. When no configured key opens those (a key was
    lost), they can only be replaced whole: a 409 asks for every secret the type takes, unless ``given`` is."""
    try:
        current = _open_secrets(integration, settings)
    except SecretDecryptionError:
        missing = [spec.name for spec in SECRETS[integration.type] if spec.name not in given]
        if missing:
            raise Conflict(
                "secrets: the stored secrets can no longer be decrypted (the server's secret keys changed); "
                f"send all of them again ({', '.join(missing)} missing)",
                param="secrets",
                code="secrets_unreadable",
            ) from None
        current = {}
    _store_secrets(integration, {**current, **given}, settings)


def _in_use(integration: Integration) -> Conflict:
    return Conflict(
        f"integration '{integration.public_id}' cannot be deleted: threads came in through it; "
        "disable it instead (enabled: false)",
        code="integration_in_use",
    )


async def _with_agent(repo: IntegrationRepository, integration: Integration) -> IntegrationWithAgent:
    if integration.agent_id is None:
        return IntegrationWithAgent(integration, None)
    agents = await repo.agent_public_ids({integration.agent_id})
    return IntegrationWithAgent(integration, agents.get(integration.agent_id))
