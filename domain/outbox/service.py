"""The outbox's use cases: write a change, claim pending rows for dispatch, mark them, notify, purge.

The dispatcher (``workers/dispatcher.py``) owns the transaction: it claims a tenant's oldest pending rows
with ``FOR UPDATE SKIP LOCKED`` (so several dispatchers share the work without waiting for each other),
sends their messages, marks them dispatched and notifies, then commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, scoped, tenant_condition
from domain.outbox.models import OutboxMessage
from domain.outbox.rules import CHANGES_CHANNEL, change_notifications


@dataclass(frozen=True, slots=True)
class PendingChange:
    id: int
    topic: str
    payload: dict[str, Any]


async def publish(session: AsyncSession, scope: TenantScope, topic: str, payload: dict[str, Any]) -> None:
    """Write one change to the outbox, in the caller's transaction: it is dispatched only if that commits."""
    session.add(OutboxMessage(tenant_id=scope.tenant_id, topic=topic, payload=payload))
    await session.flush()


async def claim_pending(session: AsyncSession, scope: TenantScope, limit: int) -> list[PendingChange]:
    """The tenant's oldest undispatched rows, locked until the transaction ends; rows another dispatcher
    holds are skipped, not waited for."""
    statement = (
        scoped(select(OutboxMessage.id, OutboxMessage.topic, OutboxMessage.payload), OutboxMessage, scope)
        .where(OutboxMessage.dispatched_at.is_(None))
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [PendingChange(*row) for row in (await session.execute(statement)).all()]


async def mark_dispatched(
    session: AsyncSession, scope: TenantScope, changes: Sequence[PendingChange], now: dt.datetime
) -> None:
    """Mark the claimed rows dispatched and tell listeners (``NOTIFY``, delivered when the caller commits)."""
    ids = [change.id for change in changes]
    await session.execute(
        update(OutboxMessage)
        .where(tenant_condition(OutboxMessage, scope), OutboxMessage.id.in_(ids))
        .values(dispatched_at=now)
    )
    notify = text("SELECT pg_notify(:channel, :payload)")
    rows = [(change.id, change.topic) for change in changes]
    for payload in change_notifications(scope.tenant_id, rows):
        await session.execute(notify, {"channel": CHANGES_CHANNEL, "payload": payload})


async def purge_dispatched(session: AsyncSession, scope: TenantScope, before: dt.datetime, limit: int) -> int:
    """Delete up to ``limit`` of the tenant's rows dispatched before ``before``; returns how many went."""
    oldest = (
        scoped(select(OutboxMessage.id), OutboxMessage, scope)
        .where(OutboxMessage.dispatched_at < before)
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    result = await session.execute(
        delete(OutboxMessage).where(tenant_condition(OutboxMessage, scope), OutboxMessage.id.in_(oldest))
    )
    return int(getattr(result, "rowcount", 0) or 0)
