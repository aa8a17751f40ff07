from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from domain.columns import TenantOwned, utcnow
from domain.db import Base
from domain.tenancy.models import sql_in


class Mode(StrEnum):
    OCEAN = "ocean"
    AIR = "air"
    ROAD = "road"
    PARCEL = "parcel"
    RAIL = "rail"


class ShipmentStatus(StrEnum):
    BOOKED = "booked"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"


class ReferenceKind(StrEnum):
    BOOKING = "booking"
    HOUSE_BL = "house_bl"
    MASTER_BL = "master_bl"
    CONTAINER = "container"
    TRACKING_NUMBER = "tracking_number"
    PRO = "pro"
    AIR_WAYBILL = "air_waybill"
    CUSTOMER_REFERENCE = "customer_reference"


class MilestoneCode(StrEnum):
    """The canonical milestones of DESIGN.md; a mode's template picks the relevant ones."""

    BOOKED = "BOOKED"
    PICKUP_ARRIVED = "PICKUP_ARRIVED"
    PICKED_UP = "PICKED_UP"
    GATE_IN_ORIGIN = "GATE_IN_ORIGIN"
    LOADED = "LOADED"
    DEPARTED = "DEPARTED"
    TRANSSHIPMENT_ARRIVED = "TRANSSHIPMENT_ARRIVED"
    TRANSSHIPMENT_DEPARTED = "TRANSSHIPMENT_DEPARTED"
    ARRIVED = "ARRIVED"
    DISCHARGED = "DISCHARGED"
    CUSTOMS_HOLD = "CUSTOMS_HOLD"
    CUSTOMS_RELEASED = "CUSTOMS_RELEASED"
    GATE_OUT_DESTINATION = "GATE_OUT_DESTINATION"
    AVAILABLE_FOR_PICKUP = "AVAILABLE_FOR_PICKUP"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    DELIVERY_ATTEMPTED = "DELIVERY_ATTEMPTED"
    DELIVERED = "DELIVERED"
    RETURNED = "RETURNED"


LOCODE_CHECK = "~ '^[A-Z]{2}[A-Z2-9]{3}$'"


class Shipment(TenantOwned, Base):
    __tablename__ = "shipment"

    account_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    mode: Mapped[str] = mapped_column(String(16))
    service_level: Mapped[str | None] = mapped_column(String(16), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=ShipmentStatus.BOOKED)
    carrier_code: Mapped[str | None] = mapped_column(String(16), ForeignKey("carrier.code"), nullable=True)
    origin_locode: Mapped[str | None] = mapped_column(String(5), nullable=True)
    origin_address: Mapped[dict[str, str] | None] = mapped_column(JSONB, nullable=True)
    destination_locode: Mapped[str | None] = mapped_column(String(5), nullable=True)
    destination_address: Mapped[dict[str, str] | None] = mapped_column(JSONB, nullable=True)
    promised_delivery_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    declared_value: Mapped[Decimal | None] = mapped_column(Numeric(14, 2), nullable=True)
    declared_value_currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    priority: Mapped[str] = mapped_column(String(16), default=Priority.NORMAL)
    # when detection must look again without a new event (a deadline passing); the sweep reads this index
    next_check_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    evaluated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow
    )

    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        CheckConstraint(sql_in("mode", Mode), name="mode"),
        CheckConstraint(sql_in("status", ShipmentStatus), name="status"),
        CheckConstraint(sql_in("priority", Priority), name="priority"),
        CheckConstraint(f"origin_locode {LOCODE_CHECK}", name="origin_locode"),
        CheckConstraint(f"destination_locode {LOCODE_CHECK}", name="destination_locode"),
        CheckConstraint("declared_value_currency ~ '^[A-Z]{3}$'", name="currency"),
        CheckConstraint(
            "(declared_value IS NULL) = (declared_value_currency IS NULL)", name="value_has_currency"
        ),
        Index("ix_shipment_page", "tenant_id", "created_at", "id"),
        Index(
            "ix_shipment_promised",
            "tenant_id",
            text("coalesce(promised_delivery_at, '9999-01-01T00:00:00+00:00'::timestamptz)"),
            "id",
        ),
        Index("ix_shipment_account", "tenant_id", "account_id", "created_at"),
        Index("ix_shipment_due", "tenant_id", "next_check_at", postgresql_where="next_check_at IS NOT NULL"),
    )


