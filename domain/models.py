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
from domain.outbox.models import OutboxMessage
from domain.shipments.models import Leg, Milestone, MilestoneTemplate, Shipment, ShipmentReference
from domain.tenancy.models import Account, ApiClient, Team, TeamMember, Tenant, User
from domain.tracking.models import CodeMapping, IngestEndpoint, IngestMessage, TrackingEvent

__all__ = [
    "Account",
    "ApiClient",
    "Base",
    "Carrier",
    "CodeMapping",
    "DeadLetter",
    "DisruptionNotice",
    "ExceptionActivity",
    "ExceptionGroup",
    "GlobalDisruptionNotice",
    "IngestEndpoint",
    "IngestMessage",
    "Leg",
    "Milestone",
    "MilestoneTemplate",
    "OutboxMessage",
    "Rule",
    "Shipment",
    "ShipmentDocument",
    "ShipmentException",
    "ShipmentReference",
    "Team",
    "TeamMember",
    "Tenant",
    "TrackingEvent",
    "User",
]
