"""Tracking event queries for reading (capture writes through ``service`` and ``ingest``)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, Uuid, column, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain.db import TenantScope, scoped, uuid_array
from domain.tracking.models import TrackingEvent


def event_order(event: Any = TrackingEvent) -> tuple[ColumnElement[Any], ...]:
    """A shipment's events as lists show them: the latest first (index ix_tracking_event_shipment)."""
    return (event.occurred_at.desc(), event.id.desc())


def latest_events(scope: TenantScope, shipment_id: Any, limit: int) -> Select[TrackingEvent]:
    """The latest ``limit`` events of the shipment ``shipment_id`` (a column of an enclosing query), to
    use as a lateral or correlated subquery."""
    return (
        scoped(select(TrackingEvent), TrackingEvent, scope)
        .where(TrackingEvent.shipment_id == shipment_id)
        .order_by(*event_order())
        .limit(limit)
        .correlate_except(TrackingEvent)  # inside FROM, SQLAlchemy would not correlate it by itself
    )


async def recent_events_by_shipment(
    session: AsyncSession, scope: TenantScope, keys: Sequence[tuple[uuid.UUID, int]]
) -> dict[tuple[uuid.UUID, int], list[TrackingEvent]]:
    """For each (shipment id, n): the shipment's latest ``n`` events, latest first, retracted ones included.
    One statement per distinct ``n``: a lateral subquery per shipment, so each reads only its own ``n``
    rows from the index however many events the shipment has."""
    found: dict[tuple[uuid.UUID, int], list[TrackingEvent]] = defaultdict(list)
    by_limit: dict[int, list[uuid.UUID]] = defaultdict(list)
    for shipment_id, limit in keys:
        by_limit[limit].append(shipment_id)
    for limit, shipment_ids in by_limit.items():
        wanted = (
            func.unnest(uuid_array(shipment_ids)).table_valued(column("id", Uuid)).render_derived("wanted")
        )
        latest = latest_events(scope, wanted.c.id, limit).lateral("latest")
        event = aliased(TrackingEvent, latest)
        statement = (
            select(event)
            .select_from(wanted)
            .join(latest, true())
            .order_by(event.shipment_id, *event_order(event))
        )
        for row in (await session.execute(statement)).scalars():
            assert row.shipment_id is not None
            found[(row.shipment_id, limit)].append(row)
    return found
