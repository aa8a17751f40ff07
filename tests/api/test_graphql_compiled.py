"""Compiled reads (api/graphql/compiled.py) answer exactly as the field-by-field path does.

Every query below runs twice, against an app with compiled reads and one without, for staff, shippers and
partner clients, and the two responses must hold the same values with the same keys in the same order
(only the spacing inside what PostgreSQL wrote may differ); the statement counts show which path ran.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import literal, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.app import create_app
from api.auth.tokens import TokenService
from api.graphql.endpoint import build_context
from api.graphql.schema import schema
from api.state import AppState
from domain.db import scoped_transaction
from domain.exceptions import service as detection
from domain.exceptions.models import ShipmentException
from domain.shipments.models import Leg, Milestone, Shipment
from domain.shipments.repository import milestone_status_expression
from domain.shipments.rules import MilestoneStatus, milestone_status
from domain.tenancy.principal import Principal
from domain.tracking.service import NewEvent, record_events
from tests.api.graphql_support import partner, shipper, staff
from tests.api.test_graphql_shipments import count_statements
from tests.shipment_factories import T0, TenantWorld, committed_tenant

H = dt.timedelta(hours=1)
NOW = T0 + 5 * 24 * H + dt.timedelta(microseconds=250)

PLAIN_FIELDS = """
  id __typename mode status serviceLevel priority promisedDeliveryAt createdAt updatedAt
  origin { locode address } destination { __typename locode address }
  account { id code name slaTier } carrier { code name scac iataCode }
  references { kind value }
  timeline { id code sequence locationLocode plannedAt plannedSource estimatedAt estimatedSource
             actualAt actualSource status }
  exceptions { id type category key status severity priorityScore explanation occurrences reopenCount
               firstSeenAt lastSeenAt snoozedUntil resolvedAt resolutionReason shadow acknowledgedAt
               respondBy resolveBy escalationStepsFired nextEscalationAt }
  legs { sequence mode originLocode destinationLocode carrier { code name } vesselName voyageNumber flightNumber }
  documents { documentType receivedAt source reference }
"""
SHIPMENT_FIELDS = (
    PLAIN_FIELDS
    + """
  events { id source sourceEventId classifier milestoneCode rawCode rawReason locationLocode locationName
           occurredAt utcOffsetMinutes receivedAt carrierCode signals unknownCodes retracted }
  latest: events(first: 1) { occurredAt classifier }
