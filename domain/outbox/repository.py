"""Reading dispatched outbox rows back (live subscriptions read the rows a ``NOTIFY`` names)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import any_, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, bigint_array, scoped
from domain.outbox.models import OutboxMessage


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    topic: str
    payload: dict[str, Any]
    created_at: dt.datetime


async def rows_by_id(session: AsyncSession, scope: TenantScope, ids: Sequence[int]) -> list[OutboxRow]:
    """The scope's outbox rows with these ids, in id order (one statement); ids of another tenant, or of
    rows already purged, find nothing."""
    statement = (
        scoped(
            select(OutboxMessage.id, OutboxMessage.topic, OutboxMessage.payload, OutboxMessage.created_at),
            OutboxMessage,
            scope,
        )
        .where(OutboxMessage.id == any_(bigint_array(ids)))
        .order_by(OutboxMessage.id)
    )
    return [OutboxRow(*row) for row in (await session.execute(statement)).all()]
