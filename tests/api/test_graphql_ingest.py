"""Ingest messages, replays and code mappings through GraphQL."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.tokens import TokenService
from api.graphql.relay import to_global_id
from tests.api.graphql_support import gql, partner, shipper, staff
from tests.api.test_ingest import CANADA_POST, add_shipment, bearer, post, timeline, with_clients
from tests.shipment_factories import committed_tenant

MESSAGES = """
query($first: Int!, $status: [IngestStatus!]) {
  ingestMessages(first: $first, status: $status) {
    edges { node { id format status eventCount acceptedCount parkedCount duplicateCount rejectedCount attempts
                   issues { code } results(first: 2) { position outcome signals } acknowledgment } }
    pageInfo { hasNextPage }
  }
}
"""
REPLAY = """
mutation($id: ID!) { replayIngestMessage(id: $id) {
  __typename
  ... on ReplayIngestMessageSuccess { ingestMessage { attempts acceptedCount duplicateCount } }
  ... on NotFoundError { message }
} }
"""
UPSERT = """
mutation($input: CodeMappingInput!) { upsertCodeMapping(input: $input) {
  __typename
  ... on UpsertCodeMappingSuccess { mapping { system code milestone rawOnly } }
  ... on InvalidInputError { field message }
} }
"""


async def test_the_mapping_fix_and_replay_story_through_graphql(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await with_clients(
        sessions, await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    )
    other = await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    ops = staff(world, "operations")
    shipment_id = await add_shipment(
        sessions, world, [("tracking_number", "4343638097845589")], mode="parcel"
    )
    ignore = await gql(
        client, tokens, ops, UPSERT, {"input": {"system": "x12.status", "code": "XB", "rawOnly": True}}
    )
    assert ignore["data"]["upsertCodeMapping"]["__typename"] == "UpsertCodeMappingSuccess"
    await post(client, "x12", CANADA_POST, bearer(tokens, world))

    listed = await gql(client, tokens, ops, MESSAGES, {"first": 10})
    [edge] = listed["data"]["ingestMessages"]["edges"]
    node = edge["node"]
    assert (
        node["format"],
        node["status"],
        node["eventCount"],
        node["acceptedCount"],
        node["parkedCount"],
    ) == (
        "x12",
        "ACCEPTED",
        19,
        1,
        18,
    )
    assert node["acknowledgment"].startswith("ISA*")
    assert await gql(client, tokens, staff(other), MESSAGES, {"first": 10}) == {
        "data": {"ingestMessages": {"edges": [], "pageInfo": {"hasNextPage": False}}}
    }

    fix = await gql(
        client, tokens, ops, UPSERT, {"input": {"system": "x12.status", "code": "XB", "milestone": "BOOKED"}}
    )
    assert fix["data"]["upsertCodeMapping"]["mapping"] == {
        "system": "x12.status",
        "code": "XB",
        "milestone": "BOOKED",
        "rawOnly": False,
    }
    replayed = await gql(client, tokens, ops, REPLAY, {"id": node["id"]})
    assert replayed["data"]["replayIngestMessage"] == {
        "__typename": "ReplayIngestMessageSuccess",
        "ingestMessage": {"attempts": 2, "acceptedCount": 6, "duplicateCount": 13},
    }
    booked = next(r for r in await timeline(sessions, world.scope, shipment_id) if r[0] == "BOOKED")
    assert booked[4] == "x12"

    # another tenant's message id answers like a missing one
    theirs = await gql(client, tokens, staff(other), REPLAY, {"id": node["id"]})
    assert theirs["data"]["replayIngestMessage"]["__typename"] == "NotFoundError"
    assert await gql(
        client, tokens, staff(other), "query($id: ID!) { node(id: $id) { id } }", {"id": node["id"]}
    ) == {"data": {"node": None}}


async def test_bad_mappings_are_typed_errors_and_permissions_hold(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    bad = await gql(
        client,
        tokens,
        staff(world),
        UPSERT,
        {"input": {"system": "x12.status", "code": "XB", "milestone": "TELEPORTED"}},
    )
    assert bad["data"]["upsertCodeMapping"] == {
        "__typename": "InvalidInputError",
        "field": "input",
        "message": "x12.status:XB: milestone 'TELEPORTED' is not a canonical milestone",
    }
    empty = await gql(client, tokens, staff(world), UPSERT, {"input": {"system": "x12.status", "code": "XB"}})
    assert empty["data"]["upsertCodeMapping"]["message"].endswith(
        "a row needs a milestone, a signal or raw_only=yes"
    )
    for principal in (shipper(world), staff(world, "finance"), partner(world, "shipments:read")):
        denied = await gql(client, tokens, principal, MESSAGES, {"first": 5})
        assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    missing = await gql(
        client, tokens, staff(world), REPLAY, {"id": to_global_id("IngestMessage", world.scope.tenant_id)}
    )
    assert missing["data"]["replayIngestMessage"]["__typename"] == "NotFoundError"
