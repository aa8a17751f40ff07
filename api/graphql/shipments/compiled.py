"""Shipment reads compiled to one statement (``api/graphql/compiled.py`` says how and why): the vocabulary
of fields that compile, and the sources the ``shipments`` and ``shipmentByReference`` resolvers return.

Compiled: every field of Shipment, Place, Money, Account, Carrier, ShipmentReference and Milestone, and the
plain fields of ShipmentException (not its rule, group, shipment, activities, assignees, resolution,
playbook, evidence or time in state: a selection with any of those is resolved the ordinary way).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

from graphql import GraphQLObjectType, GraphQLOutputType, IntValueNode, get_named_type
from graphql.execution.collect_fields import FieldDetailsList
from sqlalchemy import ColumnElement, DateTime, Text, bindparam, case, func, literal_column, null, or_, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Row
from sqlalchemy.orm import aliased

from api.graphql.access import EXCEPTION_READ, Audience, allowed
from api.graphql.compiled import (
    Build,
    Compiled,
    CompilingExecutionContext,
    FieldSQL,
    IdentityCache,
    Source,
    Vocabulary,
    as_json_text,
    column,
    enum_column,
    enum_name,
    id_column,
    json_value,
    selection_key,
    takes_arguments,
    time_column,
)
from api.graphql.context import Context
from api.graphql.relay import encode_position, paginate
from api.graphql.shipments.types import Shipment as ShipmentNode
from api.graphql.shipments.types import ShipmentConnection, ShipmentEdge, shipment_node
from domain.carriers.models import Carrier
from domain.db import TenantScope, scoped
from domain.documents.models import ShipmentDocument
from domain.exceptions import models as exception_models
from domain.exceptions import taxonomy
from domain.exceptions.models import ShipmentException
from domain.exceptions.repository import OPEN_LIVE, OPEN_ORDER
from domain.exceptions.rules import customer_sees
from domain.shipments import models, repository
from domain.shipments.models import Leg, Milestone, Shipment, ShipmentReference
from domain.shipments.rules import MilestoneStatus
from domain.tenancy import models as tenancy
from domain.tenancy.models import Account
from domain.tenancy.principal import Principal
from domain.tracking.canonical import Classifier
from domain.tracking.models import TrackingEvent
from domain.tracking.repository import event_order, latest_events

EMPTY_LIST: ColumnElement[Any] = literal_column("'[]'::json")


@dataclass(frozen=True)
class Facts:
    principal: Principal
    scope: TenantScope
    max_page_size: int


# the clock is a parameter of the statement, so a plan serves every request
NOW: ColumnElement[dt.datetime] = bindparam("now", type_=DateTime(timezone=True))
PLANS = IdentityCache()
STATEMENTS = IdentityCache()


def _facts(build: Build) -> Facts:
    return cast(Facts, build.facts)


def _place(prefix: str) -> FieldSQL:
    def sql(build: Build, columns: Any, graphql_type: GraphQLOutputType, fields: FieldDetailsList) -> Any:
        place = SimpleNamespace(
            locode=getattr(columns, f"{prefix}_locode"), address=getattr(columns, f"{prefix}_address")
        )
        return build.object(graphql_type, fields, place)

    return sql


def _declared_value(
    build: Build, columns: Any, graphql_type: GraphQLOutputType, fields: FieldDetailsList
) -> Any:
    amount, currency = columns.declared_value, columns.declared_value_currency
    money = build.object(
        graphql_type, fields, SimpleNamespace(amount=sql_cast(amount, Text), currency=currency)
    )
    if money is None:
        return None
    return case((or_(amount.is_(None), currency.is_(None)), null()), else_=money)


def _account(build: Build, columns: Any, graphql_type: GraphQLOutputType, fields: FieldDetailsList) -> Any:
    value = build.object(graphql_type, fields, Account)
    if value is None:
        return None
    scope = _facts(build).scope
    statement = scoped(select(value), Account, scope).where(Account.id == columns.account_id)
    if scope.account_id is not None:  # as repository.accounts_by_id: a shipper sees its own account only
        statement = statement.where(Account.id == scope.account_id)
    return statement.scalar_subquery()


def _carrier(build: Build, columns: Any, graphql_type: GraphQLOutputType, fields: FieldDetailsList) -> Any:
    value = build.object(graphql_type, fields, Carrier)
    if value is None:
        return None
    # carriers are shared reference data (no tenant)
    return select(value).where(Carrier.code == columns.carrier_code).scalar_subquery()


def _list(model: Any, order: tuple[Any, ...], *conditions: Any) -> FieldSQL:
    """A shipment's rows of ``model`` as a JSON array in ``order``."""

    def sql(build: Build, columns: Any, graphql_type: GraphQLOutputType, fields: FieldDetailsList) -> Any:
        value = build.object(graphql_type, fields, model)
        if value is None:
            return None
        aggregate = func.json_agg(aggregate_order_by(value, *order))
        statement = scoped(select(aggregate), model, _facts(build).scope).where(
            model.shipment_id == columns.id, *conditions
        )
        return func.coalesce(statement.scalar_subquery(), EMPTY_LIST)

    return sql