class ShipmentReference(TenantOwned, Base):
    """Any identifier a party uses for the shipment; capture matches events to shipments through these."""

    __tablename__ = "shipment_reference"

    shipment_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    kind: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(128))

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "shipment_id"], ["shipment.tenant_id", "shipment.id"], ondelete="CASCADE"
        ),
        UniqueConstraint("tenant_id", "shipment_id", "kind", "value"),
        CheckConstraint(sql_in("kind", ReferenceKind), name="kind"),
        Index("ix_shipment_reference_value", "tenant_id", "value"),
    )


class Leg(TenantOwned, Base):
    __tablename__ = "leg"

    shipment_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    sequence: Mapped[int] = mapped_column(SmallInteger)
    mode: Mapped[str] = mapped_column(String(16))
    carrier_code: Mapped[str | None] = mapped_column(String(16), ForeignKey("carrier.code"), nullable=True)
    origin_locode: Mapped[str | None] = mapped_column(String(5), nullable=True)
    destination_locode: Mapped[str | None] = mapped_column(String(5), nullable=True)
    vessel_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    voyage_number: Mapped[str | None] = mapped_column(String(32), nullable=True)
    flight_number: Mapped[str | None] = mapped_column(String(16), nullable=True)

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "shipment_id"], ["shipment.tenant_id", "shipment.id"], ondelete="CASCADE"
        ),
        UniqueConstraint("tenant_id", "shipment_id", "sequence"),
        CheckConstraint(sql_in("mode", Mode), name="mode"),
    )


class Milestone(TenantOwned, Base):
    """One step of a shipment's timeline with its planned, estimated and actual times and their sources."""

    __tablename__ = "milestone"

    shipment_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    leg_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    code: Mapped[str] = mapped_column(String(32))
    sequence: Mapped[int] = mapped_column(SmallInteger)
    location_locode: Mapped[str | None] = mapped_column(String(5), nullable=True)
    # the plan as booked (template or booking dates); planned_at is this until a carrier re-plans it
    baseline_planned_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    baseline_source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    planned_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    planned_source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    estimated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    estimated_source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    actual_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    actual_source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Minutes east of UTC where the milestone happens, so local times can be shown as the carrier gave them.
    utc_offset_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # the events that won (dedup keys; the plan's and estimate's issue times), so a new event is compared
    # with these instead of the shipment's whole history (domain/tracking/service.py _ADVANCE)
    planned_event_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    planned_version_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    estimated_event_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    estimated_version_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    actual_event_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow
    )

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "shipment_id"], ["shipment.tenant_id", "shipment.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(["tenant_id", "leg_id"], ["leg.tenant_id", "leg.id"]),
        UniqueConstraint("tenant_id", "shipment_id", "sequence"),
        CheckConstraint(sql_in("code", MilestoneCode), name="code"),
    )


class MilestoneTemplate(TenantOwned, Base):
    """A tenant's milestone template for a mode (and optionally a service level and one account)."""

    __tablename__ = "milestone_template"

    mode: Mapped[str] = mapped_column(String(16))
    service_level: Mapped[str | None] = mapped_column(String(16), nullable=True)
    account_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    # [{"code": "DEPARTED", "anchor": "etd", "offset_hours": 0, "at": "origin"}, ...]
    steps: Mapped[list[dict[str, object]]] = mapped_column(JSONB)

    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        CheckConstraint(sql_in("mode", Mode), name="mode"),
        Index(
            "uq_milestone_template_key",
            "tenant_id",
            "mode",
            text("coalesce(service_level, '')"),
            text("coalesce(account_id::text, '')"),
            unique=True,
        ),
    )