"""
)
# finance-only: finance and admin (docs/api.md, "Authorization")
VALUES = "{ shipments(first: 20) { edges { node { id declaredValue { amount currency } } } } }"

PAGE = f"""
query Page($first: Int!, $after: String, $order: ShipmentOrder! = NEWEST, $filter: ShipmentFilter) {{
  shipments(first: $first, after: $after, orderBy: $order, filter: $filter) {{
    __typename
    edges {{ cursor node {{ {SHIPMENT_FIELDS} }} }}
    pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}
  }}
}}
"""

# aliases, the same field twice, fragments (named and inline) and directives, as clients write them
SHAPED = """
query Shaped($withTimeline: Boolean!, $skipRefs: Boolean!) {
  first: shipments(first: 2) {
    items: edges { at: cursor node { ...Core ... on Shipment { when: createdAt } } }
    edges { node { id } }
    info: pageInfo { more: hasNextPage __typename }
  }
  again: shipments(first: 1, orderBy: PROMISED_DELIVERY) { edges { node { id promisedDeliveryAt } } }
}
fragment Core on Shipment {
  ref: id
  timeline @include(if: $withTimeline) { code status }
  references @skip(if: $skipRefs) { value }
  account { ... on Account { code } }
}
"""

BY_REFERENCE = f"""
query One($reference: String!) {{ shipmentByReference(reference: $reference) {{ {SHIPMENT_FIELDS} }} }}
"""

# a field outside the compiled vocabulary, or an argument from a variable: resolved the ordinary way
UNCOMPILED = """
{ shipments(first: 5) { edges { node { id exceptions { id rule { name } } } } } }
"""
EVENTS_BY_VARIABLE = """
query Events($n: Int!) { shipments(first: 5) { edges { node { id events(first: $n) { id } } } } }
"""


LARGE_PAGE = f"""
{{ shipments(first: 50) {{ edges {{ cursor node {{ {PLAIN_FIELDS} }} }} pageInfo {{ hasNextPage }} }} }}
"""


@pytest.fixture
async def apps(app_state: AppState) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    state = dataclasses.replace(app_state, clock=lambda: NOW)
    plain = dataclasses.replace(
        state, settings=state.settings.model_copy(update={"graphql_compiled_reads": False})
    )
    async with (
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(state)), base_url="http://t"
        ) as compiled,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(plain)), base_url="http://t"
        ) as fielded,
    ):
        yield compiled, fielded


async def _world(sessions: async_sessionmaker[AsyncSession]) -> TenantWorld:
    """Shipments with every kind of value: addresses, a declared value, carriers, promises with and
    without microseconds, actuals and estimates, open, shadow-free exceptions of two priorities."""
    world = await committed_tenant(sessions, accounts=2, shipments_per_account=3)
    late = NewEvent(
        source="carrier",
        classifier="EST",
        milestone_code="DEPARTED",
        occurred_at=T0 + 120 * H,
        location_locode="CNSHA",
    )
    gate_in = NewEvent(
        source="carrier",
        classifier="ACT",
        milestone_code="GATE_IN_ORIGIN",
        occurred_at=T0 + 48 * H + dt.timedelta(microseconds=123456),
        location_locode="CNSHA",
    )
    async with scoped_transaction(sessions, world.scope) as session:
        for index, shipment in enumerate(world.shipments):
            await session.execute(
                update(Shipment)
                .where(Shipment.id == shipment.id)
                .values(
                    origin_address={"city": "Shanghai", "country": "CN", "line1": "1 Quay Road"},
                    declared_value=Decimal("12500.50") if index % 2 else None,
                    declared_value_currency="USD" if index % 2 else None,
                    carrier_code="MAEU" if index % 3 == 0 else None,
                    promised_delivery_at=T0 + index * 24 * H + dt.timedelta(microseconds=index * 7),
                    service_level="FCL" if index == 1 else None,
                )
            )
        session.add_all(
            [
                Leg(
                    tenant_id=world.scope.tenant_id,
                    shipment_id=world.shipments[0].id,
                    sequence=1,
                    mode="ocean",
                    origin_locode="CNSHA",
                    destination_locode="NLRTM",
                    carrier_code="MAEU",
                    vessel_name="MAERSK ESSEN",
                    voyage_number="245W",
                ),
                Leg(
                    tenant_id=world.scope.tenant_id,
                    shipment_id=world.shipments[0].id,
                    sequence=2,
                    mode="road",
                    origin_locode="NLRTM",
                    destination_locode="DEHAM",
                ),
                Leg(
                    tenant_id=world.scope.tenant_id,
                    shipment_id=world.shipments[3].id,
                    sequence=1,
                    mode="air",
                    flight_number="LH8401",
                ),
            ]
        )
        for index, kind in ((0, "commercial_invoice"), (0, "packing_list"), (1, "bill_of_lading")):
            await detection.record_document(
                session,
                world.scope,
                world.shipments[index].id,
                kind,
                received_at=NOW - index * H,
                reference="D-1",
            )
        await record_events(session, world.scope, world.shipments[0].id, [late, gate_in], now=NOW)
        await record_events(session, world.scope, world.shipments[4].id, [late], now=NOW)
        await detection.evaluate_shipments(session, world.scope, [s.id for s in world.shipments], now=NOW)
        # as triage sets them (a staff-only time: shippers must read null)
        await session.execute(update(ShipmentException).values(respond_by=NOW + 4 * H))
    return world


async def _both(
    apps: tuple[httpx.AsyncClient, httpx.AsyncClient],
    tokens: TokenService,
    app_engine: AsyncEngine,
    principal: Principal,
    query: str,
    variables: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], int, int]:
    """The response (the same from both apps: the same values and keys in the same order; the compiled one
    keeps PostgreSQL's spacing) and each app's statement count."""
    headers = {"Authorization": f"Bearer {tokens.issue(principal)}"}
    bodies, counts = [], []
    for app in apps:
        with count_statements(app_engine) as statements:
            response = await app.post(
                "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
            )
        bodies.append(response.content)
        counts.append(len(statements))
    ordered = [json.loads(body, object_pairs_hook=list) for body in bodies]
    if ordered[0] != ordered[1]:
        compact = [json.dumps(o) for o in ordered]
        at = next(i for i, (a, b) in enumerate(zip(*compact, strict=False)) if a != b)
        raise AssertionError((compact[0][at - 300 : at + 200], compact[1][at - 300 : at + 200]))
    return json.loads(bodies[0]), counts[0], counts[1]


async def test_a_page_answers_the_same_compiled_or_field_by_field_for_every_kind_of_caller(
    app_state: AppState,
    apps: tuple[httpx.AsyncClient, httpx.AsyncClient],
    tokens: TokenService,
    app_engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    world = await _world(sessions)
    other = await _world(sessions)  # another tenant, which nobody here may see
    callers = [
        staff(world),
        staff(world, "admin"),
        shipper(world, 1),
        partner(world, "shipments:read", "exceptions:read"),
    ]
    for caller in callers:
        body, compiled, fielded = await _both(apps, tokens, app_engine, caller, PAGE, {"first": 20})
        assert "errors" not in body, body["errors"]
        edges = body["data"]["shipments"]["edges"]
        assert len(edges) == (3 if caller.is_shipper else 6)
        assert compiled < fielded, (compiled, fielded)
        assert all(s.id.hex not in json.dumps(body) for s in other.shipments)

    body, *_ = await _both(apps, tokens, app_engine, staff(world), PAGE, {"first": 20})
    nodes = [edge["node"] for edge in body["data"]["shipments"]["edges"]]
    # over HTTP the nodes are PostgreSQL's own JSON text, written as it is (its spacing shows it) ...
    headers = {"Authorization": f"Bearer {tokens.issue(staff(world))}"}
    raw = await apps[0].post("/graphql", json={"query": PAGE, "variables": {"first": 20}}, headers=headers)
    assert b'"mode" : "' in raw.content
    # ... in-process (and over a WebSocket) they are parsed values, like any other result
    context = build_context(dataclasses.replace(app_state, clock=lambda: NOW), staff(world), "in-process")
    result = await schema.execute(PAGE, variable_values={"first": 20}, context_value=context)
    assert result.errors is None
    assert result.data is not None
    assert [e["node"] for e in result.data["shipments"]["edges"]] == nodes
    # the values that need formatting are really there, so the comparison above compared something
    values, *_ = await _both(apps, tokens, app_engine, staff(world, "admin"), VALUES)
    declared = [e["node"]["declaredValue"] for e in values["data"]["shipments"]["edges"]]
    assert {v["amount"] for v in declared if v} == {"12500.50"}
    assert None in declared
    assert any(n["carrier"] and n["carrier"]["code"] == "MAEU" for n in nodes)
    assert any(m["actualAt"] and "." in m["actualAt"] for n in nodes for m in n["timeline"])
    assert {m["status"] for n in nodes for m in n["timeline"]} >= {"LATE", "ON_TIME", "PENDING"}
    assert sum(len(n["exceptions"]) for n in nodes) >= 2
    assert any(e["respondBy"] for n in nodes for e in n["exceptions"])
    assert sum(len(n["legs"]) for n in nodes) == 3
    assert sum(len(n["documents"]) for n in nodes) == 3
    assert {len(n["events"]) for n in nodes} == {0, 1, 2}
    assert all(len(n["latest"]) == min(1, len(n["events"])) for n in nodes)
    as_shipper, *_ = await _both(apps, tokens, app_engine, shipper(world, 0), PAGE, {"first": 20})
    seen = [e for edge in as_shipper["data"]["shipments"]["edges"] for e in edge["node"]["exceptions"]]
    assert seen
    assert all(e["respondBy"] is None for e in seen)

    # pages, orders and filters
    first, *_ = await _both(
        apps, tokens, app_engine, staff(world), PAGE, {"first": 4, "order": "PROMISED_DELIVERY"}
    )
    after = first["data"]["shipments"]["pageInfo"]["endCursor"]
    await _both(
        apps,
        tokens,
        app_engine,
        staff(world),
        PAGE,
        {"first": 4, "after": after, "order": "PROMISED_DELIVERY"},
    )
    await _both(apps, tokens, app_engine, staff(world), PAGE, {"first": 20, "filter": {"mode": ["AIR"]}})


async def test_shapes_errors_and_lookups_answer_the_same(
    apps: tuple[httpx.AsyncClient, httpx.AsyncClient],
    tokens: TokenService,
    app_engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    world = await _world(sessions)
    other = await _world(sessions)
    ops = staff(world)
    for variables in ({"withTimeline": True, "skipRefs": False}, {"withTimeline": False, "skipRefs": True}):
        body, compiled, fielded = await _both(apps, tokens, app_engine, ops, SHAPED, variables)
        assert compiled < fielded
        assert list(body["data"]["first"]["items"][0]["node"]) == (
            ["ref", "timeline", "references", "account", "when"]
            if variables["withTimeline"]
            else ["ref", "account", "when"]
        )

    reference = f"BK-{world.slug}-1-2"
    found, compiled, fielded = await _both(
        apps, tokens, app_engine, ops, BY_REFERENCE, {"reference": reference}
    )
    assert found["data"]["shipmentByReference"]["references"]
    assert compiled < fielded
    for missing in (f"BK-{other.slug}-1-2", "nothing-like-it"):
        body, *_ = await _both(apps, tokens, app_engine, ops, BY_REFERENCE, {"reference": missing})
        assert body == {"data": {"shipmentByReference": None}}
    # a shipper of account 0 looking up account 1's reference: like a missing one
    body, *_ = await _both(
        apps, tokens, app_engine, shipper(world, 0), BY_REFERENCE, {"reference": reference}
    )
    assert body == {"data": {"shipmentByReference": None}}

    # not compiled: the same answer, field by field
    body, compiled, fielded = await _both(apps, tokens, app_engine, ops, UNCOMPILED)
    assert compiled == fielded
    events, compiled, fielded = await _both(apps, tokens, app_engine, ops, EVENTS_BY_VARIABLE, {"n": 1})
    assert compiled == fielded
    assert any(len(e["node"]["events"]) == 1 for e in events["data"]["shipments"]["edges"])
    assert any(node["exceptions"] for node in (e["node"] for e in body["data"]["shipments"]["edges"]))
    # a caller who may read shipments but not exceptions gets the same error from both
    body, *_ = await _both(apps, tokens, app_engine, partner(world, "shipments:read"), PAGE, {"first": 5})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body, *_ = await _both(apps, tokens, app_engine, ops, PAGE, {"first": 0})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    body, *_ = await _both(apps, tokens, app_engine, ops, PAGE, {"first": 5, "after": "bm9wZQ"})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_compiled_page_is_one_statement_for_10_or_50_shipments(
    apps: tuple[httpx.AsyncClient, httpx.AsyncClient],
    tokens: TokenService,
    app_engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    small = await committed_tenant(sessions, accounts=2, shipments_per_account=5)
    large = await committed_tenant(sessions, accounts=5, shipments_per_account=10)
    compiled = apps[0]
    counts = []
    for world, size in ((small, 10), (large, 50)):
        headers = {"Authorization": f"Bearer {tokens.issue(staff(world))}"}
        with count_statements(app_engine) as statements:
            response = await compiled.post("/graphql", json={"query": LARGE_PAGE}, headers=headers)
        assert len(response.json()["data"]["shipments"]["edges"]) == size
        counts.append([s for s in statements if "json_build_object" in s])
        assert len(statements) == 2, statements  # the transaction's scope, then the page
    assert [len(c) for c in counts] == [1, 1]


@pytest.mark.parametrize("planned", [None, T0])
@pytest.mark.parametrize("estimated", [None, T0 + H, T0 + 3 * H])
@pytest.mark.parametrize("actual", [None, T0 + H, T0 + 2 * H, T0 + 2 * H + dt.timedelta(microseconds=1)])
@pytest.mark.parametrize("now", [T0, T0 + 2 * H, T0 + 3 * H])
async def test_the_sql_milestone_status_is_the_rules_own(
    session: AsyncSession,
    planned: dt.datetime | None,
    estimated: dt.datetime | None,
    actual: dt.datetime | None,
    now: dt.datetime,
) -> None:
    row = select(
        literal(planned, Milestone.planned_at.type).label("planned_at"),
        literal(estimated, Milestone.estimated_at.type).label("estimated_at"),
        literal(actual, Milestone.actual_at.type).label("actual_at"),
    ).subquery()
    found = (await session.execute(select(milestone_status_expression(row.c, now)))).scalar_one()
    assert MilestoneStatus(found) == milestone_status(planned, estimated, actual, now)
