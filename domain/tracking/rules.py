"""Pure decisions about tracking events, no I/O: an event's identity and what it does to the shipment status.

Which milestone an event lands on and which of several reports wins is decided by
``domain.shipments.timeline.build_timeline`` (order-independent); the service combines the two.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import TypeVar

from domain.shipments.models import MilestoneCode, ShipmentStatus
from domain.tracking.models import EventClassifier

DEDUP_KEY_LENGTH = 128
T = TypeVar("T")

# An actual of any of these means the cargo has left the shipper: the shipment is in transit. Codes after
# departure are included on purpose, so an arrival reported before a (missed) departure still counts.
MOVEMENT_CODES = frozenset(
    {
        MilestoneCode.PICKED_UP,
        MilestoneCode.GATE_IN_ORIGIN,
        MilestoneCode.LOADED,
        MilestoneCode.DEPARTED,
        MilestoneCode.TRANSSHIPMENT_ARRIVED,
        MilestoneCode.TRANSSHIPMENT_DEPARTED,
        MilestoneCode.ARRIVED,
        MilestoneCode.DISCHARGED,
        MilestoneCode.CUSTOMS_HOLD,
        MilestoneCode.CUSTOMS_RELEASED,
        MilestoneCode.GATE_OUT_DESTINATION,
        MilestoneCode.AVAILABLE_FOR_PICKUP,
        MilestoneCode.OUT_FOR_DELIVERY,
        MilestoneCode.DELIVERY_ATTEMPTED,
    }
)

FINAL_STATUSES = frozenset({ShipmentStatus.DELIVERED, ShipmentStatus.CANCELLED})


def dedup_key(
    *,
    source: str,
    source_event_id: str | None,
    shipment_key: str,
    milestone_code: str,
    classifier: str,
    occurred_at: dt.datetime,
    location_locode: str | None,
) -> str:
    """The key that makes the same event, received twice, one row (``UNIQUE (tenant_id, dedup_key)``).

    A source's own event id is the best identity; it is namespaced by the source so two sources that
    number their events alike do not collide. Without one, the event is identified by what it says:
    shipment, milestone, classifier, instant (in UTC, so offsets do not matter) and place.
    """
    if source_event_id:
        key = f"{source}:{source_event_id}"
        if len(key) <= DEDUP_KEY_LENGTH:
            return key
        return "id:" + hashlib.sha256(key.encode()).hexdigest()
    if occurred_at.tzinfo is None:
        raise ValueError("occurred_at needs a UTC offset")
    material = "|".join(
        (
            shipment_key,
            milestone_code,
            classifier,
            occurred_at.astimezone(dt.UTC).isoformat(),
            location_locode or "",
        )
    )
    return hashlib.sha256(material.encode()).hexdigest()


def next_status(current: str, classifier: str, milestone_code: str) -> str:
    """The shipment status after one event. Only actuals move it, and only forward, so the result of many
    events does not depend on their order: a departure reported after the delivery changes nothing."""
    if classifier != EventClassifier.ACTUAL or current in FINAL_STATUSES:
        return current
    if milestone_code == MilestoneCode.DELIVERED:
        return ShipmentStatus.DELIVERED
    if milestone_code in MOVEMENT_CODES and current == ShipmentStatus.BOOKED:
        return ShipmentStatus.IN_TRANSIT
    return current


def status_of(current: str, actual_codes: Iterable[str]) -> str:
    """The status a timeline supports, from the codes of its milestones that happened: recomputed, so a
    withdrawn delivery un-delivers the shipment. A cancelled shipment stays cancelled."""
    if current == ShipmentStatus.CANCELLED:
        return current
    codes = set(actual_codes)
    if MilestoneCode.DELIVERED in codes:
        return ShipmentStatus.DELIVERED
    if codes & MOVEMENT_CODES:
        return ShipmentStatus.IN_TRANSIT
    return ShipmentStatus.BOOKED


def status_after(current: str, events: Iterable[tuple[str, str]]) -> str:
    """The status after all ``(classifier, milestone_code)`` events, in any order."""
    for classifier, milestone_code in events:
        current = next_status(current, classifier, milestone_code)
    return current


def event_dedup_key(
    *,
    source: str,
    source_event_id: str | None,
    version_at: dt.datetime | None,
    is_retracted: bool,
    reference_values: Iterable[str],
    code: str,
    classifier: str,
    occurred_at: dt.datetime,
    place: str,
) -> str:
    """The identity of a canonical event from any source (``UNIQUE (tenant_id, dedup_key)``).

    With a source event id: that id, plus the version (a DCSA update is a new row that supersedes the old
    one) and a retraction marker. Without one: a hash of what the event says — its references, code,
    classifier, instant in UTC and place — so a resend in a new envelope is still the same event.
    """
    if source_event_id:
        key = f"{source}:{source_event_id}"
        if version_at is not None:
            key += f"@{version_at.astimezone(dt.UTC).isoformat()}"
        if is_retracted:
            key += "!retracted"
        if len(key) <= DEDUP_KEY_LENGTH:
            return key
        return "id:" + hashlib.sha256(key.encode()).hexdigest()
    material = "|".join(
        (
            source,
            ",".join(sorted(set(reference_values))),
            code,
            classifier,
            occurred_at.astimezone(dt.UTC).isoformat(),
            place,
        )
    )
    return "h:" + hashlib.sha256(material.encode()).hexdigest()


def current_versions(rows: Iterable[tuple[str | None, dt.datetime | None, bool, T]]) -> list[T]:
    """Of ``(source_event_id, version_at, is_retracted, item)`` rows, the items still in force.

    Rows without an id stand alone. For one id, the latest version wins and a retraction withdraws the id
    entirely (every version), whatever the order the rows came in.
    """
    standalone: list[T] = []
    latest: dict[str, tuple[dt.datetime, T]] = {}
    withdrawn: set[str] = set()
    oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
    for source_event_id, version_at, is_retracted, item in rows:
        if source_event_id is None:
            standalone.append(item)
            continue
        if is_retracted:
            withdrawn.add(source_event_id)
            continue
        version = version_at or oldest
        if source_event_id not in latest or version > latest[source_event_id][0]:
            latest[source_event_id] = (version, item)
    return standalone + [item for key, (_, item) in latest.items() if key not in withdrawn]