_references = _list(ShipmentReference, repository.REFERENCE_ORDER)
_legs = _list(Leg, repository.LEG_ORDER)
_documents = _list(ShipmentDocument, repository.DOCUMENT_ORDER)
_timeline = _list(Milestone, repository.TIMELINE_ORDER)
_open_exceptions = _list(ShipmentException, OPEN_ORDER, *OPEN_LIVE)


@takes_arguments
def _events(build: Build, columns: Any, graphql_type: GraphQLOutputType, fields: FieldDetailsList) -> Any:
    """The latest ``first`` events (a literal, or the default), as ``recent_events_by_shipment`` reads."""
    argument = next((a for a in fields[0].node.arguments or () if a.name.value == "first"), None)
    if argument is None:
        shipment = build.execution.schema.get_type("Shipment")
        assert isinstance(shipment, GraphQLObjectType)
        limit = int(shipment.fields["events"].args["first"].default_value)
    elif isinstance(argument.value, IntValueNode):
        limit = int(argument.value.value)
    else:
        return None  # a variable: not part of a plan
    if not 1 <= limit <= _facts(build).max_page_size:
        return None  # the ordinary path refuses it
    latest = latest_events(_facts(build).scope, columns.id, limit).subquery("latest")
    event = aliased(TrackingEvent, latest)
    value = build.object(graphql_type, fields, event)
    if value is None:
        return None
    aggregate = func.json_agg(aggregate_order_by(value, *event_order(event)))
    return func.coalesce(select(aggregate).select_from(latest).scalar_subquery(), EMPTY_LIST)


def _exceptions(build: Build, columns: Any, graphql_type: GraphQLOutputType, fields: FieldDetailsList) -> Any:
    if not allowed(_facts(build).principal, EXCEPTION_READ):
        return None  # validation refuses it first; should it not, the ordinary path answers with the error
    return _open_exceptions(build, columns, graphql_type, fields)


def _milestone_status(
    build: Build, columns: Any, graphql_type: GraphQLOutputType, fields: FieldDetailsList
) -> Any:
    return enum_name(MilestoneStatus, repository.milestone_status_expression(columns, NOW))


def _staff_only(field: str, value: FieldSQL) -> FieldSQL:
    """``value``, or null for shippers when ``field`` is staff-only (as the field-by-field resolvers decide:
    ``domain.exceptions.rules.customer_sees``)."""

    def sql(build: Build, columns: Any, graphql_type: GraphQLOutputType, fields: FieldDetailsList) -> Any:
        if _facts(build).principal.is_shipper and not customer_sees(field):
            return null()
        return value(build, columns, graphql_type, fields)

    return sql


