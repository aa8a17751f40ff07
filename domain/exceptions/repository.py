"""Detection's queries: shipment states for the rules, rules in force, stored exceptions. All scoped.

States are loaded for many shipments at once with a fixed number of statements (shipments, milestones,
events, legs, documents, notices), whatever the number of shipments.

``as_of`` (backtests) reads the world as it was known then: only events and documents received by then,
notices created by then, and timelines rebuilt from the plan and those events with the same function capture
uses — so a backtest sees exactly what live detection would have seen.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, TypeVar, cast

from sqlalchemy import Select, any_, func, select, tuple_
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from domain.columns import TenantOwned
from domain.db import FAR_FUTURE, TenantScope, keyset, scoped, text_array, uuid_array
from domain.documents.models import ShipmentDocument
from domain.exceptions.models import (
    OPEN_STATUSES,
    DisruptionNotice,
    ExceptionActivity,
    ExceptionGroup,
    GlobalDisruptionNotice,
    Rule,
    RuleMode,
    ShipmentException,
)
from domain.exceptions.reconcile import ExceptionRecord
from domain.exceptions.rules import RuleConfig
from domain.exceptions.state import EventView, LegView, MilestoneView, NoticeView, ShipmentState
from domain.exceptions.taxonomy import ExceptionType
from domain.shipments.models import Leg, Milestone, Shipment, ShipmentStatus
from domain.shipments.timeline import UNPLANNED_SEQUENCE_START, PlanStep, TimelineEvent, build_timeline
from domain.tenancy.models import Account
from domain.tracking import rules as tracking_rules
from domain.tracking.canonical import Classifier
from domain.tracking.models import TrackingEvent

# --- rules ---------------------------------------------------------------------------------------------


def _config(row: Rule) -> RuleConfig:
    return RuleConfig(
        id=row.id,
        exception_type=ExceptionType(row.exception_type),
        name=row.name,
        version=row.version,
        mode=RuleMode(row.mode),
        parameters=row.parameters,
        scope=row.scope,
    )


def current_rules_statement(scope: TenantScope) -> Select[Any]:
    """The highest version of every (type, name): the rules in force, disabled ones included."""
    return (
        scoped(select(Rule), Rule, scope)
        .ext(distinct_on(Rule.exception_type, Rule.name))
        .order_by(Rule.exception_type, Rule.name, Rule.version.desc())
    )


async def current_rules(session: AsyncSession, scope: TenantScope) -> list[Rule]:
    return list((await session.execute(current_rules_statement(scope))).scalars())


async def rule_configs(session: AsyncSession, scope: TenantScope) -> list[RuleConfig]:
    return [_config(row) for row in await current_rules(session, scope)]


# --- states --------------------------------------------------------------------------------------------


async def load_states(
    session: AsyncSession,
    scope: TenantScope,
    shipment_ids: Sequence[uuid.UUID],
    *,
    as_of: dt.datetime | None = None,
    lock: bool = False,
) -> list[ShipmentState]:
    """The states of these shipments (missing or invisible ids are left out), in id order.

    ``lock`` takes the shipment rows FOR NO KEY UPDATE, in id order, with the read that loads them: two
    evaluations of one shipment then run one after the other.
    """
    ids = sorted(set(shipment_ids))
    if not ids:
        return []
    statement = (
        scoped(select(Shipment, Account.sla_tier), Shipment, scope)
        .join(Account, (Account.tenant_id == Shipment.tenant_id) & (Account.id == Shipment.account_id))
        .where(Shipment.id == any_(uuid_array(ids)))
        .order_by(Shipment.id)
    )
    if lock:
        statement = statement.with_for_update(key_share=True, of=Shipment)
    shipments = (await session.execute(statement)).all()
    if not shipments:
        return []
    ids = [shipment.id for shipment, _ in shipments]
    milestones = await _milestones(session, scope, ids)
    events = await _events(session, scope, ids, as_of)
    legs: dict[uuid.UUID, list[LegView]] = defaultdict(list)
    for leg in (
        await session.execute(
            scoped(select(Leg), Leg, scope)
            .where(Leg.shipment_id == any_(uuid_array(ids)))
            .order_by(Leg.sequence)
        )
    ).scalars():
        legs[leg.shipment_id].append(
            LegView(
                leg.sequence,
                leg.mode,
                leg.carrier_code,
                leg.origin_locode,
                leg.destination_locode,
                leg.vessel_name,
                leg.voyage_number,
                leg.flight_number,
            )
        )
    documents: dict[uuid.UUID, dict[str, dt.datetime]] = defaultdict(dict)
    document_query = scoped(
        select(ShipmentDocument.shipment_id, ShipmentDocument.document_type, ShipmentDocument.received_at),
        ShipmentDocument,
        scope,
    ).where(ShipmentDocument.shipment_id == any_(uuid_array(ids)))
    if as_of is not None:
        document_query = document_query.where(ShipmentDocument.received_at <= as_of)
    for shipment_id, document_type, received_at in (await session.execute(document_query)).all():
        documents[shipment_id][document_type] = received_at

    states = []
    for shipment, sla_tier in shipments:
        plan = milestones[shipment.id]
        timeline = _as_of_timeline(plan, events[shipment.id]) if as_of is not None else plan
        status = (
            tracking_rules.status_of(shipment.status, (m.code for m in timeline if m.actual_at))
            if as_of is not None
            else shipment.status
        )
        states.append(
            ShipmentState(
                id=shipment.id,
                account_id=shipment.account_id,
                mode=shipment.mode,
                status=status,
                created_at=shipment.created_at,
                sla_tier=sla_tier,
                priority=shipment.priority,
                service_level=shipment.service_level,
                carrier_code=shipment.carrier_code,
                origin_locode=shipment.origin_locode,
                destination_locode=shipment.destination_locode,
                promised_delivery_at=shipment.promised_delivery_at,
                declared_value=shipment.declared_value,
                declared_value_currency=shipment.declared_value_currency,
                milestones=tuple(timeline),
                events=tuple(events[shipment.id]),
                legs=tuple(legs[shipment.id]),
                documents=documents[shipment.id],
            )
        )
    routes = [state.route_locodes() for state in states]
    notices = await _notices(session, scope, set().union(*routes), as_of)
    return [
        _with_notices(state, [n for n in notices if n.location_locode in route])
        for state, route in zip(states, routes, strict=True)
    ]


def _with_notices(state: ShipmentState, notices: list[NoticeView]) -> ShipmentState:
    return replace(state, notices=tuple(notices)) if notices else state


async def _milestones(
    session: AsyncSession, scope: TenantScope, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[MilestoneView]]:
    m = Milestone.__table__.c
    rows = await session.execute(
        scoped(
            select(
                m.shipment_id,
                m.code,
                m.sequence,
                m.location_locode,
                m.baseline_planned_at,
                m.planned_at,
                m.planned_source,
                m.estimated_at,
                m.estimated_source,
                m.actual_at,
                m.actual_source,
            ),
            m,
            scope,
        )
        .where(m.shipment_id == any_(uuid_array(ids)))
        .order_by(m.shipment_id, m.sequence)
    )
    result: dict[uuid.UUID, list[MilestoneView]] = defaultdict(list)
    for row in rows.all():
        result[row.shipment_id].append(
            MilestoneView(
                row.code,
                row.sequence,
                row.location_locode,
                row.baseline_planned_at,
                row.planned_at,
                row.planned_source,
                row.estimated_at,
                row.estimated_source,
                row.actual_at,
                row.actual_source,
            )
        )
    return result


async def _events(
    session: AsyncSession, scope: TenantScope, ids: Sequence[uuid.UUID], as_of: dt.datetime | None
) -> dict[uuid.UUID, list[EventView]]:
    e = TrackingEvent.__table__.c
    statement = scoped(
        select(
            e.shipment_id,
            e.id,
            e.source,
            e.source_event_id,
            e.version_at,
            e.is_retracted,
            e.classifier,
            e.milestone_code,
            e.raw_code,
            e.raw_reason,
            e.code_system,
            e.signals,
            e.unknown_codes,
            e.occurred_at,
            e.received_at,
            e.location_locode,
            e.location_name,
        ),
        e,
        scope,
    ).where(e.shipment_id == any_(uuid_array(ids)))
    if as_of is not None:
        statement = statement.where(e.received_at <= as_of)
    grouped: dict[uuid.UUID, list[tuple[str | None, dt.datetime | None, bool, EventView]]] = defaultdict(list)
    for row in (await session.execute(statement)).all():
        view = EventView(
            id=row.id,
            source=row.source,
            classifier=row.classifier,
            milestone_code=row.milestone_code,
            raw_code=row.raw_code,
            occurred_at=row.occurred_at,
            received_at=row.received_at,
            raw_reason=row.raw_reason,
            code_system=row.code_system,
            signals=tuple(row.signals or ()),
            unknown_codes=tuple(row.unknown_codes or ()),
            location_locode=row.location_locode,
            location_name=row.location_name,
            version_at=row.version_at,
        )
        identity = f"{row.source}:{row.source_event_id}" if row.source_event_id else None
        grouped[row.shipment_id].append((identity, row.version_at, row.is_retracted, view))
    return {
        shipment_id: sorted(
            tracking_rules.current_versions(rows), key=lambda v: (v.occurred_at, v.received_at, str(v.id))
        )
        for shipment_id, rows in grouped.items()
    } | {shipment_id: [] for shipment_id in ids if shipment_id not in grouped}


def _as_of_timeline(current: Sequence[MilestoneView], events: Sequence[EventView]) -> list[MilestoneView]:
    """The timeline as it stood with only ``events``: the booked plan, rebuilt by capture's own function."""
    plan = [
        PlanStep(m.code, m.sequence, m.location_locode, m.baseline_planned_at)
        for m in current
        if m.sequence < UNPLANNED_SEQUENCE_START
    ]
    timeline = build_timeline(
        plan,
        (
            TimelineEvent(
                key=str(e.id),
                classifier=Classifier(e.classifier),
                milestone=e.milestone_code,
                occurred_at=e.occurred_at,
                source=e.source,
                location_locode=e.location_locode,
                version=e.version_at,
            )
            for e in events
            if e.milestone_code is not None
        ),
    )
    baselines = {m.sequence: m.baseline_planned_at for m in current}
    return [
        MilestoneView(
            s.code,
            s.sequence,
            s.location_locode,
            baselines.get(s.sequence),
            s.planned_at,
            s.planned_source,
            s.estimated_at,
            s.estimated_source,
            s.actual_at,
            s.actual_source,
        )
        for s in timeline
    ]


