"""Every table, imported in one place so Alembic and the catalog tests see the whole schema."""

from domain.carriers.models import Carrier
from domain.db import Base
from domain.documents.models import ShipmentDocument
from domain.exceptions.models import (
    DisruptionNotice,
    ExceptionActivity,
    ExceptionGroup,
    GlobalDisruptionNotice,
    Rule,
    ShipmentException,
)
from domain.jobs.models import DeadLetter
from domain.notify.models import (
    EmailMessage,
    EmailTemplate,
    ExceptionFollower,
    MailBranding,
    Notification,
    NotificationPreference,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from domain.outbox.models import OutboxMessage
from domain.shipments.models import Leg, Milestone, MilestoneTemplate, Shipment, ShipmentReference
from domain.signing.models import SigningKey
from domain.tenancy.models import Account, ApiClient, CredentialRevocation, Team, TeamMember, Tenant, User
from domain.tracking.models import CodeMapping, IngestEndpoint, IngestMessage, TrackingEvent
from domain.workflow.models import (
    AssignmentRule,
    EscalationPolicy,
    ExceptionResolution,
    Playbook,
    ResponseTargetRow,
)

__all__ = [
    "Account",
    "ApiClient",
    "AssignmentRule",
    "Base",
    "Carrier",
    "CodeMapping",
    "CredentialRevocation",
    "DeadLetter",
    "DisruptionNotice",
    "EmailMessage",
    "EmailTemplate",
    "EscalationPolicy",
    "ExceptionActivity",
    "ExceptionFollower",
    "ExceptionGroup",
    "ExceptionResolution",
    "GlobalDisruptionNotice",
    "IngestEndpoint",
    "IngestMessage",
    "Leg",
    "MailBranding",
    "Milestone",
    "MilestoneTemplate",
    "Notification",
    "NotificationPreference",
    "OutboxMessage",
    "Playbook",
    "ResponseTargetRow",
    "Rule",
    "Shipment",
    "ShipmentDocument",
    "ShipmentException",
    "ShipmentReference",
    "SigningKey",
    "Team",
    "TeamMember",
    "Tenant",
    "TrackingEvent",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
