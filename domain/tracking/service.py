"""Recording canonical tracking events and applying them to the shipment timeline. Services flush only."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.columns import utcnow
from domain.db import TenantScope, scoped
from domain.shipments.models import Milestone, MilestoneCode, Shipment
from domain.shipments.timeline import MilestoneState, PlanStep, TimelineEvent, build_timeline
from domain.tracking import rules
from domain.tracking.canonical import Classifier
from domain.tracking.models import EventClassifier, TrackingEvent

_LOCODE = re.compile(r"^[A-Z]{2}[A-Z2-9]{3}$")
_SOURCE_LENGTH = 32
_MAX_OFFSET_MINUTES = 14 * 60


class TrackingError(ValueError):
    """An event that cannot be recorded as given; the message says which field and why."""


@dataclass(frozen=True, kw_only=True)
class NewEvent:
    """A canonical event for one shipment, as a format adapter (or the demo feed) produces it."""

    source: str
    classifier: str  # EventClassifier: PLN, EST or ACT
    milestone_code: str
    occurred_at: dt.datetime
    source_event_id: str | None = None
    raw_code: str | None = None  # the source's own status code; the milestone code when it has none
    raw_reason: str | None = None
    location_locode: str | None = None
    location_name: str | None = None
    utc_offset_minutes: int | None = None
    version_at: dt.datetime | None = None  # when the source issued it (a later version of a PLN/EST wins)


def _validate(event: NewEvent) -> None:
    if not event.source or len(event.source) > _SOURCE_LENGTH:
        raise TrackingError(f"source: needs 1-{_SOURCE_LENGTH} characters, got {event.source!r}")
    if event.classifier not in set(EventClassifier):
        raise TrackingError(
            f"classifier: unknown classifier {event.classifier!r}; expected one of "
            f"{', '.join(EventClassifier)}"
        )
    if event.milestone_code not in set(MilestoneCode):
        raise TrackingError(f"milestone_code: unknown milestone {event.milestone_code!r}")
    for name in ("occurred_at", "version_at"):
        value = getattr(event, name)
        if value is not None and value.tzinfo is None:
            raise TrackingError(f"{name}: a time needs a UTC offset")
    if event.location_locode is not None and not _LOCODE.match(event.location_locode):
        raise TrackingError(f"location_locode: {event.location_locode!r} is not a UN/LOCODE")
    offset = event.utc_offset_minutes
    if offset is not None and not -_MAX_OFFSET_MINUTES <= offset <= _MAX_OFFSET_MINUTES:
        raise TrackingError(f"utc_offset_minutes: {offset} is outside -840..840")


async def record_event(
    session: AsyncSession,
    scope: TenantScope,
    shipment_id: uuid.UUID,
    event: NewEvent,
    *,
    now: dt.datetime | None = None,
) -> bool:
    """Store ``event`` for the shipment and apply it to its timeline; ``False`` if it was a duplicate.

    A duplicate (same ``dedup_key``) changes nothing. See :func:`record_events` for batches.
    """
    [is_new] = await record_events(session, scope, shipment_id, [event], now=now)
    return is_new


async def record_events(
    session: AsyncSession,
    scope: TenantScope,
    shipment_id: uuid.UUID,
    events: Sequence[NewEvent],
    *,
    now: dt.datetime | None = None,
) -> list[bool]:
    """Store several events of one shipment in one statement and apply the new ones; per event, whether
    it was new.

    The timeline is then rebuilt from the plan and *every* event the shipment has (``build_timeline``), so
    the result does not depend on the order events arrive in. The shipment row is locked for the rest of
    the transaction, so two workers recording events for one shipment take turns.
    """
    for event in events:
        _validate(event)
    statement = scoped(select(Shipment), Shipment, scope).where(Shipment.id == shipment_id).with_for_update()
    shipment = (await session.execute(statement)).scalar_one_or_none()
    if shipment is None:
        raise TrackingError(f"shipment {shipment_id} not found")
    if not events:
        return []

    received_at = now or utcnow()
    keys = [
        rules.dedup_key(
            source=event.source,
            source_event_id=event.source_event_id,
            shipment_key=str(shipment.id),
            milestone_code=event.milestone_code,
            classifier=event.classifier,
            occurred_at=event.occurred_at,
            location_locode=event.location_locode,
        )
        for event in events
    ]
    rows: dict[str, dict[str, object]] = {}
    for key, event in zip(keys, events, strict=True):
        rows.setdefault(key, _row(scope, shipment.id, key, event, received_at))
    inserted = set(
        (
            await session.execute(
                insert(TrackingEvent)
                .values(list(rows.values()))
                .on_conflict_do_nothing(index_elements=[TrackingEvent.tenant_id, TrackingEvent.dedup_key])
                .returning(TrackingEvent.dedup_key)
            )
        ).scalars()
    )
    results = []
    for key in keys:
        results.append(key in inserted)
        inserted.discard(key)  # the same event twice in one batch is new once
    if not any(results):
        return results

    await _rebuild_timeline(session, scope, shipment)
    shipment.status = rules.status_after(
        shipment.status,
        ((e.classifier, e.milestone_code) for e, is_new in zip(events, results, strict=True) if is_new),
    )
    await session.flush()
    return results


def _row(
    scope: TenantScope, shipment_id: uuid.UUID, key: str, event: NewEvent, received_at: dt.datetime
) -> dict[str, object]:
    # every column is given: a multi-row INSERT does not run the model's Python-side defaults per row
    return {
        "tenant_id": scope.tenant_id,
        "id": uuid.uuid4(),
        "created_at": received_at,
        "shipment_id": shipment_id,
        "ingest_message_id": None,
        "source": event.source,
        "source_event_id": event.source_event_id,
        "dedup_key": key,
        "classifier": event.classifier,
        "milestone_code": event.milestone_code,
        "raw_code": event.raw_code or event.milestone_code,
        "raw_reason": event.raw_reason,
        "location_locode": event.location_locode,
        "location_name": event.location_name,
        "occurred_at": event.occurred_at,
        "utc_offset_minutes": event.utc_offset_minutes,
        "received_at": received_at,
        "references": [],
        "reference_values": [],
        "signals": [],
        "unknown_codes": [],
        "version_at": event.version_at,
        "payload": {},
        "is_retracted": False,
    }


async def _rebuild_timeline(session: AsyncSession, scope: TenantScope, shipment: Shipment) -> None:
    milestones = list(
        (
            await session.execute(
                scoped(select(Milestone), Milestone, scope)
                .where(Milestone.shipment_id == shipment.id)
                .order_by(Milestone.sequence)
            )
        ).scalars()
    )
    recorded = (
        await session.execute(
            scoped(select(TrackingEvent), TrackingEvent, scope).where(
                TrackingEvent.shipment_id == shipment.id,
                TrackingEvent.milestone_code.is_not(None),
                TrackingEvent.is_retracted.is_(False),
            )
        )
    ).scalars()
    plan = [
        PlanStep(m.code, m.sequence, m.location_locode, m.planned_at, m.planned_source) for m in milestones
    ]
    timeline = build_timeline(
        plan,
        (
            TimelineEvent(
                key=e.dedup_key,
                classifier=Classifier(e.classifier),
                milestone=e.milestone_code or "",
                occurred_at=e.occurred_at,
                source=e.source,
                location_locode=e.location_locode,
                utc_offset_minutes=e.utc_offset_minutes,
                version=e.version_at,
            )
            for e in recorded
        ),
    )
    by_sequence = {m.sequence: m for m in milestones}
    for state in timeline:
        milestone = by_sequence.get(state.sequence)
        if milestone is None:
            # a milestone the plan did not have (a customs hold, an extra stop): it joins the timeline
            milestone = Milestone(
                tenant_id=scope.tenant_id,
                shipment_id=shipment.id,
                code=state.code,
                sequence=state.sequence,
                location_locode=state.location_locode,
            )
            session.add(milestone)
        _write(milestone, state)


def _write(milestone: Milestone, state: MilestoneState) -> None:
    """Copy what the events decided; a time no event speaks about stays as it is (e.g. the booking plan)."""
    if state.planned_at is not None and (milestone.planned_at, milestone.planned_source) != (
        state.planned_at,
        state.planned_source,
    ):
        milestone.planned_at, milestone.planned_source = state.planned_at, state.planned_source
    if state.estimated_at is not None and (milestone.estimated_at, milestone.estimated_source) != (
        state.estimated_at,
        state.estimated_source,
    ):
        milestone.estimated_at, milestone.estimated_source = state.estimated_at, state.estimated_source
    if state.actual_at is not None and (milestone.actual_at, milestone.actual_source) != (
        state.actual_at,
        state.actual_source,
    ):
        milestone.actual_at, milestone.actual_source = state.actual_at, state.actual_source
    if state.utc_offset_minutes is not None and milestone.utc_offset_minutes != state.utc_offset_minutes:
        milestone.utc_offset_minutes = state.utc_offset_minutes
