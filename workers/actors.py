"""Dramatiq actors, named ``<concept>.<verb>``. Each takes ids and the tenant id, reloads what it needs from
the database on the worker's own engine, and is safe to run twice for the same message."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from dramatiq.middleware import CurrentMessage
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import domain.models  # noqa: F401 - every table, so foreign keys resolve in a worker process
from domain.columns import utcnow
from domain.db import TenantScope, scoped_transaction, system_transaction
from domain.exceptions import repository as detection_queries
from domain.exceptions import service as detection
from domain.tenancy.repository import all_tenant_ids
from domain.tracking.service import TIMELINE_CHANGED
from domain.workflow import repository as workflow_queries
from domain.workflow import service as workflow
from domain.workflow import topics
from milepost import demo
from workers.broker import actor, current_broker, worker_context
from workers.dispatcher import Send, register_route, route_ids
from workers.scheduler import periodic

SWEEP_BATCHES = 20
SWEEP_EVERY_SECONDS = 60

# every timeline change (capture), new document or notice asks for an evaluation of its shipment
route_ids(TIMELINE_CHANGED, "exceptions.evaluate", key="shipment_id")


def _announce_only(_tenant_id: uuid.UUID, _payloads: list[dict[str, Any]]) -> list[Send]:
    """Exception changes reach API processes through the batch's NOTIFY (subscriptions); no job acts on
    them yet — notifications and escalation (the workflow issue) will route them to their actors."""
    return []


for _topic in topics.ALL_TOPICS:
    register_route(_topic, _announce_only)

# a new or reopened exception is triaged: assignment, due times, automatic playbook actions, escalation
route_ids(topics.OPENED, "workflow.triage", key="exception_id")
route_ids(topics.REOPENED, "workflow.triage", key="exception_id")
ESCALATE_EVERY_SECONDS = 60


@actor("demo.advance_feed", queue_name="demo", max_attempts=4, min_backoff=1_000, time_limit=60_000)
async def advance_feed(tenant_id: str, shipment_ids: list[str]) -> None:
    """Advance the simulated carrier feed for these shipments: each one's next due milestone is reported.

    The message's id and enqueue time make the run repeatable: the same message run twice reports the
    same events once (their dedup keys carry the message id), however long it waited in the queue.
    """
    message = CurrentMessage.get_current_message()
    if message is None:
        raise RuntimeError("demo.advance_feed runs inside a Dramatiq worker")
    await demo.advance_shipments(
        worker_context().sessions(),
        TenantScope(uuid.UUID(tenant_id)),
        [uuid.UUID(shipment_id) for shipment_id in shipment_ids],
        cutoff=dt.datetime.fromtimestamp(message.message_timestamp / 1000, dt.UTC),
        run_id=message.message_id,
    )


@actor("exceptions.evaluate", queue_name="detect", max_attempts=5, min_backoff=1_000, time_limit=300_000)
async def evaluate_shipments(tenant_id: str, shipment_ids: list[str]) -> None:
    """Evaluate these shipments now (sent by the outbox dispatcher after a timeline changed). Evaluating
    twice is harmless: the same facts give the same exceptions, only last-seen moves."""
    scope = TenantScope(uuid.UUID(tenant_id))
    async with scoped_transaction(worker_context().sessions(), scope) as session:
        await detection.evaluate_shipments(session, scope, [uuid.UUID(i) for i in shipment_ids], now=utcnow())


@actor("exceptions.sweep", queue_name="detect", max_attempts=5, min_backoff=1_000, time_limit=600_000)
async def sweep(tenant_id: str) -> None:
    """Evaluate this tenant's shipments whose next check is due, a batch per transaction, until none is due
    (or a bounded number of batches; the next sweep continues)."""
    scope = TenantScope(uuid.UUID(tenant_id))
    for _ in range(SWEEP_BATCHES):
        async with scoped_transaction(worker_context().sessions(), scope) as session:
            report = await detection.sweep(session, scope, now=utcnow())
        if report.evaluated < detection.SWEEP_BATCH:
            return


@periodic("exceptions.schedule_sweeps", every_seconds=SWEEP_EVERY_SECONDS)
async def schedule_sweeps(sessions: async_sessionmaker[AsyncSession], now: dt.datetime) -> None:
    """Send ``exceptions.sweep`` for every tenant with a shipment due: one indexed probe per tenant here, the
    evaluations in the workers. Running twice only sends a second sweep that finds nothing due."""
    async with system_transaction(sessions) as session:
        tenants = await all_tenant_ids(session)
    await send_due_sweeps(sessions, now, tenants)


async def send_due_sweeps(
    sessions: async_sessionmaker[AsyncSession], now: dt.datetime, tenant_ids: Iterable[uuid.UUID]
) -> int:
    """``exceptions.sweep`` for each of these tenants with a shipment due; how many were sent."""

    async def due(session: AsyncSession, scope: TenantScope) -> bool:
        return await detection_queries.has_due(session, scope, now)

    return await _send_where_due(sessions, tenant_ids, due, sweep)


async def _send_where_due(
    sessions: async_sessionmaker[AsyncSession],
    tenant_ids: Iterable[uuid.UUID],
    due: Callable[[AsyncSession, TenantScope], Awaitable[bool]],
    job: Any,
) -> int:
    """Send ``job(tenant_id)`` to each tenant for which ``due`` (one indexed probe) says there is work."""
    sent = 0
    for tenant_id in tenant_ids:
        scope = TenantScope(tenant_id)
        async with scoped_transaction(sessions, scope) as session:
            has_work = await due(session, scope)
        if has_work:
            current_broker().enqueue(job.message(str(tenant_id)))
            sent += 1
    return sent


@actor("workflow.triage", queue_name="workflow", max_attempts=5, min_backoff=1_000, time_limit=120_000)
async def triage(tenant_id: str, exception_ids: list[str]) -> None:
    """Triage new or reopened exceptions. Each opening is triaged once (``triaged_at``), so a repeated
    message changes nothing."""
    scope = TenantScope(uuid.UUID(tenant_id))
    async with scoped_transaction(worker_context().sessions(), scope) as session:
        await workflow.triage(session, scope, [uuid.UUID(i) for i in exception_ids], now=utcnow())


@actor("workflow.escalate", queue_name="workflow", max_attempts=5, min_backoff=1_000, time_limit=300_000)
async def escalate(tenant_id: str) -> None:
    """Fire this tenant's due escalation steps, a batch per transaction, until none is due (bounded)."""
    scope = TenantScope(uuid.UUID(tenant_id))
    for _ in range(SWEEP_BATCHES):
        async with scoped_transaction(worker_context().sessions(), scope) as session:
            report = await workflow.escalate_due(session, scope, now=utcnow())
        if report.examined < workflow.ESCALATION_BATCH:
            return


@periodic("workflow.schedule_escalations", every_seconds=ESCALATE_EVERY_SECONDS)
async def schedule_escalations(sessions: async_sessionmaker[AsyncSession], now: dt.datetime) -> None:
    """Send ``workflow.escalate`` for every tenant with an escalation step due."""
    async with system_transaction(sessions) as session:
        tenants = await all_tenant_ids(session)
    await send_due_escalations(sessions, now, tenants)


async def send_due_escalations(
    sessions: async_sessionmaker[AsyncSession], now: dt.datetime, tenant_ids: Iterable[uuid.UUID]
) -> int:
    """``workflow.escalate`` for each of these tenants with an escalation step due; how many were sent."""

    async def due(session: AsyncSession, scope: TenantScope) -> bool:
        return await workflow_queries.has_escalation_due(session, scope, now)

    return await _send_where_due(sessions, tenant_ids, due, escalate)