async def _notices(
    session: AsyncSession, scope: TenantScope, places: set[str], as_of: dt.datetime | None
) -> list[NoticeView]:
    if not places:
        return []
    notices: list[NoticeView] = []
    for table, is_global in ((DisruptionNotice.__table__, False), (GlobalDisruptionNotice.__table__, True)):
        c = table.c
        statement = select(c.id, c.cause, c.title, c.location_locode, c.starts_at, c.ends_at).where(
            c.location_locode == any_(text_array(sorted(places))), c.cancelled_at.is_(None)
        )
        if not is_global:
            statement = scoped(statement, c, scope)
        if as_of is not None:
            statement = statement.where(c.created_at <= as_of)
        notices += [NoticeView(*row, is_global=is_global) for row in (await session.execute(statement)).all()]
    return notices


# --- exceptions ----------------------------------------------------------------------------------------


async def exceptions_of(
    session: AsyncSession, scope: TenantScope, shipment_ids: Sequence[uuid.UUID]
) -> list[ShipmentException]:
    """Every exception of these shipments, open and closed (reconciliation needs the closed ones too)."""
    return list(
        (
            await session.execute(
                scoped(select(ShipmentException), ShipmentException, scope)
                .where(ShipmentException.shipment_id == any_(uuid_array(shipment_ids)))
                .order_by(ShipmentException.created_at, ShipmentException.id)
            )
        ).scalars()
    )


