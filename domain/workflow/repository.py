"""Workflow reads: what is due, an exception's history, and the resolution metrics."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, scoped
from domain.exceptions.models import ExceptionActivity, ShipmentException
from domain.workflow import rules
from domain.workflow.models import ExceptionResolution


async def has_escalation_due(session: AsyncSession, scope: TenantScope, now: dt.datetime) -> bool:
    """One probe of ``ix_shipment_exception_escalation_due``."""
    statement = scoped(select(ShipmentException.id), ShipmentException, scope).where(
        ShipmentException.next_escalation_at <= now
    )
    return (await session.execute(statement.limit(1))).first() is not None


def history(entries: Sequence[ExceptionActivity]) -> list[rules.HistoryEntry]:
    return [(e.kind, e.to_status, e.created_at, e.data) for e in entries]


def status_changes(entries: Sequence[ExceptionActivity]) -> list[rules.StatusChange]:
    return [rules.StatusChange(e.created_at, e.to_status) for e in entries if e.to_status is not None]


async def resolutions_of(
    session: AsyncSession, scope: TenantScope, exception_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, ExceptionResolution]:
    """Each exception's latest resolution (one query)."""
    rows = await session.execute(
        scoped(select(ExceptionResolution), ExceptionResolution, scope)
        .where(ExceptionResolution.exception_id.in_(list(exception_ids)))
        .order_by(ExceptionResolution.exception_id, ExceptionResolution.resolved_at)
    )
    return {r.exception_id: r for r in rows.scalars()}


async def resolved_cases(
    session: AsyncSession, scope: TenantScope, *, since: dt.datetime, until: dt.datetime
) -> list[rules.ResolvedCase]:
    """The structured resolutions recorded in ``[since, until)``, as the metrics read them."""
    rows = await session.execute(
        scoped(select(ExceptionResolution), ExceptionResolution, scope).where(
            ExceptionResolution.resolved_at >= since, ExceptionResolution.resolved_at < until
        )
    )
    return [
        rules.ResolvedCase(
            r.exception_type,
            r.rule_id,
            r.rule_version,
            r.outcome,
            tuple(r.action_codes),
            r.resolved_at - r.opened_at,
        )
        for r in rows.scalars()
    ]
