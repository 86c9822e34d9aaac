"""All tables; importing this module registers them on ``Base.metadata``."""

from threadline.models.agent import Agent, AgentVersion
from threadline.models.api_key import ApiKey
from threadline.models.audit_event import AuditActorType, AuditEvent
from threadline.models.console_session import ConsoleSession, SignInLink
from threadline.models.end_user import EndUser
from threadline.models.erasure import Erasure, ErasureStatus
from threadline.models.event import Event
from threadline.models.idempotency_key import IdempotencyKey
from threadline.models.integration import Integration
from threadline.models.job import Job
from threadline.models.message import Message
from threadline.models.run import Run, RunStatus
from threadline.models.tag import Tag
from threadline.models.thread import Thread, thread_assignees, thread_tags
from threadline.models.usage_day import UsageDay
from threadline.models.user import User, UserRole
from threadline.models.webhook import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from threadline.models.workspace import Workspace
from threadline.models.workspace_counter import WorkspaceCounter

__all__ = [
    "Agent",
    "AgentVersion",
    "ApiKey",
    "AuditActorType",
    "AuditEvent",
    "ConsoleSession",
    "EndUser",
    "Erasure",
    "ErasureStatus",
    "Event",
    "IdempotencyKey",
    "Integration",
    "Job",
    "Message",
    "Run",
    "RunStatus",
    "SignInLink",
    "Tag",
    "Thread",
    "UsageDay",
    "User",
    "UserRole",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "Workspace",
    "WorkspaceCounter",
    "thread_assignees",
    "thread_tags",
]