VOCABULARY: Vocabulary = {
    "Shipment": {
        "id": id_column("Shipment"),
        "mode": enum_column(models.Mode, "mode"),
        "status": enum_column(models.ShipmentStatus, "status"),
        "serviceLevel": column("service_level"),
        "priority": enum_column(models.Priority, "priority"),
        "origin": _place("origin"),
        "destination": _place("destination"),
        "promisedDeliveryAt": time_column("promised_delivery_at"),
        "declaredValue": _declared_value,
        "createdAt": time_column("created_at"),
        "updatedAt": time_column("updated_at"),
        "account": _account,
        "carrier": _carrier,
        "references": _references,
        "timeline": _timeline,
        "exceptions": _exceptions,
        "legs": _legs,
        "documents": _documents,
        "events": _events,
    },
    "Leg": {
        "sequence": column("sequence"),
        "mode": enum_column(models.Mode, "mode"),
        "originLocode": column("origin_locode"),
        "destinationLocode": column("destination_locode"),
        "carrier": _carrier,
        "vesselName": column("vessel_name"),
        "voyageNumber": column("voyage_number"),
        "flightNumber": column("flight_number"),
    },
    "ShipmentDocument": {
        "documentType": column("document_type"),
        "receivedAt": time_column("received_at"),
        "source": column("source"),
        "reference": column("reference"),
    },
    "TrackingEvent": {
        "id": id_column("TrackingEvent"),
        "source": column("source"),
        "sourceEventId": column("source_event_id"),
        "classifier": enum_column(Classifier, "classifier"),
        "milestoneCode": enum_column(models.MilestoneCode, "milestone_code"),
        "rawCode": column("raw_code"),
        "rawReason": column("raw_reason"),
        "locationLocode": column("location_locode"),
        "locationName": column("location_name"),
        "occurredAt": time_column("occurred_at"),
        "utcOffsetMinutes": column("utc_offset_minutes"),
        "receivedAt": time_column("received_at"),
        "carrierCode": column("carrier_code"),
        "signals": column("signals"),
        "unknownCodes": column("unknown_codes"),
        "retracted": column("is_retracted"),
    },
    "Place": {"locode": column("locode"), "address": column("address")},
    "Money": {"amount": column("amount"), "currency": column("currency")},
    "Account": {
        "id": id_column("Account"),
        "code": column("code"),
        "name": column("name"),
        "slaTier": enum_column(tenancy.SlaTier, "sla_tier"),
    },
    "Carrier": {
        "code": column("code"),
        "name": column("name"),
        "scac": column("scac"),
        "iataCode": column("iata_code"),
    },
    "ShipmentReference": {"kind": enum_column(models.ReferenceKind, "kind"), "value": column("value")},
    "Milestone": {
        "id": id_column("Milestone"),
        "code": enum_column(models.MilestoneCode, "code"),
        "sequence": column("sequence"),
        "locationLocode": column("location_locode"),
        "plannedAt": time_column("planned_at"),
        "plannedSource": column("planned_source"),
        "estimatedAt": time_column("estimated_at"),
        "estimatedSource": column("estimated_source"),
        "actualAt": time_column("actual_at"),
        "actualSource": column("actual_source"),
        "status": _milestone_status,
    },
    "ShipmentException": {
        "id": id_column("ShipmentException"),
        "type": enum_column(taxonomy.ExceptionType, "exception_type"),
        "category": enum_column(exception_models.Category, "category"),
        "key": column("milestone_code"),
        "status": enum_column(exception_models.ExceptionStatus, "status"),
        "severity": enum_column(exception_models.Severity, "severity"),
        "priorityScore": column("priority_score"),
        "explanation": column("explanation"),
        "occurrences": column("occurrences"),
        "reopenCount": column("reopen_count"),
        "firstSeenAt": time_column("first_seen_at"),
        "lastSeenAt": time_column("last_seen_at"),
        "snoozedUntil": time_column("snoozed_until"),
        "resolvedAt": time_column("resolved_at"),
        "resolutionReason": column("resolution_reason"),
        "shadow": column("shadow"),
        "acknowledgedAt": time_column("acknowledged_at"),
        "respondBy": _staff_only("respond_by", time_column("respond_by")),
        "resolveBy": _staff_only("resolve_by", time_column("resolve_by")),
        "escalationStepsFired": _staff_only("escalation_steps_fired", column("escalation_steps_fired")),
        "nextEscalationAt": _staff_only("next_escalation_at", time_column("next_escalation_at")),
    },
}


def _plan(
    context: Context,
    execution: CompilingExecutionContext,
    fields: FieldDetailsList,
    make: Callable[[Build], Any],
) -> Any:
    """The plan ``make`` builds for this selection and caller (cached), or None when compiled reads are off
    or the selection does not compile."""
    if not context.state.settings.graphql_compiled_reads:
        return None
    principal = context.principal
    # what a plan depends on: whose rows (scope) and what the caller may see (its access audience)
    caller = (principal.scope, Audience.of(principal))
    facts = Facts(principal, principal.scope, context.state.settings.graphql_max_page_size)
    build = Build(execution, VOCABULARY, facts)
    nodes = tuple(details.node for details in fields)
    return PLANS.get(nodes, (selection_key(execution, fields), caller), lambda: make(build))


def _field_type(parent: GraphQLObjectType, name: str) -> GraphQLObjectType:
    named = get_named_type(parent.fields[name].type)
    assert isinstance(named, GraphQLObjectType)
    return named


