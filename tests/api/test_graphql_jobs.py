"""Dead letters and their replay through GraphQL: admins only, one tenant's only."""

from __future__ import annotations

import datetime as dt

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.auth.tokens import TokenService
from api.graphql.relay import to_global_id
from domain.db import scoped_transaction
from domain.jobs.service import REPLAY_TOPIC
from tests.api.graphql_support import gql, partner, shipper, staff
from tests.api.test_graphql_shipments import count_statements
from tests.shipment_factories import committed_tenant
from tests.workers.support import add_dead_letter, outbox_ids

DEAD_LETTERS = """
query($first: Int!, $after: String) {
  deadLetters(first: $first, after: $after) {
    edges { node { id actorName queueName messageId args kwargs attempts error failedAt replayedAt replayMessageId } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
REPLAY = """
mutation($id: ID!) { replayDeadLetter(id: $id) {
  __typename
  ... on ReplayDeadLetterSuccess { deadLetter { id replayedAt replayMessageId } }
  ... on AlreadyReplayedError { message replayedAt replayMessageId }
  ... on NotFoundError { message }
} }
"""
T0 = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


async def test_admins_page_through_their_tenants_dead_letters_only(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    other = await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    letters = [
        await add_dead_letter(sessions, world.scope, ids=[f"s{n}"], failed_at=T0 + dt.timedelta(minutes=n))
        for n in range(3)
    ]
    theirs = await add_dead_letter(sessions, other.scope)
    admin = staff(world, "admin")

    first = await gql(client, tokens, admin, DEAD_LETTERS, {"first": 2})
    page = first["data"]["deadLetters"]
    assert [edge["node"]["id"] for edge in page["edges"]] == [
        to_global_id("DeadLetter", letters[2].id),
        to_global_id("DeadLetter", letters[1].id),
    ]
    assert page["edges"][0]["node"] == {
        "id": to_global_id("DeadLetter", letters[2].id),
        "actorName": "test.not_declared",
        "queueName": "demo",
        "messageId": letters[2].message_id,
        "args": [str(world.scope.tenant_id), ["s2"]],
        "kwargs": {},
        "attempts": 5,
        "error": letters[2].error,
        "failedAt": "2026-11-20T09:02:00+00:00",
        "replayedAt": None,
        "replayMessageId": None,
    }
    rest = await gql(
        client, tokens, admin, DEAD_LETTERS, {"first": 2, "after": page["pageInfo"]["endCursor"]}
    )
    assert [edge["node"]["messageId"] for edge in rest["data"]["deadLetters"]["edges"]] == [
        letters[0].message_id
    ]
    assert rest["data"]["deadLetters"]["pageInfo"]["hasNextPage"] is False

    node = await gql(
        client,
        tokens,
        admin,
        "query($id: ID!) { node(id: $id) { id } }",
        {"id": to_global_id("DeadLetter", theirs.id)},
    )
    assert node == {"data": {"node": None}}


async def test_only_admins_see_or_replay_dead_letters(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    letter = await add_dead_letter(sessions, world.scope)
    for principal in (staff(world, "operations"), shipper(world), partner(world, "shipments:read", "ingest")):
        listed = await gql(client, tokens, principal, DEAD_LETTERS, {"first": 5})
        assert listed["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        replayed = await gql(client, tokens, principal, REPLAY, {"id": to_global_id("DeadLetter", letter.id)})
        assert replayed["errors"][0]["message"] == "this operation needs the admin role"
    async with scoped_transaction(sessions, world.scope) as session:
        assert await outbox_ids(session, world.scope, REPLAY_TOPIC) == []  # nothing was replayed


async def test_a_dead_letter_is_replayed_once_and_another_tenants_is_not_found(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    other = await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    letter = await add_dead_letter(sessions, world.scope)
    theirs = await add_dead_letter(sessions, other.scope)
    admin = staff(world, "admin")
    global_id = to_global_id("DeadLetter", letter.id)

    done = (await gql(client, tokens, admin, REPLAY, {"id": global_id}))["data"]["replayDeadLetter"]
    assert done["__typename"] == "ReplayDeadLetterSuccess"
    replay_message_id = done["deadLetter"]["replayMessageId"]
    again = (await gql(client, tokens, admin, REPLAY, {"id": global_id}))["data"]["replayDeadLetter"]
    assert again == {
        "__typename": "AlreadyReplayedError",
        "message": f"dead letter {global_id} was already replayed",
        "replayedAt": done["deadLetter"]["replayedAt"],
        "replayMessageId": replay_message_id,
    }
    elsewhere = to_global_id("DeadLetter", theirs.id)
    assert (await gql(client, tokens, admin, REPLAY, {"id": elsewhere}))["data"]["replayDeadLetter"] == {
        "__typename": "NotFoundError",
        "message": f"no dead letter {elsewhere}",
    }
    async with scoped_transaction(sessions, world.scope) as session:
        assert len(await outbox_ids(session, world.scope, REPLAY_TOPIC)) == 1
    async with scoped_transaction(sessions, other.scope) as session:
        assert await outbox_ids(session, other.scope, REPLAY_TOPIC) == []
    listed = await gql(client, tokens, admin, DEAD_LETTERS, {"first": 5})
    assert listed["data"]["deadLetters"]["edges"] == []  # replayed ones leave the list


async def test_a_page_of_dead_letters_costs_the_same_statements_for_2_or_20(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    app_engine: AsyncEngine,
) -> None:
    small = await committed_tenant(sessions, accounts=0, shipments_per_account=0)
    large = await committed_tenant(sessions, accounts=0, shipments_per_account=0)
    for world, count in ((small, 2), (large, 20)):
        for _ in range(count):
            await add_dead_letter(sessions, world.scope)
    with count_statements(app_engine) as for_small:
        await gql(client, tokens, staff(small, "admin"), DEAD_LETTERS, {"first": 50})
    with count_statements(app_engine) as for_large:
        body = await gql(client, tokens, staff(large, "admin"), DEAD_LETTERS, {"first": 50})
    assert len(body["data"]["deadLetters"]["edges"]) == 20
    assert len(for_small) == len(for_large) == 2  # the tenant scope, the page
