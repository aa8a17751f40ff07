"""Creating shipments with their references, legs and planned timeline. Services flush, never commit."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from domain.columns import utcnow
from domain.db import TenantScope
from domain.shipments.models import (
    Leg,
    Milestone,
    MilestoneCode,
    Mode,
    Priority,
    ReferenceKind,
    Shipment,
    ShipmentReference,
)


class ShipmentError(ValueError):
    """A shipment that cannot be recorded as given; the message says which field and why."""


@dataclass(frozen=True)
class PlannedMilestone:
    code: str
    planned_at: dt.datetime | None
    location_locode: str | None = None
    leg_sequence: int | None = None


@dataclass(frozen=True)
class PlannedLeg:
    sequence: int
    mode: str
    origin_locode: str | None = None
    destination_locode: str | None = None
    carrier_code: str | None = None
    vessel_name: str | None = None
    voyage_number: str | None = None
    flight_number: str | None = None


@dataclass(frozen=True)
class ShipmentDraft:
    account_id: uuid.UUID
    mode: str
    references: list[tuple[str, str]] = field(default_factory=list)
    carrier_code: str | None = None
    service_level: str | None = None
    origin_locode: str | None = None
    destination_locode: str | None = None
    origin_address: dict[str, str] | None = None
    destination_address: dict[str, str] | None = None
    promised_delivery_at: dt.datetime | None = None
    declared_value: Decimal | None = None
    declared_value_currency: str | None = None
    priority: str = Priority.NORMAL
    legs: list[PlannedLeg] = field(default_factory=list)
    milestones: list[PlannedMilestone] = field(default_factory=list)
    plan_source: str = "booking"


def _validate(draft: ShipmentDraft) -> None:
    if draft.mode not in set(Mode):
        raise ShipmentError(f"mode: unknown mode {draft.mode!r}; expected one of {', '.join(Mode)}")
    if draft.priority not in set(Priority):
        raise ShipmentError(f"priority: unknown priority {draft.priority!r}")
    for index, (kind, value) in enumerate(draft.references):
        if kind not in set(ReferenceKind):
            raise ShipmentError(f"references[{index}].kind: unknown reference kind {kind!r}")
        if not value.strip():
            raise ShipmentError(f"references[{index}].value: empty reference")
    for index, milestone in enumerate(draft.milestones):
        if milestone.code not in set(MilestoneCode):
            raise ShipmentError(f"milestones[{index}].code: unknown milestone {milestone.code!r}")
        if milestone.planned_at is not None and milestone.planned_at.tzinfo is None:
            raise ShipmentError(f"milestones[{index}].planned_at: a time needs a UTC offset")
    if draft.promised_delivery_at is not None and draft.promised_delivery_at.tzinfo is None:
        raise ShipmentError("promised_delivery_at: a time needs a UTC offset")


async def create_shipment(session: AsyncSession, scope: TenantScope, draft: ShipmentDraft) -> Shipment:
    _validate(draft)
    tenant_id = scope.tenant_id
    shipment = Shipment(
        tenant_id=tenant_id,
        id=uuid.uuid4(),
        account_id=draft.account_id,
        mode=draft.mode,
        service_level=draft.service_level,
        carrier_code=draft.carrier_code,
        origin_locode=draft.origin_locode,
        origin_address=draft.origin_address,
        destination_locode=draft.destination_locode,
        destination_address=draft.destination_address,
        promised_delivery_at=draft.promised_delivery_at,
        declared_value=draft.declared_value,
        declared_value_currency=draft.declared_value_currency,
        priority=draft.priority,
        next_check_at=utcnow(),  # a new shipment is due for detection: the next sweep evaluates it
    )
    session.add(shipment)
    # the shipment row must exist before rows that reference it (no ORM relationships to order inserts)
    await session.flush()
    legs_by_sequence: dict[int, Leg] = {}
    for planned_leg in draft.legs:
        leg = Leg(
            tenant_id=tenant_id,
            id=uuid.uuid4(),
            shipment_id=shipment.id,
            sequence=planned_leg.sequence,
            mode=planned_leg.mode,
            carrier_code=planned_leg.carrier_code,
            origin_locode=planned_leg.origin_locode,
            destination_locode=planned_leg.destination_locode,
            vessel_name=planned_leg.vessel_name,
            voyage_number=planned_leg.voyage_number,
            flight_number=planned_leg.flight_number,
        )
        legs_by_sequence[planned_leg.sequence] = leg
        session.add(leg)
    session.add_all(
        ShipmentReference(tenant_id=tenant_id, shipment_id=shipment.id, kind=kind, value=value.strip())
        for kind, value in dict.fromkeys(draft.references)
    )
    await session.flush()
    for sequence, planned in enumerate(draft.milestones, start=1):
        leg_ref = legs_by_sequence.get(planned.leg_sequence) if planned.leg_sequence else None
        session.add(
            Milestone(
                tenant_id=tenant_id,
                shipment_id=shipment.id,
                leg_id=leg_ref.id if leg_ref else None,
                code=planned.code,
                sequence=sequence,
                location_locode=planned.location_locode,
                planned_at=planned.planned_at,
                planned_source=draft.plan_source if planned.planned_at else None,
                baseline_planned_at=planned.planned_at,
                baseline_source=draft.plan_source if planned.planned_at else None,
            )
        )
    await session.flush()
    return shipment
