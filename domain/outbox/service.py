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

from domain.db import TenantScope, json_text, scoped, tenant_condition
from domain.outbox.models import OutboxMessage
from domain.outbox.rules import CHANGES_CHANNEL, change_notifications


@dataclass(frozen=True, slots=True)
class PendingChange:
    id: int
    topic: str
    payload: dict[str, Any]


async def publish(session: AsyncSession, scope: TenantScope, topic: str, payload: dict[str, Any]) -> None:
    """Write one change to the outbox, in the caller's transaction: it is dispatched only if that commits."""
    await publish_all(session, scope, [(topic, payload)])


_PUBLISH = text(
    """
    INSERT INTO outbox (tenant_id, topic, payload, created_at)
    SELECT :tenant_id, c.topic, c.payload::jsonb, now()
    FROM unnest(CAST(:topics AS text[]), CAST(:payloads AS text[])) WITH ORDINALITY AS c(topic, payload, n)
    ORDER BY c.n
    """
)


async def publish_all(
    session: AsyncSession, scope: TenantScope, changes: Sequence[tuple[str, dict[str, Any]]]
) -> None:
    """Write ``(topic, payload)`` changes to the outbox in one statement, in this order (outbox ids follow
    it), in the caller's transaction. Capture's hot path writes a row per changed shipment through here."""
    if changes:
        await session.execute(
            _PUBLISH,
            {
                "tenant_id": scope.tenant_id,
                "topics": [topic for topic, _ in changes],
                "payloads": [json_text(payload) for _, payload in changes],
            },
        )


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
