"""Helpers for the worker tests: a recording actor, outbox rows, polling with a timeout."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import dramatiq
from dramatiq.middleware import CurrentMessage
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.columns import utcnow
from domain.db import TenantScope, apply_scope, scoped, scoped_transaction
from domain.jobs.models import DeadLetter
from domain.jobs.service import FailedJob, record_dead_letter
from domain.outbox.models import OutboxMessage
from domain.outbox.service import publish
from domain.shipments.service import PlannedMilestone, ShipmentDraft, create_shipment
from tests.factories import make_account, make_tenant

T = TypeVar("T")
H = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Run:
    """One run of a recorded actor."""

    tenant_id: str
    ids: list[str]
    message_id: str
    attempt: int
    backoff_ms: int | None


class JobRecorder:
    """An ``async`` actor ``(tenant_id, ids)`` on its own queue that records every run; it raises while
    ``failing`` is set."""

    def __init__(self, broker: dramatiq.Broker, **options: Any) -> None:
        suffix = uuid.uuid4().hex[:12]
        self.queue = f"test-{suffix}"
        self.name = f"test.record_{suffix}"
        self.runs: list[Run] = []
        self.failing = threading.Event()
        self._lock = threading.Lock()

        async def record(tenant_id: str, ids: list[str]) -> None:
            message = CurrentMessage.get_current_message()
            assert message is not None
            with self._lock:
                self.runs.append(
                    Run(
                        tenant_id,
                        ids,
                        message.message_id,
                        message.options.get("attempt", 1),
                        message.options.get("backoff_ms"),
                    )
                )
            if self.failing.is_set():
                raise RuntimeError("the carrier's API said no")

        self.actor: dramatiq.Actor[[str, list[str]], None] = dramatiq.Actor(
            record, broker=broker, actor_name=self.name, queue_name=self.queue, priority=0, options=options
        )

    async def wait_for_runs(self, count: int) -> list[Run]:
        return await poll(lambda: self._at_least(count))

    async def _at_least(self, count: int) -> list[Run] | None:
        with self._lock:
            return list(self.runs) if len(self.runs) >= count else None


async def poll(check: Callable[[], Awaitable[T | None]], seconds: float = 30) -> T:
    """``check()``'s first non-None answer; fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing after {seconds} s")
        await asyncio.sleep(0.05)


async def new_tenant(sessions: async_sessionmaker[AsyncSession]) -> TenantScope:
    async with sessions() as session, session.begin():
        return TenantScope((await make_tenant(session)).id)


def only(*scopes: TenantScope) -> Callable[[], Awaitable[list[uuid.UUID]]]:
    """A dispatcher's tenant list limited to these tenants (other tests' outbox rows are not ours)."""

    async def tenant_ids() -> list[uuid.UUID]:
        return [scope.tenant_id for scope in scopes]

    return tenant_ids


async def write_outbox(
    sessions: async_sessionmaker[AsyncSession],
    scope: TenantScope,
    topic: str,
    payloads: Sequence[dict[str, Any]],
) -> list[int]:
    """Commit outbox rows; returns their ids."""
    async with scoped_transaction(sessions, scope) as session:
        for payload in payloads:
            await publish(session, scope, topic, payload)
        return await outbox_ids(session, scope, topic)


async def outbox_ids(
    session: AsyncSession, scope: TenantScope, topic: str, *, pending: bool | None = None
) -> list[int]:
    statement = scoped(select(OutboxMessage.id), OutboxMessage, scope).where(OutboxMessage.topic == topic)
    if pending is not None:
        statement = statement.where(
            OutboxMessage.dispatched_at.is_(None) if pending else OutboxMessage.dispatched_at.is_not(None)
        )
    return list((await session.execute(statement.order_by(OutboxMessage.id))).scalars())


def queued(broker: dramatiq.Broker, queue: str) -> list[dramatiq.Message[Any]]:
    """The messages waiting in an in-process broker's queue (no worker running)."""
    return [dramatiq.Message.decode(data) for data in broker.queues[queue].queue]


def new_topic() -> str:
    return f"test.{uuid.uuid4().hex[:12]}"


async def add_dead_letter(
    sessions: async_sessionmaker[AsyncSession],
    scope: TenantScope,
    *,
    actor_name: str = "test.not_declared",
    ids: Sequence[str] = ("s1",),
    failed_at: dt.datetime | None = None,
) -> DeadLetter:
    """Commit a dead letter as the worker middleware would after a job's last attempt."""
    message_id = str(uuid.uuid4())
    failed = FailedJob(
        actor_name=actor_name,
        queue_name="demo",
        message_id=message_id,
        args=[str(scope.tenant_id), list(ids)],
        kwargs={},
        attempts=5,
        error="TimeoutError: the carrier did not answer\n\nTraceback (most recent call last):\n  ...",
        failed_at=failed_at or dt.datetime.now(dt.UTC),
    )
    async with scoped_transaction(sessions, scope) as session:
        await record_dead_letter(session, scope, failed)
        statement = scoped(select(DeadLetter), DeadLetter, scope).where(DeadLetter.message_id == message_id)
        return (await session.execute(statement)).scalar_one()


async def tenant_with_shipment(sessions: async_sessionmaker[AsyncSession]) -> tuple[TenantScope, uuid.UUID]:
    now = utcnow()
    async with sessions() as session, session.begin():
        tenant = await make_tenant(session)
        account = await make_account(session, tenant)
        scope = TenantScope(tenant.id)
        await apply_scope(session, scope)
        shipment = await create_shipment(
            session,
            scope,
            ShipmentDraft(
                account_id=account.id,
                mode="ocean",
                milestones=[
                    PlannedMilestone("DEPARTED", now + 72 * H, "CNSHA"),
                    PlannedMilestone("ARRIVED", now + 600 * H, "NLRTM"),
                ],
            ),
        )
        return scope, shipment.id
