"""The audited actions. Names are stable (``<target type>.<what happened>``): clients filter on them, and the
part before the dot is the type of the resource acted on."""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"
    INTEGRATION_CREATED = "integration.created"
    INTEGRATION_UPDATED = "integration.updated"
    INTEGRATION_DELETED = "integration.deleted"
    # `threadline secrets rotate` re-encrypted the stored secrets with the new first server key; their
    # values are unchanged.
    INTEGRATION_SECRETS_REENCRYPTED = "integration.secrets_reencrypted"
    WEBHOOK_CREATED = "webhook.created"
    WEBHOOK_UPDATED = "webhook.updated"
    WEBHOOK_DELETED = "webhook.deleted"
    WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated"  # a new signing secret (POST .../rotate_secret)
    WEBHOOK_DISABLED = "webhook.disabled"  # by threadline, after a run of failed deliveries
    WEBHOOK_SECRETS_REENCRYPTED = "webhook.secrets_reencrypted"
    AGENT_VERSION_SECRETS_REENCRYPTED = "agent_version.secrets_reencrypted"  # HTTP tools' header values
    THREAD_HANDED_OFF = "thread.handed_off"  # to a human: the agent stops answering
    THREAD_HANDED_BACK = "thread.handed_back"  # to the agent
    THREAD_BLOCKED = "thread.blocked"
    THREAD_UNBLOCKED = "thread.unblocked"
    END_USER_EXPORTED = "end_user.exported"
    END_USER_ERASED = "end_user.erased"

    @property
    def target_type(self) -> str:
        """The type of the resource this action is done to: the part before the dot."""
        return self.value.partition(".")[0]


def valid_filter(pattern: str) -> bool:
    """Whether ``pattern`` names an action (``api_key.created``) or a family of them (``api_key.*``)."""
    if pattern.endswith(".*"):
        family = pattern[:-2]
        return any(action.target_type == family for action in AuditAction)
    return pattern in AuditAction._value2member_map_