def record_of(row: ShipmentException) -> ExceptionRecord:
    return ExceptionRecord(
        id=row.id,
        exception_type=row.exception_type,
        key=row.milestone_code,
        shadow=row.shadow,
        status=row.status,
        fingerprint=row.fingerprint,
        snoozed_until=row.snoozed_until,
        resolved_at=row.resolved_at,
    )


async def shipments_passing(
    session: AsyncSession, scope: TenantScope, locode: str, *, limit: int = 10_000
) -> list[uuid.UUID]:
    """Shipments not yet delivered whose plan or events touch ``locode`` (a new notice re-checks these)."""
    m = Milestone.__table__.c
    statement = (
        scoped(select(m.shipment_id), m, scope)
        .join(Shipment, (Shipment.tenant_id == Milestone.tenant_id) & (Shipment.id == Milestone.shipment_id))
        .where(
            m.location_locode == locode,
            Shipment.status.notin_([ShipmentStatus.DELIVERED, ShipmentStatus.CANCELLED]),
        )
        .group_by(m.shipment_id)
        .limit(limit)
    )
    return list((await session.execute(statement)).scalars())


async def shipments_active_between(
    session: AsyncSession, scope: TenantScope, starts_at: dt.datetime, ends_at: dt.datetime, *, limit: int
) -> list[uuid.UUID]:
    """Shipments that existed by ``ends_at`` with an event received or a milestone planned in the window."""
    e = TrackingEvent.__table__.c
    m = Milestone.__table__.c
    with_events = scoped(select(e.shipment_id), e, scope).where(
        e.shipment_id.is_not(None), e.received_at.between(starts_at, ends_at)
    )
    with_plans = scoped(select(m.shipment_id), m, scope).where(m.planned_at.between(starts_at, ends_at))
    union = with_events.union(with_plans).subquery()
    statement = (
        scoped(select(Shipment.id), Shipment, scope)
        .where(Shipment.id.in_(select(union.c.shipment_id)), Shipment.created_at <= ends_at)
        .order_by(Shipment.id)
        .limit(limit)
    )
    return list((await session.execute(statement)).scalars())


