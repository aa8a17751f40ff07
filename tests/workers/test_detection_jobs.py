"""Detection as jobs: a timeline change reaches exceptions.evaluate through the outbox after commit, and the
periodic job sends exceptions.sweep to the tenants with shipments due — never to another tenant."""

from __future__ import annotations

import datetime as dt
import uuid

import dramatiq
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.columns import utcnow
from domain.db import TenantScope, scoped, scoped_transaction
from domain.exceptions.models import ShipmentException
from domain.exceptions.service import EXCEPTION_TOPICS
from domain.shipments.models import Shipment
from domain.tracking.service import NewEvent, record_events
from tests.workers.support import only, poll, tenant_with_shipment
from workers import actors
from workers.broker import start_in_process_worker
from workers.dispatcher import Dispatcher, routes_of

H = dt.timedelta(hours=1)


async def open_types(sessions: async_sessionmaker[AsyncSession], scope: TenantScope) -> list[str]:
    async with scoped_transaction(sessions, scope) as session:
        rows = await session.execute(
            scoped(select(ShipmentException.exception_type), ShipmentException, scope)
        )
        return sorted(rows.scalars())


async def test_a_late_estimate_becomes_an_exception_through_outbox_dispatcher_and_worker(
    sessions: async_sessionmaker[AsyncSession], process_broker: dramatiq.Broker
) -> None:
    scope, shipment_id = await tenant_with_shipment(sessions)
    other, other_shipment = await tenant_with_shipment(sessions)
    now = utcnow()
    for tenant, shipment in ((scope, shipment_id), (other, other_shipment)):
        async with scoped_transaction(sessions, tenant) as session:
            late = NewEvent(
                source="carrier", classifier="EST", milestone_code="DEPARTED", occurred_at=now + 100 * H
            )
            await record_events(session, tenant, shipment, [late], now=now)
    assert await open_types(sessions, scope) == []  # nothing is evaluated inside the capture transaction

    sent = await Dispatcher(sessions, broker=process_broker, tenant_ids=only(scope)).dispatch_all()
    assert sent >= 1
    worker = start_in_process_worker(process_broker, threads=1)
    try:
        found = await poll(lambda: _when_present(open_types(sessions, scope)))
    finally:
        worker.stop()
    assert found == ["MILESTONE_LATE"]
    assert await open_types(sessions, other) == []  # its rows were not dispatched: nothing ran for it


async def test_the_periodic_job_sweeps_only_tenants_with_shipments_due(
    sessions: async_sessionmaker[AsyncSession], process_broker: dramatiq.Broker
) -> None:
    scope, shipment_id = await tenant_with_shipment(sessions)
    other, other_shipment = await tenant_with_shipment(sessions)
    future = utcnow() + 1000 * H
    async with scoped_transaction(sessions, other) as session:
        await session.execute(
            update(Shipment).where(Shipment.id == other_shipment).values(next_check_at=future)
        )
    # the periodic job lists every tenant; here only these two, so other tests' tenants are left alone
    sent = await actors.send_due_sweeps(sessions, utcnow(), [scope.tenant_id, other.tenant_id])
    assert sent == 1
    worker = start_in_process_worker(process_broker, threads=1)
    try:
        evaluated = await poll(lambda: _evaluated_at(sessions, scope, shipment_id))
    finally:
        worker.stop()
    assert evaluated is not None
    assert await _evaluated_at(sessions, other, other_shipment) is None


async def _when_present(pending: object) -> list[str] | None:
    found = await pending  # type: ignore[misc]
    return found or None


async def _evaluated_at(
    sessions: async_sessionmaker[AsyncSession], scope: TenantScope, shipment_id: uuid.UUID
) -> dt.datetime | None:
    async with scoped_transaction(sessions, scope) as session:
        value = await session.execute(
            scoped(select(Shipment.evaluated_at), Shipment, scope).where(Shipment.id == shipment_id)
        )
        return value.scalar_one()


@pytest.mark.parametrize("topic", ["shipment.timeline_changed", *EXCEPTION_TOPICS])
def test_every_topic_detection_reads_or_writes_has_its_route(topic: str) -> None:
    """A topic without a route is dropped with a warning; each of these has one."""
    assert routes_of(topic)
