"""The workflow as jobs: an exception detection opens reaches workflow.triage through the outbox after
commit, and the periodic job sends workflow.escalate only to tenants with an escalation step due."""

from __future__ import annotations

import datetime as dt

import dramatiq
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.columns import utcnow
from domain.db import TenantScope, scoped, scoped_transaction
from domain.exceptions.models import ShipmentException
from domain.tracking.service import NewEvent, record_events
from tests.workers.support import only, poll, tenant_with_shipment
from workers import actors
from workers.broker import start_in_process_worker
from workers.dispatcher import Dispatcher

H = dt.timedelta(hours=1)


async def triaged(sessions: async_sessionmaker[AsyncSession], scope: TenantScope) -> list[dt.datetime | None]:
    async with scoped_transaction(sessions, scope) as session:
        rows = await session.execute(scoped(select(ShipmentException.triaged_at), ShipmentException, scope))
        return list(rows.scalars())


async def test_a_detected_exception_is_triaged_by_the_worker_after_commit(
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
    dispatcher = Dispatcher(sessions, broker=process_broker, tenant_ids=only(scope))
    worker = start_in_process_worker(process_broker, threads=1)
    try:

        async def triaged_once() -> list[dt.datetime | None] | None:
            await dispatcher.dispatch_all()  # the timeline change, then the exception.opened row
            found = await triaged(sessions, scope)
            return found if found and all(found) else None

        found = await poll(triaged_once)
    finally:
        worker.stop()
    assert found is not None
    assert len(found) == 1
    async with scoped_transaction(sessions, scope) as session:
        row = (
            await session.execute(scoped(select(ShipmentException), ShipmentException, scope))
        ).scalar_one()
    assert row.respond_by is not None
    assert row.resolve_by is not None
    assert row.next_escalation_at is not None
    assert await triaged(sessions, other) == []  # never dispatched: nothing detected or triaged for it


async def test_the_periodic_job_escalates_only_tenants_with_a_step_due(
    sessions: async_sessionmaker[AsyncSession], process_broker: dramatiq.Broker
) -> None:
    scope, shipment_id = await tenant_with_shipment(sessions)
    other, other_shipment = await tenant_with_shipment(sessions)
    now = utcnow()
    for tenant in (scope, other):
        async with scoped_transaction(sessions, tenant) as session:
            late = NewEvent(
                source="carrier", classifier="EST", milestone_code="DEPARTED", occurred_at=now + 100 * H
            )
            await record_events(
                session, tenant, shipment_id if tenant is scope else other_shipment, [late], now=now
            )
    for tenant in (scope, other):
        await Dispatcher(sessions, broker=process_broker, tenant_ids=only(tenant)).dispatch_all()
    worker = start_in_process_worker(process_broker, threads=1)
    try:
        await poll(lambda: _present(sessions, scope))
        await poll(lambda: _present(sessions, other))
    finally:
        worker.stop()
    # only the first tenant's exception is overdue; the other's next step lies far ahead
    async with scoped_transaction(sessions, scope) as session:
        await session.execute(
            update(ShipmentException).values(
                respond_by=now - 2 * H, resolve_by=now + 20 * H, next_escalation_at=now - H, triaged_at=now
            )
        )
    async with scoped_transaction(sessions, other) as session:
        await session.execute(
            update(ShipmentException).values(
                respond_by=now + 20 * H,
                resolve_by=now + 40 * H,
                next_escalation_at=now + 20 * H,
                triaged_at=now,
            )
        )
    sent = await actors.send_due_escalations(sessions, now, [scope.tenant_id, other.tenant_id])
    assert sent == 1
    worker = start_in_process_worker(process_broker, threads=1)
    try:
        steps = await poll(lambda: _steps_fired(sessions, scope))
    finally:
        worker.stop()
    assert steps == [2]  # two hours past respond-by: the team's step and the lead's (30 minutes on)
    assert await _steps_fired(sessions, other) is None


async def _present(sessions: async_sessionmaker[AsyncSession], scope: TenantScope) -> bool | None:
    return bool(await triaged(sessions, scope)) or None


async def _steps_fired(sessions: async_sessionmaker[AsyncSession], scope: TenantScope) -> list[int] | None:
    async with scoped_transaction(sessions, scope) as session:
        rows = await session.execute(
            scoped(select(ShipmentException.escalation_steps_fired), ShipmentException, scope)
        )
        fired = list(rows.scalars())
    return fired if any(fired) else None