async def due_shipments(
    session: AsyncSession, scope: TenantScope, now: dt.datetime, limit: int
) -> list[uuid.UUID]:
    """Shipments whose next check is due, oldest first, locked; rows another sweep holds are skipped."""
    statement = (
        scoped(select(Shipment.id), Shipment, scope)
        .where(Shipment.next_check_at <= now)
        .order_by(Shipment.next_check_at)
        .limit(limit)
        .with_for_update(skip_locked=True, key_share=True)
    )
    return list((await session.execute(statement)).scalars())


async def has_due(session: AsyncSession, scope: TenantScope, now: dt.datetime) -> bool:
    """Whether any shipment is due: one probe of the due index."""
    statement = scoped(select(Shipment.id), Shipment, scope).where(Shipment.next_check_at <= now).limit(1)
    return (await session.execute(statement)).first() is not None


# --- reads for the API ---------------------------------------------------------------------------------


Owned = TypeVar("Owned", bound=TenantOwned)


def rows_by_id(
    model: type[Owned],
) -> Callable[[AsyncSession, TenantScope, Sequence[uuid.UUID]], Awaitable[dict[uuid.UUID, Owned]]]:
    """A batch look-up of ``model`` rows by id (for dataloaders); missing and invisible ids are left out."""

    async def fetch(
        session: AsyncSession, scope: TenantScope, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, Owned]:
        statement = scoped(select(model), model, scope).where(model.id == any_(uuid_array(ids)))
        return {row.id: row for row in (await session.execute(statement)).scalars()}

    return fetch


@dataclass(frozen=True)
class ExceptionFilter:
    statuses: Sequence[str] = ()
    types: Sequence[str] = ()
    severities: Sequence[str] = ()
    categories: Sequence[str] = ()
    shipment_id: uuid.UUID | None = None
    group_id: uuid.UUID | None = None
    shadow: bool = False
    assignee_user_id: uuid.UUID | None = None
    assignee_team_id: uuid.UUID | None = None
    unassigned: bool = False


class ExceptionOrder(StrEnum):
    NEWEST = "newest"  # created_at, newest first
    PRIORITY = "priority"  # the queue: highest priority score first, then newest
    RESPOND_BY = "respond_by"  # the most urgent response first; none set last


def order_key(order: ExceptionOrder, row: ShipmentException) -> tuple[Any, ...]:
    """A row's position in ``order``: what a cursor carries, and what ``list_exceptions`` continues after."""
    if order == ExceptionOrder.PRIORITY:
        return (row.priority_score, row.created_at, row.id)
    if order == ExceptionOrder.RESPOND_BY:
        return (row.respond_by or FAR_FUTURE, row.id)
    return (row.created_at, row.id)


async def list_exceptions(
    session: AsyncSession,
    scope: TenantScope,
    where: ExceptionFilter,
    limit: int,
    after: tuple[Any, ...] | None,
    order: ExceptionOrder = ExceptionOrder.NEWEST,
) -> list[ShipmentException]:
    """Up to ``limit`` exceptions in ``order``, after the position ``after`` (keyset pagination on
    :func:`order_key`: every order ends on the id, so positions are unique)."""
    e = ShipmentException
    statement = scoped(select(e), e, scope).where(e.shadow.is_(where.shadow))
    for column, values in (
        (e.status, where.statuses),
        (e.exception_type, where.types),
        (e.severity, where.severities),
        (e.category, where.categories),
    ):
        if values:
            statement = statement.where(column == any_(text_array(values)))
    for id_column, value in (
        (e.shipment_id, where.shipment_id),
        (e.group_id, where.group_id),
        (e.assignee_user_id, where.assignee_user_id),
        (e.assignee_team_id, where.assignee_team_id),
    ):
        if value is not None:
            statement = statement.where(id_column == value)
    if where.unassigned:
        statement = statement.where(e.assignee_user_id.is_(None), e.assignee_team_id.is_(None))
    if order == ExceptionOrder.PRIORITY:
        statement = keyset(statement, (e.priority_score, e.created_at, e.id), True, after)
    elif order == ExceptionOrder.RESPOND_BY:
        statement = keyset(statement, (func.coalesce(e.respond_by, FAR_FUTURE), e.id), False, after)
    else:
        statement = keyset(statement, (e.created_at, e.id), True, after)
    return list((await session.execute(statement.limit(limit))).scalars())


