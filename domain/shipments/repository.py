"""Shipment queries. Every statement goes through ``scoped()``: tenant and, for shippers, account."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.carriers.models import Carrier
from domain.db import TenantScope, scoped
from domain.shipments.models import Milestone, Shipment, ShipmentReference
from domain.tenancy.models import Account


@dataclass(frozen=True)
class ShipmentFilter:
    statuses: Sequence[str] = ()
    modes: Sequence[str] = ()
    account_ids: Sequence[uuid.UUID] = ()
    carrier_codes: Sequence[str] = ()
    reference: str | None = None


@dataclass(frozen=True)
class PageKey:
    """Position in the newest-first order: (created_at, id) of the last row seen."""

    created_at: dt.datetime
    id: uuid.UUID


def after_in_newest_first(model: Any, after: PageKey) -> ColumnElement[bool]:
    """The rows that follow ``after`` in the newest-first order ``(created_at, id)`` (keyset pagination)."""
    return or_(
        model.created_at < after.created_at,
        (model.created_at == after.created_at) & (model.id < after.id),
    )


async def list_shipments(
    session: AsyncSession, scope: TenantScope, where: ShipmentFilter, limit: int, after: PageKey | None
) -> list[Shipment]:
    """Up to ``limit`` shipments, newest first, after ``after`` (keyset pagination: stable under inserts)."""
    statement = scoped(select(Shipment), Shipment, scope)
    if where.statuses:
        statement = statement.where(Shipment.status.in_(where.statuses))
    if where.modes:
        statement = statement.where(Shipment.mode.in_(where.modes))
    if where.account_ids:
        statement = statement.where(Shipment.account_id.in_(where.account_ids))
    if where.carrier_codes:
        statement = statement.where(Shipment.carrier_code.in_(where.carrier_codes))
    if where.reference:
        statement = statement.where(
            exists(
                scoped(select(ShipmentReference.id), ShipmentReference, scope).where(
                    ShipmentReference.shipment_id == Shipment.id,
                    ShipmentReference.value == where.reference.strip(),
                )
            )
        )
    if after is not None:
        statement = statement.where(after_in_newest_first(Shipment, after))
    statement = statement.order_by(Shipment.created_at.desc(), Shipment.id.desc()).limit(limit)
    return list((await session.execute(statement)).scalars())


async def shipments_by_id(
    session: AsyncSession, scope: TenantScope, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Shipment]:
    statement = scoped(select(Shipment), Shipment, scope).where(Shipment.id.in_(ids))
    return {row.id: row for row in (await session.execute(statement)).scalars()}


async def shipment_ids_by_reference(
    session: AsyncSession, scope: TenantScope, reference: str
) -> list[uuid.UUID]:
    statement = (
        scoped(select(ShipmentReference.shipment_id), ShipmentReference, scope)
        .where(ShipmentReference.value == reference.strip())
        .distinct()
    )
    return list((await session.execute(statement)).scalars())


async def milestones_by_shipment(
    session: AsyncSession, scope: TenantScope, shipment_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Milestone]]:
    statement = (
        scoped(select(Milestone), Milestone, scope)
        .where(Milestone.shipment_id.in_(shipment_ids))
        .order_by(Milestone.shipment_id, Milestone.sequence)
    )
    grouped: dict[uuid.UUID, list[Milestone]] = defaultdict(list)
    for milestone in (await session.execute(statement)).scalars():
        grouped[milestone.shipment_id].append(milestone)
    return grouped


async def references_by_shipment(
    session: AsyncSession, scope: TenantScope, shipment_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ShipmentReference]]:
    statement = (
        scoped(select(ShipmentReference), ShipmentReference, scope)
        .where(ShipmentReference.shipment_id.in_(shipment_ids))
        .order_by(ShipmentReference.shipment_id, ShipmentReference.kind, ShipmentReference.value)
    )
    grouped: dict[uuid.UUID, list[ShipmentReference]] = defaultdict(list)
    for reference in (await session.execute(statement)).scalars():
        grouped[reference.shipment_id].append(reference)
    return grouped


async def accounts_by_id(
    session: AsyncSession, scope: TenantScope, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Account]:
    statement = scoped(select(Account), Account, scope).where(Account.id.in_(ids))
    if scope.account_id is not None:
        statement = statement.where(Account.id == scope.account_id)
    return {row.id: row for row in (await session.execute(statement)).scalars()}


async def carriers_by_code(session: AsyncSession, codes: Sequence[str]) -> dict[str, Carrier]:
    """Carriers are shared reference data (no tenant)."""
    statement = select(Carrier).where(Carrier.code.in_(codes))
    return {row.code: row for row in (await session.execute(statement)).scalars()}
