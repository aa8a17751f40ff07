"""Detection's queries and mutations; ``api/graphql/schema.py`` mounts them as fields.

Every mutation takes ``now`` from the app's clock (tests inject it) and turns a ``DetectionError`` into a
typed error naming the input field: ``NotFoundError`` for an id that does not exist *for the caller* (another
tenant's ids answer exactly like missing ones), ``InvalidInputError`` otherwise.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.graphql.context import Context
from api.graphql.exceptions.types import (
    BacktestRuleInput,
    BacktestRulePayload,
    BacktestRuleSuccess,
    CreateDisruptionNoticePayload,
    CreateDisruptionNoticeSuccess,
    DisruptionNotice,
    DisruptionNoticeInput,
    ExceptionFilter,
    ExceptionTypeSpec,
    RecordShipmentDocumentPayload,
    RecordShipmentDocumentSuccess,
    Rule,
    RuleInput,
    ShipmentException,
    ShipmentExceptionConnection,
    ShipmentExceptionEdge,
    SnoozeExceptionGroupPayload,
    SnoozeExceptionGroupSuccess,
    SnoozeExceptionPayload,
    SnoozeExceptionSuccess,
    UpsertRulePayload,
    UpsertRuleSuccess,
    backtest_report,
    document_node,
    exception_node,
    group_node,
    notice_node,
    rule_node,
    type_specs,
)
from api.graphql.relay import (
    DEFAULT_PAGE_SIZE,
    Forbidden,
    Node,
    UserInputError,
    check_page_size,
    decode_position,
    encode_position,
    expect_global_id,
    paginate,
)
from api.graphql.shipments.types import shipment_node
from api.graphql.tracking.types import InvalidInputError, NotFoundError
from domain.documents.models import ShipmentDocument as ShipmentDocumentRow
from domain.exceptions import repository, service
from domain.exceptions.models import ExceptionGroup as ExceptionGroupRow
from domain.exceptions.models import Rule as RuleRow
from domain.exceptions.repository import ExceptionOrder as ExceptionOrderValue
from domain.exceptions.service import DetectionError, DetectionNotFound, NoticeDraft, RuleDraft
from domain.shipments.models import Shipment as ShipmentRow
from domain.shipments.repository import shipments_by_id
from domain.tenancy.principal import Principal

Info = strawberry.Info[Context, None]
T = TypeVar("T")

# the service names a few fields after its own arguments; the API's inputs call them this
_INPUT_FIELDS = {"step": "stepHours"}
MAX_STEP_HOURS = 24 * 366


# --- queries -------------------------------------------------------------------------------------------


async def exceptions(
    info: Info,
    first: int = DEFAULT_PAGE_SIZE,
    after: str | None = None,
    filter: ExceptionFilter | None = None,
    order_by: ExceptionOrderValue = ExceptionOrderValue.NEWEST,
) -> ShipmentExceptionConnection:
    context = info.context
    limit = check_page_size(first, context.state.settings.graphql_max_page_size)
    order = ExceptionOrderValue(order_by)
    position = decode_position(after, order.value) if after else None
    where = _filter(context.principal, filter)
    scope = context.principal.scope
    rows = await context.loaders.run(
        lambda session: repository.list_exceptions(session, scope, where, limit + 1, position, order)
    )
    cursored, page_info = paginate(
        rows, limit, lambda row: encode_position(order.value, repository.order_key(order, row))
    )
    for _, row in cursored:  # node(id) and nested look-ups in this request reuse the rows
        context.loaders.exception.prime(row.id, row)
    edges = [ShipmentExceptionEdge(cursor=cursor, node=exception_node(row)) for cursor, row in cursored]
    return ShipmentExceptionConnection(edges=edges, page_info=page_info)


def _filter(principal: Principal, given: ExceptionFilter | None) -> repository.ExceptionFilter:
    if given is None:
        return repository.ExceptionFilter()
    if principal.is_shipper and (given.shadow or given.assignee_id or given.team_id or given.unassigned):
        raise Forbidden("shadow exceptions and assignment filters are for staff and partners")
    return repository.ExceptionFilter(
        statuses=[str(s) for s in given.status or []],
        types=[str(t) for t in given.type or []],
        severities=[str(s) for s in given.severity or []],
        categories=[str(c) for c in given.category or []],
        shipment_id=_id_or_nothing(given.shipment_id, "Shipment", "filter.shipmentId"),
        group_id=_id_or_nothing(given.group_id, "ExceptionGroup", "filter.groupId"),
        shadow=given.shadow,
        assignee_user_id=_id_or_nothing(given.assignee_id, "User", "filter.assigneeId"),
        assignee_team_id=_id_or_nothing(given.team_id, "Team", "filter.teamId"),
        unassigned=given.unassigned,
    )


def _id_or_nothing(global_id: strawberry.ID | None, type_name: str, argument: str) -> uuid.UUID | None:
    if global_id is None:
        return None
    value = expect_global_id(global_id, type_name, argument=argument)
    if value is None:
        raise UserInputError(f"{argument}: {global_id!r} is not a {type_name} id", argument=argument)
    return value


async def exception(info: Info, id: strawberry.ID) -> ShipmentException | None:
    value = expect_global_id(id, "ShipmentException")
    return await _exception(info, value) if value is not None else None


async def _exception(info: Info, exception_id: uuid.UUID) -> ShipmentException | None:
    row = await info.context.loaders.exception.load(exception_id)
    if row is None or (row.shadow and info.context.principal.is_shipper):
        return None
    return exception_node(row)


NODE_TYPES = frozenset(
    {"ShipmentException", "ExceptionGroup", "Rule", "DisruptionNotice", "GlobalDisruptionNotice"}
)


async def node(info: Info, type_name: str, value: uuid.UUID) -> Node | None:
    """``node(id)`` for detection's types (one of :data:`NODE_TYPES`; ``Query.node`` has checked the caller
    against :data:`api.graphql.access.NODE_ACCESS`)."""
    loaders = info.context.loaders
    if type_name == "ShipmentException":
        return await _exception(info, value)
    if type_name == "ExceptionGroup":
        group = await loaders.group.load(value)
        return group_node(group) if group is not None else None
    if type_name == "Rule":
        rule = await loaders.rule.load(value)
        return rule_node(rule) if rule is not None else None
    scope = info.context.principal.scope
    is_global = type_name == "GlobalDisruptionNotice"
    notice = await loaders.run(
        lambda session: repository.find_notice(session, scope, value, is_global=is_global)
    )
    return notice_node(notice) if notice is not None else None


async def rules(info: Info) -> list[Rule]:
    """The rules in force (the highest version of each), disabled ones included; defaults on first use."""
    scope = info.context.principal.scope

    async def work(session: AsyncSession) -> list[RuleRow]:
        await service.ensure_default_rules(session, scope)
        return await repository.current_rules(session, scope)

    return [rule_node(row) for row in await info.context.loaders.run(work)]


def exception_types(info: Info) -> list[ExceptionTypeSpec]:
    return type_specs()


async def disruption_notices(info: Info, include_ended: bool = False) -> list[DisruptionNotice]:
    context = info.context
    scope = context.principal.scope
    ending_after = None if include_ended else context.now
    rows = await context.loaders.run(
        lambda session: repository.notices(session, scope, ending_after=ending_after, limit=500)
    )
    return [notice_node(row) for row in rows]


# --- mutations -----------------------------------------------------------------------------------------


async def _attempt(info: Info, work: Callable[[AsyncSession], Awaitable[T]]) -> T | InvalidInputError:
    """Run ``work`` in one transaction; a refusal rolls it back and becomes the typed error."""
    try:
        return await info.context.loaders.run(work)
    except DetectionError as error:
        return _invalid(error)


async def _attempt_on(
    info: Info, work: Callable[[AsyncSession], Awaitable[T]], missing: str
) -> T | NotFoundError | InvalidInputError:
    """:func:`_attempt` for a mutation that names an object, which may not exist for the caller: then
    ``missing`` is the answer (in the caller's terms, the same for another tenant's id as for none)."""
    try:
        return await info.context.loaders.run(work)
    except DetectionNotFound:
        return NotFoundError(message=missing)
    except DetectionError as error:
        return _invalid(error)


def _invalid(error: DetectionError) -> InvalidInputError:
    field = str(error).partition(":")[0]
    return InvalidInputError(field=_INPUT_FIELDS.get(field, field), message=str(error))


def _rule_draft(given: RuleInput) -> RuleDraft:
    return RuleDraft(
        exception_type=given.exception_type,
        name=given.name,
        mode=str(given.mode),
        parameters=given.parameters,  # type: ignore[arg-type]  # checked to be an object by the service
        scope=given.scope,  # type: ignore[arg-type]
        description=given.description,
    )


def _actor(principal: Principal) -> str:
    return f"{principal.subject_kind}:{principal.subject_id}"


def _actor_user(principal: Principal) -> uuid.UUID | None:
    return principal.subject_id if principal.subject_kind == "user" else None


async def upsert_rule(info: Info, input: RuleInput) -> UpsertRulePayload:
    principal = info.context.principal
    draft = _rule_draft(input)
    result = await _attempt(
        info, lambda session: service.upsert_rule(session, principal.scope, draft, actor=_actor(principal))
    )
    if isinstance(result, InvalidInputError):
        return result
    return UpsertRuleSuccess(rule=rule_node(result))


async def backtest_rule(info: Info, input: BacktestRuleInput) -> BacktestRulePayload:
    principal = info.context.principal
    if input.step_hours > MAX_STEP_HOURS:
        return InvalidInputError(field="stepHours", message=f"stepHours: at most {MAX_STEP_HOURS}")
    draft = _rule_draft(input.rule)
    result = await _attempt(
        info,
        lambda session: service.backtest(
            session,
            principal.scope,
            draft,
            starts_at=input.starts_at,
            ends_at=input.ends_at,
            step=dt.timedelta(hours=input.step_hours),
        ),
    )
    if isinstance(result, InvalidInputError):
        return result
    return BacktestRuleSuccess(report=backtest_report(result))


async def snooze_exception(
    info: Info, id: strawberry.ID, until: dt.datetime, note: str | None = None
) -> SnoozeExceptionPayload:
    context = info.context
    principal = context.principal
    missing = f"no exception {id}"
    value = expect_global_id(id, "ShipmentException")
    if value is None:
        return NotFoundError(message=missing)
    result = await _attempt_on(
        info,
        lambda session: service.snooze_exception(
            session,
            principal.scope,
            value,
            until,
            now=context.state.clock(),
            actor_user_id=_actor_user(principal),
            note=note,
        ),
        missing,
    )
    if isinstance(result, NotFoundError | InvalidInputError):
        return result
    return SnoozeExceptionSuccess(exception=exception_node(result))


async def snooze_exception_group(
    info: Info, id: strawberry.ID, until: dt.datetime
) -> SnoozeExceptionGroupPayload:
    context = info.context
    principal = context.principal
    missing = f"no exception group {id}"
    value = expect_global_id(id, "ExceptionGroup")
    if value is None:
        return NotFoundError(message=missing)
    scope = principal.scope

    async def work(session: AsyncSession) -> tuple[ExceptionGroupRow, int]:
        count = await service.snooze_group(
            session, scope, value, until, now=context.state.clock(), actor_user_id=_actor_user(principal)
        )
        return (await repository.groups_by_id(session, scope, [value]))[value], count

    result = await _attempt_on(info, work, missing)
    if isinstance(result, NotFoundError | InvalidInputError):
        return result
    group, count = result
    return SnoozeExceptionGroupSuccess(group=group_node(group), snoozed=count)


async def create_disruption_notice(info: Info, input: DisruptionNoticeInput) -> CreateDisruptionNoticePayload:
    principal = info.context.principal
    draft = NoticeDraft(
        cause=str(input.cause),
        title=input.title,
        location_locode=input.location_locode,
        starts_at=input.starts_at,
        ends_at=input.ends_at,
        description=input.description,
        source="api",
    )
    result = await _attempt(info, lambda session: service.create_notice(session, principal.scope, draft))
    if isinstance(result, InvalidInputError):
        return result
    return CreateDisruptionNoticeSuccess(notice=notice_node(result))


async def record_shipment_document(
    info: Info,
    shipment_id: strawberry.ID,
    document_type: str,
    received_at: dt.datetime | None = None,
    reference: str | None = None,
) -> RecordShipmentDocumentPayload:
    context = info.context
    principal = context.principal
    missing = f"no shipment {shipment_id}"
    value = expect_global_id(shipment_id, "Shipment", argument="shipmentId")
    if value is None:
        return NotFoundError(message=missing)
    scope = principal.scope

    async def work(session: AsyncSession) -> tuple[ShipmentDocumentRow, ShipmentRow]:
        document = await service.record_document(
            session,
            scope,
            value,
            document_type,
            received_at=received_at or context.state.clock(),
            reference=reference,
        )
        return document, (await shipments_by_id(session, scope, [value]))[value]

    result = await _attempt_on(info, work, missing)
    if isinstance(result, NotFoundError | InvalidInputError):
        return result
    document, shipment = result
    return RecordShipmentDocumentSuccess(document=document_node(document), shipment=shipment_node(shipment))
