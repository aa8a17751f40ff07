from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.app import create_app
from api.auth.tokens import TokenService
from api.graphql.relay import to_global_id
from api.state import AppState
from domain.db import apply_scope
from domain.shipments import repository
from domain.shipments.models import Shipment
from tests.api.graphql_support import client_with, gql, partner, shipper, staff
from tests.shipment_factories import T0, committed_tenant

PAGE = """
query Page($first: Int!, $after: String, $filter: ShipmentFilter) {
  shipments(first: $first, after: $after, filter: $filter) {
    edges { cursor node {
      id mode status priority
      origin { locode } destination { locode }
      account { id code slaTier }
      carrier { code }
      references { kind value }
      timeline { code sequence plannedAt estimatedAt actualAt status plannedSource }
      legs { sequence mode } documents { documentType } events(first: 5) { occurredAt classifier }
    } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


@contextmanager
def count_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_a_page_with_timelines_costs_the_same_statements_for_10_or_50_shipments(
    app_state: AppState,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    app_engine: AsyncEngine,
) -> None:
    """Field by field (compiled reads off; tests/api/test_graphql_compiled.py has the compiled path)."""
    small = await committed_tenant(sessions, accounts=2, shipments_per_account=5)
    large = await committed_tenant(sessions, accounts=5, shipments_per_account=10)
    async with client_with(app_state, graphql_compiled_reads=False) as client:
        with count_statements(app_engine) as for_small:
            body = await gql(client, tokens, staff(small), PAGE, {"first": 50})
        assert len(body["data"]["shipments"]["edges"]) == 10
        with count_statements(app_engine) as for_large:
            body = await gql(client, tokens, staff(large), PAGE, {"first": 50})
    edges = body["data"]["shipments"]["edges"]
    assert len(edges) == 50
    assert all(len(edge["node"]["timeline"]) == 5 for edge in edges)
    # one scoped transaction each for: the page, accounts, references, milestones, legs, documents and
    # events (carrier is null here)
    assert len(for_large) == len(for_small) == 14


async def test_pages_follow_each_other_without_overlap(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=5)
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        body = await gql(client, tokens, staff(world), PAGE, {"first": 2, "after": after})
        connection = body["data"]["shipments"]
        seen += [edge["node"]["id"] for edge in connection["edges"]]
        pages += 1
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert pages == 3
    assert sorted(seen) == sorted(to_global_id("Shipment", s.id) for s in world.shipments)
    assert len(set(seen)) == 5


ORDERED = """
query Ordered($after: String, $order: ShipmentOrder!) {
  shipments(first: 2, after: $after, orderBy: $order) {
    edges { node { id promisedDeliveryAt } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def test_promised_delivery_order_pages_soonest_first_and_unpromised_last(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=5)
    other = await committed_tenant(sessions, accounts=1, shipments_per_account=2)
    # promises out of creation order, two shipments with the same promise (the id breaks the tie), one none
    promised = [T0 + dt.timedelta(days=d) for d in (9, 3, 3, 1)]
    for owner, shipments, times in (
        (world, world.shipments[:4], promised),
        (other, other.shipments, [T0, T0]),
    ):
        async with sessions() as session, session.begin():
            await apply_scope(session, owner.scope)
            for shipment, at in zip(shipments, times, strict=True):
                changed = await session.execute(
                    update(Shipment).where(Shipment.id == shipment.id).values(promised_delivery_at=at)
                )
                assert changed.rowcount == 1  # type: ignore[attr-defined]
    seen: list[tuple[str, str | None]] = []
    after = None
    while True:
        body = await gql(
            client, tokens, staff(world), ORDERED, {"after": after, "order": "PROMISED_DELIVERY"}
        )
        connection = body["data"]["shipments"]
        seen += [(e["node"]["id"], e["node"]["promisedDeliveryAt"]) for e in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    ties = sorted([world.shipments[1].id, world.shipments[2].id])
    expected = [world.shipments[3].id, *ties, world.shipments[0].id, world.shipments[4].id]
    assert [node_id for node_id, _ in seen] == [to_global_id("Shipment", i) for i in expected]
    assert seen[-1][1] is None  # the other tenant's earlier promises are not there

    # a cursor belongs to its order
    wrong = await gql(client, tokens, staff(world), ORDERED, {"after": after, "order": "NEWEST"})
    assert wrong["data"] is None
    assert wrong["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "for this order" in wrong["errors"][0]["message"]


async def test_promised_delivery_order_reads_its_index(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=2)
    statement = repository.page_statement(
        world.scope,
        repository.ShipmentFilter(),
        51,
        (T0, world.shipments[0].id),
        repository.ShipmentOrder.PROMISED_DELIVERY,
    )
    async with sessions() as session, session.begin():
        await apply_scope(session, world.scope)
        # only an index in the order can avoid both: without ix_shipment_promised the plan sorts
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        await session.execute(text("SET LOCAL enable_sort = off"))
        compiled = statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
        plan = (await session.execute(text(f"EXPLAIN {compiled}"))).scalars().all()
    assert any("ix_shipment_promised" in line for line in plan), plan
    assert not any("Sort" in line for line in plan), plan


async def test_filters_by_mode_account_and_reference(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=2, shipments_per_account=3)
    viewer = staff(world)

    by_mode = await gql(client, tokens, viewer, PAGE, {"first": 50, "filter": {"mode": ["AIR"]}})
    assert [e["node"]["mode"] for e in by_mode["data"]["shipments"]["edges"]] == ["AIR", "AIR"]

    account_id = to_global_id("Account", world.accounts[1].id)
    by_account = await gql(client, tokens, viewer, PAGE, {"first": 50, "filter": {"accountId": [account_id]}})
    edges = by_account["data"]["shipments"]["edges"]
    assert {e["node"]["account"]["id"] for e in edges} == {account_id}
    assert len(edges) == 3

    reference = f"BK-{world.slug}-1-2"
    by_reference = await gql(client, tokens, viewer, PAGE, {"first": 50, "filter": {"reference": reference}})
    found = by_reference["data"]["shipments"]["edges"]
    assert [e["node"]["id"] for e in found] == [to_global_id("Shipment", world.shipments[5].id)]

    by_status = await gql(client, tokens, viewer, PAGE, {"first": 50, "filter": {"status": ["DELIVERED"]}})
    assert by_status["data"]["shipments"]["edges"] == []


async def test_timeline_reports_plan_and_status_as_of_the_injected_clock(
    app_state: AppState, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    ten_days_in = dataclasses.replace(app_state, clock=lambda: T0 + dt.timedelta(days=10))
    transport = httpx.ASGITransport(app=create_app(ten_days_in))
    client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    query = (
        "query($id: ID!) { shipment(id: $id) { timeline { code sequence plannedAt status plannedSource } } }"
    )
    body = await gql(
        client, tokens, staff(world), query, {"id": to_global_id("Shipment", world.shipments[0].id)}
    )
    timeline = body["data"]["shipment"]["timeline"]
    assert [m["code"] for m in timeline] == ["BOOKED", "GATE_IN_ORIGIN", "DEPARTED", "ARRIVED", "DELIVERED"]
    assert [m["sequence"] for m in timeline] == [1, 2, 3, 4, 5]
    assert timeline[0]["plannedAt"] == "2026-11-01T08:00:00+00:00"
    assert timeline[0]["plannedSource"] == "booking"
    # nothing has happened; ten days in, the first three are overdue and the rest still ahead
    assert [m["status"] for m in timeline] == ["LATE", "LATE", "LATE", "PENDING", "PENDING"]
    await client.aclose()


async def test_another_tenants_shipment_answers_exactly_like_a_missing_one(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    mine = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    theirs = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    import uuid

    foreign = to_global_id("Shipment", theirs.shipments[0].id)
    missing = to_global_id("Shipment", uuid.uuid4())
    query = "query($id: ID!) { shipment(id: $id) { id } node(id: $id) { id } }"
    for_foreign = await gql(client, tokens, staff(mine), query, {"id": foreign})
    for_missing = await gql(client, tokens, staff(mine), query, {"id": missing})
    assert for_foreign == for_missing == {"data": {"shipment": None, "node": None}}
    listed = await gql(client, tokens, staff(mine), PAGE, {"first": 50})
    assert [e["node"]["id"] for e in listed["data"]["shipments"]["edges"]] == [
        to_global_id("Shipment", mine.shipments[0].id)
    ]
    by_their_reference = await gql(
        client, tokens, staff(mine), PAGE, {"first": 50, "filter": {"reference": f"BK-{theirs.slug}-0-0"}}
    )
    assert by_their_reference["data"]["shipments"]["edges"] == []


async def test_a_shipper_sees_only_its_own_account(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=2, shipments_per_account=2)
    body = await gql(client, tokens, shipper(world, 0), PAGE, {"first": 50})
    accounts = {e["node"]["account"]["code"] for e in body["data"]["shipments"]["edges"]}
    assert accounts == {"ACC0"}
    assert len(body["data"]["shipments"]["edges"]) == 2
    other = to_global_id("Shipment", world.shipments[3].id)
    single = await gql(
        client, tokens, shipper(world, 0), "query($id: ID!) { shipment(id: $id) { id } }", {"id": other}
    )
    assert single == {"data": {"shipment": None}}


async def test_viewer_describes_the_caller(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    query = "{ viewer { kind roles scopes tenant { slug } account { code slaTier } } }"
    as_shipper = await gql(client, tokens, shipper(world), query)
    assert as_shipper["data"]["viewer"] == {
        "kind": "user",
        "roles": ["shipper"],
        "scopes": [],
        "tenant": {"slug": world.slug},
        "account": {"code": "ACC0", "slaTier": "GOLD"},
    }
    as_partner = await gql(client, tokens, partner(world, "shipments:read"), query)
    assert as_partner["data"]["viewer"]["kind"] == "api_client"
    assert as_partner["data"]["viewer"]["scopes"] == ["shipments:read"]
    assert as_partner["data"]["viewer"]["account"] is None


async def test_a_partner_needs_the_shipments_read_scope(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    body = await gql(client, tokens, partner(world, "ingest"), "{ shipments(first: 5) { edges { cursor } } }")
    # refused with the document, before anything runs: no `data` entry at all
    assert body == {
        "errors": [
            {
                "message": "this operation needs the 'shipments:read' scope",
                "locations": [{"line": 1, "column": 3}],
                "extensions": {"code": "FORBIDDEN"},
            }
        ]
    }
    allowed = await gql(
        client, tokens, partner(world, "shipments:read"), "{ shipments(first: 5) { edges { cursor } } }"
    )
    assert len(allowed["data"]["shipments"]["edges"]) == 1


async def test_shipment_by_reference_finds_only_the_callers_shipments(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    mine = await committed_tenant(sessions, accounts=1, shipments_per_account=2)
    theirs = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    query = "query($r: String!) { shipmentByReference(reference: $r) { id references { kind value } } }"
    found = await gql(client, tokens, staff(mine), query, {"r": f"BK-{mine.slug}-0-1"})
    assert found["data"]["shipmentByReference"] == {
        "id": to_global_id("Shipment", mine.shipments[1].id),
        "references": [
            {"kind": "BOOKING", "value": f"BK-{mine.slug}-0-1"},
            {"kind": "CONTAINER", "value": "MSKU0000001"},
        ],
    }
    foreign = await gql(client, tokens, staff(mine), query, {"r": f"BK-{theirs.slug}-0-0"})
    assert foreign == {"data": {"shipmentByReference": None}}
    empty = await gql(client, tokens, staff(mine), query, {"r": "  "})
    assert empty["errors"][0]["message"] == "reference: must be 1 to 128 characters"
