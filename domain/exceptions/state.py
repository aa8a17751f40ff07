"""What detection sees of a shipment: plain, frozen data, built by the repository and read by pure rules."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from domain.shipments.models import MilestoneCode, ShipmentStatus
from domain.shipments.timeline import UNPLANNED_SEQUENCE_START


@dataclass(frozen=True, slots=True)
class MilestoneView:
    code: str
    sequence: int
    location_locode: str | None = None
    baseline_planned_at: dt.datetime | None = None
    planned_at: dt.datetime | None = None
    planned_source: str | None = None
    estimated_at: dt.datetime | None = None
    estimated_source: str | None = None
    actual_at: dt.datetime | None = None
    actual_source: str | None = None


@dataclass(frozen=True, slots=True)
class EventView:
    """A tracking event in force (superseded versions and retracted events are not here)."""

    id: uuid.UUID
    source: str
    classifier: str  # PLN, EST, ACT
    milestone_code: str | None  # None: the event carries no milestone (a signal only, or an unknown code)
    raw_code: str
    occurred_at: dt.datetime
    received_at: dt.datetime
    raw_reason: str | None = None
    code_system: str = ""
    signals: tuple[str, ...] = ()
    unknown_codes: tuple[str, ...] = ()
    location_locode: str | None = None
    location_name: str | None = None
    version_at: dt.datetime | None = None

    @property
    def issued_at(self) -> dt.datetime:
        """When the source issued what the event says: its version time, else when we received it."""
        return self.version_at or self.received_at

    def summary(self) -> dict[str, str | None]:
        """The event as evidence: enough to find it and to say what it said and who said it."""
        return {
            "event_id": str(self.id),
            "source": self.source,
            "classifier": self.classifier,
            "code": f"{self.code_system}:{self.raw_code}"
            + (f"/{self.raw_reason}" if self.raw_reason else ""),
            "milestone": self.milestone_code,
            "occurred_at": self.occurred_at.isoformat(),
            "received_at": self.received_at.isoformat(),
            "location": self.location_locode or self.location_name,
        }


@dataclass(frozen=True, slots=True)
class LegView:
    sequence: int
    mode: str
    carrier_code: str | None = None
    origin_locode: str | None = None
    destination_locode: str | None = None
    vessel_name: str | None = None
    voyage_number: str | None = None
    flight_number: str | None = None


@dataclass(frozen=True, slots=True)
class NoticeView:
    """A disruption notice (the tenant's own or a global one) at a place the shipment passes."""

    id: uuid.UUID
    cause: str
    title: str
    location_locode: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    is_global: bool = False


@dataclass(frozen=True)
class ShipmentState:
    id: uuid.UUID
    account_id: uuid.UUID
    mode: str
    status: str
    created_at: dt.datetime
    sla_tier: str = "standard"
    priority: str = "normal"
    service_level: str | None = None
    carrier_code: str | None = None
    origin_locode: str | None = None
    destination_locode: str | None = None
    promised_delivery_at: dt.datetime | None = None
    declared_value: Decimal | None = None
    declared_value_currency: str | None = None
    milestones: tuple[MilestoneView, ...] = ()
    events: tuple[EventView, ...] = ()  # in force, in time order
    legs: tuple[LegView, ...] = ()
    documents: Mapping[str, dt.datetime] = field(default_factory=dict)  # document type → received at
    notices: tuple[NoticeView, ...] = ()

    @property
    def delivered(self) -> MilestoneView | None:
        return next((m for m in self.milestones if m.code == MilestoneCode.DELIVERED and m.actual_at), None)

    @property
    def finished(self) -> bool:
        """Delivered or cancelled: nothing is awaited any more, so nothing can be late or missing."""
        return self.status in (ShipmentStatus.DELIVERED, ShipmentStatus.CANCELLED)

    def milestone(self, code: str) -> MilestoneView | None:
        return next((m for m in self.milestones if m.code == code), None)

    def milestone_key(self, milestone: MilestoneView) -> str:
        """The milestone's part of an exception's key: its code, or code@place when the code repeats."""
        if sum(1 for m in self.milestones if m.code == milestone.code) == 1:
            return milestone.code
        return f"{milestone.code}@{milestone.location_locode or milestone.sequence}"

    def expected_delivery(self) -> dt.datetime | None:
        """When delivery is expected now: the actual, else the latest estimate, else the plan."""
        delivery = self.milestone(MilestoneCode.DELIVERED)
        if delivery is None:
            return None
        return delivery.actual_at or delivery.estimated_at or delivery.planned_at

    def route_locodes(self) -> frozenset[str]:
        """Every place the plan says the shipment passes: ends, legs and planned milestone locations."""
        places = {self.origin_locode, self.destination_locode}
        for leg in self.legs:
            places |= {leg.origin_locode, leg.destination_locode}
        places |= {m.location_locode for m in self.milestones if m.sequence < UNPLANNED_SEQUENCE_START}
        return frozenset(p for p in places if p)
