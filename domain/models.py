"""Every table, imported in one place so Alembic and the catalog tests see the whole schema."""

from domain.carriers.models import Carrier
from domain.db import Base
from domain.exceptions.models import ExceptionActivity, Rule, ShipmentException
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
    "ExceptionActivity",
    "IngestEndpoint",
    "IngestMessage",
    "Leg",
    "Milestone",
    "MilestoneTemplate",
    "OutboxMessage",
    "Rule",
    "Shipment",
    "ShipmentException",
    "ShipmentReference",
    "Team",
    "TeamMember",
    "Tenant",
    "TrackingEvent",
    "User",
]