exceptions_by_id = rows_by_id(ShipmentException)


# a shipment's open exceptions as every list shows them: live ones (no shadows), highest priority first
OPEN_LIVE = (
    ShipmentException.shadow.is_(False),
    ShipmentException.status == any_(text_array(OPEN_STATUSES)),
)
OPEN_ORDER = (ShipmentException.priority_score.desc(), ShipmentException.created_at, ShipmentException.id)


async def open_exceptions_by_shipment(
    session: AsyncSession, scope: TenantScope, shipment_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ShipmentException]]:
    """The open, non-shadow exceptions of these shipments, highest priority first."""
    e = ShipmentException
    statement = (
        scoped(select(e), e, scope)
        .where(e.shipment_id == any_(uuid_array(shipment_ids)), *OPEN_LIVE)
        .order_by(*OPEN_ORDER)
    )
    result: dict[uuid.UUID, list[ShipmentException]] = defaultdict(list)
    for row in (await session.execute(statement)).scalars():
        result[row.shipment_id].append(row)
    return result


async def activities_by_exception(
    session: AsyncSession, scope: TenantScope, exception_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ExceptionActivity]]:
    """The history of these exceptions, oldest entry first."""
    a = ExceptionActivity
    statement = (
        scoped(select(a), a, scope)
        .where(a.exception_id == any_(uuid_array(exception_ids)))
        .order_by(a.created_at, a.position)
    )
    result: dict[uuid.UUID, list[ExceptionActivity]] = defaultdict(list)
    for row in (await session.execute(statement)).scalars():
        result[row.exception_id].append(row)
    return result


rules_by_id = rows_by_id(Rule)


async def rule_versions(
    session: AsyncSession, scope: TenantScope, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], list[Rule]]:
    """Every version of these (type, name) rules, newest first."""
    statement = (
        scoped(select(Rule), Rule, scope)
        .where(tuple_(Rule.exception_type, Rule.name).in_(list(keys)))
        .order_by(Rule.exception_type, Rule.name, Rule.version.desc())
    )
    result: dict[tuple[str, str], list[Rule]] = defaultdict(list)
    for row in (await session.execute(statement)).scalars():
        result[(row.exception_type, row.name)].append(row)
    return result


groups_by_id = rows_by_id(ExceptionGroup)


async def group_sizes(
    session: AsyncSession, scope: TenantScope, group_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """How many exceptions (any status) each group holds."""
    e = ShipmentException
    statement = (
        scoped(select(e.group_id, func.count()), e, scope)
        .where(e.group_id == any_(uuid_array(group_ids)))
        .group_by(e.group_id)
    )
    return {group_id: count for group_id, count in (await session.execute(statement)).all() if group_id}


AnyNotice = DisruptionNotice | GlobalDisruptionNotice


async def notices(
    session: AsyncSession, scope: TenantScope, *, ending_after: dt.datetime | None, limit: int
) -> list[AnyNotice]:
    """The tenant's own and the platform-wide notices, not cancelled, whose window ends after
    ``ending_after`` (any when ``None``); soonest start first, at most ``limit`` of each kind."""
    own = scoped(select(DisruptionNotice), DisruptionNotice, scope)
    platform = select(GlobalDisruptionNotice)
    found: list[AnyNotice] = []
    for statement, model in ((own, DisruptionNotice), (platform, GlobalDisruptionNotice)):
        statement = statement.where(model.cancelled_at.is_(None))
        if ending_after is not None:
            statement = statement.where(model.ends_at > ending_after)
        rows = await session.execute(statement.order_by(model.starts_at, model.id).limit(limit))
        found += cast(list[AnyNotice], list(rows.scalars()))
    return sorted(found, key=lambda notice: (notice.starts_at, str(notice.id)))


async def find_notice(
    session: AsyncSession, scope: TenantScope, notice_id: uuid.UUID, *, is_global: bool
) -> AnyNotice | None:
    if is_global:
        return await session.get(GlobalDisruptionNotice, notice_id)
    statement = scoped(select(DisruptionNotice), DisruptionNotice, scope).where(
        DisruptionNotice.id == notice_id
    )
    return (await session.execute(statement)).scalar_one_or_none()
