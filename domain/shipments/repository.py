"""Shipment queries. Every statement goes through ``scoped()``: tenant and, for shippers, account."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    bindparam,
    case,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from domain.carriers.models import Carrier
from domain.db import FAR_FUTURE, TenantScope, keyset, scoped
from domain.documents.models import ShipmentDocument
from domain.shipments.models import Leg, Milestone, Shipment, ShipmentReference
from domain.shipments.rules import DEFAULT_ON_TIME_TOLERANCE, MilestoneStatus
from domain.tenancy.models import Account


@dataclass(frozen=True)
class ShipmentFilter:
    statuses: Sequence[str] = ()
    modes: Sequence[str] = ()
    account_ids: Sequence[uuid.UUID] = ()
    carrier_codes: Sequence[str] = ()
    reference: str | None = None


class ShipmentOrder(StrEnum):
    NEWEST = "newest"  # created_at, newest first (index ix_shipment_page)
    PROMISED_DELIVERY = "promised_delivery"  # soonest promise first, none last (ix_shipment_promised)


# No order on updated_at: an index on it would stop PostgreSQL's HOT updates of shipments, which every
# timeline change makes (docs/decisions.md); partners follow changes by subscription or webhook.
def _order_columns(order: ShipmentOrder) -> tuple[tuple[Any, ...], bool]:
    """The columns of ``order``, after the tenant in the order's index, and whether they run descending."""
    if order == ShipmentOrder.PROMISED_DELIVERY:
        # the constant inlined, so the expression is the index's own
        far_future: ColumnElement[dt.datetime] = literal_column(f"'{FAR_FUTURE.isoformat()}'::timestamptz")
        return (func.coalesce(Shipment.promised_delivery_at, far_future), Shipment.id), False
    return (Shipment.created_at, Shipment.id), True


def order_key(order: ShipmentOrder, row: Shipment) -> tuple[Any, ...]:
    """A row's position in ``order``: what a cursor carries, and what ``list_shipments`` continues after."""
    if order == ShipmentOrder.PROMISED_DELIVERY:
        return (row.promised_delivery_at or FAR_FUTURE, row.id)
    return (row.created_at, row.id)


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
    session: AsyncSession,
    scope: TenantScope,
    where: ShipmentFilter,
    limit: int,
    after: tuple[Any, ...] | None,
    order: ShipmentOrder = ShipmentOrder.NEWEST,
) -> list[Shipment]:
    """Up to ``limit`` shipments in ``order``, after the position ``after`` (keyset pagination on
    :func:`order_key`: stable under inserts)."""
    return list((await session.execute(page_statement(scope, where, limit, after, order))).scalars())


def page_parameters(where: ShipmentFilter, limit: int, after: tuple[Any, ...] | None) -> dict[str, Any]:
    """The values of :func:`page_statement`'s named parameters. Which names there are (with the order)
    decides the statement's shape, so a statement built once can run again with other values."""
    given: dict[str, Any] = {
        "statuses": list(where.statuses),
        "modes": list(where.modes),
        "account_ids": list(where.account_ids),
        "carrier_codes": list(where.carrier_codes),
    }
    parameters = {"page_limit": limit, **{name: value for name, value in given.items() if value}}
    if where.reference:  # compared stripped: blanks alone match nothing
        parameters["reference"] = where.reference.strip()
    for index, value in enumerate(after or ()):
        parameters[f"after_{index}"] = value
    return parameters


def page_statement(
    scope: TenantScope,
    where: ShipmentFilter,
    limit: int,
    after: tuple[Any, ...] | None,
    order: ShipmentOrder = ShipmentOrder.NEWEST,
) -> Select[Shipment]:
    """The SELECT behind :func:`list_shipments` (the compiled read path wraps it), its values as named
    parameters (:func:`page_parameters`)."""
    values = page_parameters(where, limit, after)
    statement = scoped(select(Shipment), Shipment, scope)
    for name, column in (
        ("statuses", Shipment.status),
        ("modes", Shipment.mode),
        ("account_ids", Shipment.account_id),
        ("carrier_codes", Shipment.carrier_code),
    ):
        if name in values:
            statement = statement.where(column.in_(bindparam(name, values[name], expanding=True)))
    if "reference" in values:
        statement = statement.where(
            exists(
                scoped(select(ShipmentReference.id), ShipmentReference, scope).where(
                    ShipmentReference.shipment_id == Shipment.id,
                    ShipmentReference.value == bindparam("reference", values["reference"]),
                )
            )
        )
    columns, descending = _order_columns(order)
    statement = keyset(statement, columns, descending, after, parameter="after")
    return statement.limit(bindparam("page_limit", values["page_limit"], type_=Integer))


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


def milestone_status_expression(
    milestone: Any,
    now: dt.datetime | ColumnElement[dt.datetime],
    tolerance: dt.timedelta = DEFAULT_ON_TIME_TOLERANCE,
) -> ColumnElement[str]:
    """:func:`domain.shipments.rules.milestone_status` as SQL over ``milestone``'s columns, for reads
    compiled to one statement (``now`` a time or a bound parameter); a test holds the two equal over every
    case."""
    deadline = milestone.planned_at + tolerance
    return case(
        (
            milestone.planned_at.is_(None),
            case(
                (milestone.actual_at.is_not(None), MilestoneStatus.ON_TIME.value),
                else_=MilestoneStatus.PENDING.value,
            ),
        ),
        (
            milestone.actual_at.is_not(None),
            case(
                (milestone.actual_at <= deadline, MilestoneStatus.ON_TIME.value),
                else_=MilestoneStatus.LATE.value,
            ),
        ),
        (
            or_(
                (literal(now) if isinstance(now, dt.datetime) else now) > deadline,
                milestone.estimated_at > deadline,
            ),
            MilestoneStatus.LATE.value,
        ),
        else_=MilestoneStatus.PENDING.value,
    )


# the order of a shipment's milestones, references, legs and documents wherever they are listed
TIMELINE_ORDER = (Milestone.sequence,)
REFERENCE_ORDER = (ShipmentReference.kind, ShipmentReference.value)
LEG_ORDER = (Leg.sequence,)
DOCUMENT_ORDER = (ShipmentDocument.received_at, ShipmentDocument.document_type)


OfShipment = TypeVar("OfShipment", Leg, Milestone, ShipmentReference, ShipmentDocument)


def rows_by_shipment(
    model: type[OfShipment], order: tuple[Any, ...]
) -> Callable[[AsyncSession, TenantScope, Sequence[uuid.UUID]], Awaitable[dict[uuid.UUID, list[OfShipment]]]]:
    """A batch look-up of the shipments' rows of ``model`` in ``order`` (for dataloaders)."""

    async def fetch(
        session: AsyncSession, scope: TenantScope, shipment_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[OfShipment]]:
        statement = (
            scoped(select(model), model, scope)
            .where(model.shipment_id.in_(shipment_ids))
            .order_by(model.shipment_id, *order)
        )
        grouped: dict[uuid.UUID, list[OfShipment]] = defaultdict(list)
        for row in (await session.execute(statement)).scalars():
            grouped[row.shipment_id].append(row)
        return grouped

    return fetch


legs_by_shipment = rows_by_shipment(Leg, LEG_ORDER)
milestones_by_shipment = rows_by_shipment(Milestone, TIMELINE_ORDER)
references_by_shipment = rows_by_shipment(ShipmentReference, REFERENCE_ORDER)
documents_by_shipment = rows_by_shipment(ShipmentDocument, DOCUMENT_ORDER)


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