@dataclass
class ShipmentPage(Source):
    """One page of ``shipments``: arguments checked, rows not yet read."""

    context: Context
    where: repository.ShipmentFilter
    limit: int
    position: tuple[Any, ...] | None
    order: repository.ShipmentOrder

    async def complete(
        self, execution: CompilingExecutionContext, return_type: GraphQLObjectType, fields: FieldDetailsList
    ) -> Compiled | ShipmentConnection:
        plan = _plan(self.context, execution, fields, lambda build: self._plan(build, return_type, fields))
        if plan is None:
            return await self.objects()
        keys, nodes = plan
        parameters = repository.page_parameters(self.where, self.limit + 1, self.position)
        statement = STATEMENTS.get(
            (plan,),
            (self.order, frozenset(parameters)),
            lambda: repository.page_statement(
                self.context.principal.scope, self.where, self.limit + 1, self.position, self.order
            ).with_only_columns(
                Shipment.created_at,
                Shipment.promised_delivery_at,
                Shipment.id,
                *(as_json_text(node).label(f"node_{index}") for index, node in enumerate(nodes)),
            ),
        )
        rows = await self.context.loaders.run(
            lambda session: _all(session, statement, parameters, self.context)
        )
        return Compiled(self._response(keys, rows))

    def _plan(
        self, build: Build, connection: GraphQLObjectType, fields: FieldDetailsList
    ) -> tuple[list[tuple[str, str, Any]], list[ColumnElement[Any]]] | None:
        """The connection's keys in order, each with what fills it, and the node expressions."""
        keys: list[tuple[str, str, Any]] = []
        nodes: list[ColumnElement[Any]] = []
        for key, name, details in build.selection(connection, fields):
            if name == "edges":
                edge_type = _field_type(connection, "edges")
                edge_keys: list[tuple[str, str, int | None]] = []
                for edge_key, edge_name, edge_details in build.selection(edge_type, details):
                    if edge_name == "node":
                        node = build.object(edge_type.fields["node"].type, edge_details, Shipment)
                        if node is None:
                            return None
                        edge_keys.append((edge_key, edge_name, len(nodes)))
                        nodes.append(node)
                    elif edge_name in ("cursor", "__typename"):
                        edge_keys.append((edge_key, edge_name, None))
                    else:
                        return None
                keys.append((key, name, edge_keys))
            elif name == "pageInfo":
                page_info_type = _field_type(connection, "pageInfo")
                keys.append((key, name, [(k, n) for k, n, _ in build.selection(page_info_type, details)]))
            elif name == "__typename":
                keys.append((key, name, None))
            else:
                return None
        return keys, nodes

    def _response(self, keys: list[tuple[str, str, Any]], rows: list[Row[Any]]) -> dict[str, Any]:
        order, raw = self.order, self.context.raw_json
        cursored, page_info = paginate(
            rows,
            self.limit,
            lambda row: encode_position(order.value, repository.order_key(order, cast(Shipment, row))),
        )
        info_values = {
            "hasNextPage": page_info.has_next_page,
            "hasPreviousPage": page_info.has_previous_page,
            "startCursor": page_info.start_cursor,
            "endCursor": page_info.end_cursor,
            "__typename": "PageInfo",
        }
        result: dict[str, Any] = {}
        for key, name, selection in keys:
            if name == "edges":
                result[key] = [
                    {
                        edge_key: cursor
                        if edge_name == "cursor"
                        else "ShipmentEdge"
                        if edge_name == "__typename"
                        else json_value(row[3 + index], raw)
                        for edge_key, edge_name, index in selection
                    }
                    for cursor, row in cursored
                ]
            elif name == "pageInfo":
                result[key] = {info_key: info_values[info_name] for info_key, info_name in selection}
            else:
                result[key] = "ShipmentConnection"
        return result

    async def objects(self) -> ShipmentConnection:
        context, order, scope = self.context, self.order, self.context.principal.scope
        rows = await context.loaders.run(
            lambda session: repository.list_shipments(
                session, scope, self.where, self.limit + 1, self.position, order
            )
        )
        cursored, page_info = paginate(
            rows, self.limit, lambda row: encode_position(order.value, repository.order_key(order, row))
        )
        for (
            _,
            row,
        ) in cursored:  # prime the loader: node(id) and nested look-ups in this request reuse the rows
            context.loaders.shipment.prime(row.id, row)
        edges = [ShipmentEdge(cursor=cursor, node=shipment_node(row)) for cursor, row in cursored]
        return ShipmentConnection(edges=edges, page_info=page_info)


@dataclass
class ShipmentLookup(Source):
    """The one shipment a ``shipmentByReference`` finds (the newest, should several share the reference)."""

    context: Context
    where: repository.ShipmentFilter

    async def complete(
        self, execution: CompilingExecutionContext, return_type: GraphQLObjectType, fields: FieldDetailsList
    ) -> Compiled | ShipmentNode | None:
        node = _plan(
            self.context, execution, fields, lambda build: build.object(return_type, fields, Shipment)
        )
        if node is None:
            return await self.objects()
        parameters = repository.page_parameters(self.where, 1, None)
        statement = STATEMENTS.get(
            (node,),
            frozenset(parameters),
            lambda: repository.page_statement(
                self.context.principal.scope, self.where, 1, None
            ).with_only_columns(as_json_text(node)),
        )
        rows = await self.context.loaders.run(
            lambda session: _all(session, statement, parameters, self.context)
        )
        return Compiled(json_value(rows[0][0], self.context.raw_json) if rows else None)

    async def objects(self) -> ShipmentNode | None:
        scope = self.context.principal.scope
        rows = await self.context.loaders.run(
            lambda session: repository.list_shipments(session, scope, self.where, 1, None)
        )
        return shipment_node(rows[0]) if rows else None


async def _all(session: Any, statement: Any, parameters: dict[str, Any], context: Context) -> list[Row[Any]]:
    return list((await session.execute(statement, {**parameters, "now": context.now})).all())
