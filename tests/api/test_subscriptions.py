"""Subscriptions end to end: a live server, outbox rows written by the real services and dispatched for
real, and outside clients (``gql`` over graphql-transport-ws; a bare WebSocket for protocol violations)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import dramatiq
import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.auth.tokens import TokenService
from api.graphql.relay import to_global_id
from domain.db import scoped, scoped_transaction
from domain.exceptions.models import ShipmentException
from domain.tenancy.principal import Principal
from domain.workflow import service as workflow
from milepost.database import Database
from milepost.settings import Settings
from tests.api.graphql_support import partner, shipper, staff
from tests.api.live_support import (
    H,
    LiveServer,
    close_of,
    closed_with,
    dispatch,
    live_server,
    make_late,
    poll,
    raw_socket,
    subscribed,
)
from tests.api.test_graphql_shipments import count_statements
from tests.auth_support import token_service_like
from tests.shipment_factories import T0, committed_tenant
from workers import broker as broker_module
from workers.broker import configure_workers, create_broker

EXCEPTION_EVENTS = """
subscription($filter: ExceptionEventFilter) {
  exceptionEvents(filter: $filter) {
    topic exceptionId
    exception { id type category severity status shipment { id } rule { name } evidence }
  }
}
"""


@pytest.fixture
def process_broker(settings: Settings, database: Database) -> Iterator[dramatiq.Broker]:
    """A fresh in-process broker (no worker runs): the dispatcher sends detection's jobs into it."""
    previous = broker_module.current_broker()
    broker = broker_module.install(create_broker(None))
    configure_workers(settings, database.app_url)
    yield broker
    broker_module.install(previous)


@pytest.fixture(scope="module")
async def server(database: Database, settings: Settings, tokens: TokenService) -> AsyncIterator[LiveServer]:
    async with live_server(database, settings, tokens) as running:
        yield running


def rounds(shipments: list[Any], results: list[dict[str, Any]], *sizes: int) -> list[list[int]]:
    """Which of ``shipments`` (by index) each exception event is about, per dispatch round (within a round
    the order is the service's)."""
    index = {to_global_id("Shipment", shipment.id): n for n, shipment in enumerate(shipments)}
    about = [index[r["exceptionEvents"]["exception"]["shipment"]["id"]] for r in results]
    cuts = [sum(sizes[:n]) for n in range(len(sizes) + 1)]
    return [sorted(about[start:end]) for start, end in itertools.pairwise(cuts)]


async def test_a_tenant_hears_only_its_own_events_and_a_shipper_only_its_accounts(
    server: LiveServer,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    process_broker: dramatiq.Broker,
) -> None:
    mine = await committed_tenant(sessions, accounts=2, shipments_per_account=2)  # shipments 0,1 | 2,3
    theirs = await committed_tenant(sessions, accounts=1, shipments_per_account=2)
    ops, reader = staff(mine), partner(mine, "exceptions:read")
    first, second, their_ops = shipper(mine, 0), shipper(mine, 1), staff(theirs)
    async with (
        subscribed(server.url, tokens.issue(ops), EXCEPTION_EVENTS) as for_ops,
        subscribed(server.url, tokens.issue(reader), EXCEPTION_EVENTS) as for_reader,
        subscribed(server.url, tokens.issue(first), EXCEPTION_EVENTS) as for_first,
        subscribed(server.url, tokens.issue(second), EXCEPTION_EVENTS) as for_second,
        subscribed(server.url, tokens.issue(their_ops), EXCEPTION_EVENTS) as for_theirs,
    ):
        await server.subscribers(5)
        # round 1: an exception (and a timeline change) on each account of both tenants, all dispatched
        await make_late(sessions, mine, 0, 2)
        await make_late(sessions, theirs, 0)
        assert await dispatch(sessions, theirs, mine) == 6
        # round 2, the markers: whatever round 1 leaked would have arrived before them
        await make_late(sessions, mine, 1, 3)
        await make_late(sessions, theirs, 1)
        assert await dispatch(sessions, mine, theirs) == 6

        heard_by_ops = await for_ops.take(4)
        assert rounds(mine.shipments, heard_by_ops, 2, 2) == [[0, 2], [1, 3]]
        assert rounds(mine.shipments, await for_reader.take(4), 2, 2) == [[0, 2], [1, 3]]
        heard_by_first = await for_first.take(2)
        assert rounds(mine.shipments, heard_by_first, 1, 1) == [[0], [1]]
        assert rounds(mine.shipments, await for_second.take(2), 1, 1) == [[2], [3]]
        assert rounds(theirs.shipments, await for_theirs.take(2), 1, 1) == [[0], [1]]

    # the same exception reads as each caller would query it: a shipper gets no rule and no rule internals
    on_first = to_global_id("Shipment", mine.shipments[0].id)
    [staff_view] = [
        r["exceptionEvents"]
        for r in heard_by_ops
        if r["exceptionEvents"]["exception"]["shipment"]["id"] == on_first
    ]
    shipper_view = heard_by_first[0]["exceptionEvents"]
    assert staff_view["topic"] == shipper_view["topic"] == "exception.opened"
    assert staff_view["exceptionId"] == shipper_view["exceptionId"] == staff_view["exception"]["id"]
    assert {k: v for k, v in staff_view["exception"].items() if k not in ("rule", "evidence")} == {
        "id": staff_view["exceptionId"],
        "type": "MILESTONE_LATE",
        "category": "DELAY",
        "severity": "MEDIUM",
        "status": "OPEN",
        "shipment": {"id": to_global_id("Shipment", mine.shipments[0].id)},
    }
    assert staff_view["exception"]["rule"] == {"name": "default"}
    assert shipper_view["exception"]["rule"] is None
    assert shipper_view["exception"]["evidence"] == {
        k: v for k, v in staff_view["exception"]["evidence"].items() if k != "rule"
    }


SHIPMENT_UPDATES = """
subscription($id: ID!) {
  shipmentUpdates(shipmentId: $id) {
    topic exceptionId
    shipment { id timeline { code estimatedAt } }
    exception { type shipment { id } }
  }
}
"""


def update_of(result: dict[str, Any]) -> tuple[str, str, str | None, str | None]:
    """(topic, shipment id, DEPARTED's estimate, exception type) of a shipmentUpdates event."""
    update = result["shipmentUpdates"]
    [departed] = [m for m in update["shipment"]["timeline"] if m["code"] == "DEPARTED"]
    exception = update["exception"]
    if exception is not None:
        assert exception["shipment"]["id"] == update["shipment"]["id"]
        assert update["exceptionId"] is not None
    return update["topic"], update["shipment"]["id"], departed["estimatedAt"], exception and exception["type"]


async def test_a_shipment_subscriber_hears_only_that_shipment(
    server: LiveServer,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    process_broker: dramatiq.Broker,
) -> None:
    mine = await committed_tenant(sessions, accounts=1, shipments_per_account=2)
    theirs = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    watched = to_global_id("Shipment", mine.shipments[0].id)
    # a partner allowed shipments but not exceptions hears the timeline only
    timeline_reader = partner(mine, "shipments:read")
    async with (
        subscribed(server.url, tokens.issue(staff(mine)), SHIPMENT_UPDATES, {"id": watched}) as for_ops,
        subscribed(server.url, tokens.issue(shipper(mine)), SHIPMENT_UPDATES, {"id": watched}) as for_shipper,
        subscribed(
            server.url, tokens.issue(timeline_reader), SHIPMENT_UPDATES, {"id": watched}
        ) as for_partner,
    ):
        await server.subscribers(3)
        await make_late(sessions, mine, 1)  # the other shipment, same tenant and account
        await make_late(sessions, theirs, 0)
        assert await dispatch(sessions, mine, theirs) == 4
        await make_late(sessions, mine, 0)  # the watched one
        assert await dispatch(sessions, mine) == 2
        await make_late(sessions, mine, 0, hours_late=30)  # again, later still
        assert await dispatch(sessions, mine) == 2

        first_estimate, second_estimate = "2026-11-06T08:00:00+00:00", "2026-11-06T14:00:00+00:00"
        expected = [
            ("shipment.timeline_changed", watched, first_estimate, None),
            ("exception.opened", watched, first_estimate, "MILESTONE_LATE"),
            ("shipment.timeline_changed", watched, second_estimate, None),
            ("exception.updated", watched, second_estimate, "MILESTONE_LATE"),
        ]
        assert [update_of(r) for r in await for_ops.take(4)] == expected
        assert [update_of(r) for r in await for_shipper.take(4)] == expected
        assert [update_of(r) for r in await for_partner.take(2)] == [expected[0], expected[2]]


async def test_subscribing_to_a_shipment_you_cannot_see_fails_like_a_missing_one(
    server: LiveServer, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    mine = await committed_tenant(sessions, accounts=2, shipments_per_account=1)
    theirs = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    missing = to_global_id("Shipment", uuid.uuid4())

    async def refusal(principal: Principal, shipment_id: str) -> dict[str, Any]:
        async with subscribed(
            server.url, tokens.issue(principal), SHIPMENT_UPDATES, {"id": shipment_id}
        ) as s:
            error = await s.ending()
        assert isinstance(error, TransportQueryError), error
        assert error.errors is not None
        [only] = error.errors
        return {**only, "message": only["message"].replace(shipment_id, "<id>")}

    not_found = {
        "message": "shipmentId: no shipment <id>",
        "locations": [{"line": 2, "column": 3}],
        "path": ["shipmentUpdates"],
        "extensions": {"code": "NOT_FOUND"},
    }
    theirs_id = to_global_id("Shipment", theirs.shipments[0].id)
    other_account = to_global_id("Shipment", mine.shipments[1].id)
    assert await refusal(staff(mine), missing) == not_found
    assert await refusal(staff(mine), theirs_id) == not_found
    assert await refusal(shipper(mine, 0), other_account) == not_found
    assert await refusal(staff(mine), "not-an-id") == {
        **not_found,
        "message": "shipmentId: '<id>' is not an id issued by this API",
        "extensions": {"code": "BAD_USER_INPUT", "argument": "shipmentId"},
    }
    account_id = to_global_id("Account", mine.accounts[0].id)
    assert (await refusal(staff(mine), account_id))["extensions"] == {
        "code": "BAD_USER_INPUT",
        "argument": "shipmentId",
    }
    forbidden = await refusal(partner(mine, "ingest"), to_global_id("Shipment", mine.shipments[0].id))
    assert forbidden["message"] == "this operation needs the 'shipments:read' scope"
    assert forbidden["extensions"] == {"code": "FORBIDDEN"}
    await server.subscribers(0)


async def test_exception_events_filter_by_topic_type_severity_category_and_shipment(
    server: LiveServer,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    process_broker: dramatiq.Broker,
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=2)
    second = to_global_id("Shipment", world.shipments[1].id)
    token = tokens.issue(staff(world))
    filters: dict[str, dict[str, Any]] = {
        "updates of the second": {"topic": ["exception.updated"], "shipmentId": second},
        "late delays": {"type": ["MILESTONE_LATE"], "category": ["DELAY"], "severity": ["MEDIUM"]},
        "customs": {"category": ["CUSTOMS"]},
        "critical": {"severity": ["CRITICAL"]},
    }
    async with contextlib.AsyncExitStack() as stack:
        subscriptions = {
            name: await stack.enter_async_context(
                subscribed(server.url, token, EXCEPTION_EVENTS, {"filter": value})
            )
            for name, value in filters.items()
        }
        everything = await stack.enter_async_context(subscribed(server.url, token, EXCEPTION_EVENTS))
        await server.subscribers(5)
        await make_late(sessions, world, 0, 1)
        assert await dispatch(sessions, world) == 4
        await make_late(sessions, world, 1, hours_late=30)
        assert await dispatch(sessions, world) == 2

        def seen(results: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
            return sorted(
                (
                    r["exceptionEvents"]["topic"],
                    r["exceptionEvents"]["exception"]["shipment"]["id"],
                    r["exceptionEvents"]["exception"]["severity"],
                )
                for r in results
            )

        first = to_global_id("Shipment", world.shipments[0].id)
        all_three = seen(await everything.take(3))
        assert all_three == sorted(
            [
                ("exception.opened", first, "MEDIUM"),
                ("exception.opened", second, "MEDIUM"),
                ("exception.updated", second, "MEDIUM"),
            ]
        )
        assert seen(await subscriptions["updates of the second"].take(1)) == [all_three[2]]
        assert seen(await subscriptions["late delays"].take(3)) == all_three
        # nothing for the others: the hub offers a batch to every subscriber at once, so what it had offered
        # them would have arrived with the rest
        await asyncio.sleep(0.5)
        assert subscriptions["customs"].results.empty()
        assert subscriptions["critical"].results.empty()


async def test_a_filter_naming_an_unknown_topic_or_a_wrong_id_is_refused(
    server: LiveServer, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    token = tokens.issue(staff(world))

    async def refusal(value: dict[str, Any]) -> dict[str, Any]:
        async with subscribed(server.url, token, EXCEPTION_EVENTS, {"filter": value}) as subscription:
            error = await subscription.ending()
        assert isinstance(error, TransportQueryError), error
        assert error.errors is not None
        [only] = error.errors
        return {"message": only["message"], "extensions": only["extensions"]}

    assert await refusal({"topic": ["exception.opened", "exception.opend"]}) == {
        "message": "filter.topic[1]: 'exception.opend' is not an exception topic (one of exception.opened, "
        "exception.updated, exception.reopened, exception.auto_resolved, exception.acknowledged, "
        "exception.assigned, exception.status_changed, exception.commented, exception.resolved, "
        "exception.escalated, exception.customer_notice)",
        "extensions": {"code": "BAD_USER_INPUT", "argument": "filter"},
    }
    account_id = to_global_id("Account", world.accounts[0].id)
    assert await refusal({"shipmentId": account_id}) == {
        "message": f"filter.shipmentId: {account_id!r} is not a Shipment id",
        "extensions": {"code": "BAD_USER_INPUT", "argument": "filter"},
    }
    finance = tokens.issue(staff(world, "finance"))
    async with subscribed(server.url, finance, EXCEPTION_EVENTS) as subscription:
        error = await subscription.ending()
    assert isinstance(error, TransportQueryError)
    assert error.errors is not None
    assert [e["extensions"] for e in error.errors] == [{"code": "FORBIDDEN"}]
    await server.subscribers(0)


INIT_TIMEOUT_SECONDS = 1.0  # live_server's MILEPOST_WS_INIT_TIMEOUT_SECONDS


async def test_protocol_violations_close_the_connection_with_the_protocols_codes(
    server: LiveServer, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {tokens.issue(staff(world))}"}}
    subscribe = {
        "id": "1",
        "type": "subscribe",
        "payload": {"query": "subscription { exceptionEvents { topic } }"},
    }
    cases: list[tuple[str, list[Any], tuple[int, str]]] = [
        ("unknown message type", [init, {"type": "hello"}], (4400, "Unknown message type: hello")),
        ("not JSON", ["{nope"], (4400, "WebSocket message must be valid JSON")),
        ("a message without a type", [{"id": "1"}], (4400, "Failed to parse message")),
        (
            "a subscribe without a query",
            [init, {"id": "1", "type": "subscribe"}],
            (4400, "Failed to parse message"),
        ),
        (
            "a payload that is not an object",
            [{"type": "connection_init", "payload": "x"}],
            (4400, "Invalid connection init payload"),
        ),
        ("subscribe before connection_init", [subscribe], (4401, "Unauthorized")),
        ("the same id twice", [init, subscribe, subscribe], (4409, "Subscriber for 1 already exists")),
        ("connection_init twice", [init, init], (4429, "Too many initialisation requests")),
        ("no token", [{"type": "connection_init", "payload": {}}], (4403, "Forbidden")),
        ("no payload", [{"type": "connection_init"}], (4403, "Forbidden")),
        (
            "a bad token",
            [{"type": "connection_init", "payload": {"token": "abc.def.ghi"}}],
            (4403, "Forbidden"),
        ),
        (
            "another scheme",
            [{"type": "connection_init", "payload": {"Authorization": "Basic dXNlcg=="}}],
            (4403, "Forbidden"),
        ),
    ]
    closes = {}
    for name, messages, _ in cases:
        async with raw_socket(server.url) as socket_:
            closes[name] = await closed_with(socket_, *messages)
    assert closes == {name: expected for name, _, expected in cases}
    # silence after connecting: closed once the init timeout has passed, not before
    async with raw_socket(server.url) as socket_:
        started = time.monotonic()
        assert await closed_with(socket_) == (4408, "Connection initialisation timeout")
        assert time.monotonic() - started >= INIT_TIMEOUT_SECONDS - 0.05
    # the legacy subscriptions-transport-ws protocol is refused
    async with raw_socket(server.url, "graphql-ws") as socket_:
        assert socket_.subprotocol is None
        assert await closed_with(socket_) == (4406, "Subprotocol not acceptable")
    await server.subscribers(0)


async def test_a_token_in_either_accepted_form_subscribes(
    server: LiveServer, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    token = tokens.issue(staff(world))
    for payload in (
        {"token": token},
        {"authorization": f"bearer {token}"},
        {"Authorization": f"Bearer {token}"},
    ):
        async with raw_socket(server.url) as socket_:
            await socket_.send(json.dumps({"type": "connection_init", "payload": payload}))
            assert json.loads(await socket_.recv()) == {"type": "connection_ack"}
            await socket_.send(json.dumps({"type": "ping"}))
            assert json.loads(await socket_.recv()) == {"type": "pong"}


async def test_a_revoked_token_or_client_ends_the_subscription_at_once(
    server: LiveServer, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    by_token, by_client, bystander = (partner(world, "exceptions:read") for _ in range(3))
    token = tokens.issue(by_token)
    async with (
        subscribed(server.url, token, EXCEPTION_EVENTS) as first,
        subscribed(server.url, tokens.issue(by_client), EXCEPTION_EVENTS) as second,
        subscribed(server.url, tokens.issue(bystander), EXCEPTION_EVENTS) as third,
    ):
        await server.subscribers(3)
        # what the credentials watch does when a revocation's NOTIFY arrives (or the request revoking it)
        tokens.revoked_token(tokens.decode(token).jti)
        assert close_of(await first.ending(seconds=5)) == (4403, "Forbidden")
        tokens.revoked_client(by_client.subject_id)
        assert close_of(await second.ending(seconds=5)) == (4403, "Forbidden")
        await server.subscribers(1)
        assert third.results.empty()
    await server.subscribers(0)
    # and the token cannot open a new connection
    async with raw_socket(server.url) as socket_:
        init = {"type": "connection_init", "payload": {"token": token}}
        assert await closed_with(socket_, init) == (4403, "Forbidden")


async def test_an_expired_token_ends_the_subscription_when_it_expires(
    server: LiveServer, settings: Settings, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    token = tokens.issue(staff(world), ttl_seconds=2)
    _, expires_in = tokens.verify_with_expiry(token)
    expires_at = time.monotonic() + expires_in
    async with subscribed(server.url, token, EXCEPTION_EVENTS) as subscription:
        await server.subscribers(1)
        error = await subscription.ending(seconds=10)
        assert time.monotonic() >= expires_at - 0.05  # not before
        assert close_of(error) == (4403, "Forbidden")
    await server.subscribers(0)
    # a token that has already expired is refused at connection_init
    expired = token_service_like(tokens, ttl_seconds=60, clock=lambda: time.time() - 3600)
    async with raw_socket(server.url) as socket_:
        init = {"type": "connection_init", "payload": {"token": expired.issue(staff(world))}}
        assert await closed_with(socket_, init) == (4403, "Forbidden")


async def test_a_subscriber_that_falls_behind_is_dropped_with_a_close_code(
    database: Database,
    settings: Settings,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    process_broker: dramatiq.Broker,
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=2)
    async with live_server(database, settings, tokens, subscription_queue_size=1) as small:
        async with subscribed(small.url, tokens.issue(staff(world)), EXCEPTION_EVENTS) as subscription:
            await small.subscribers(1)
            # one batch with two exception events for a queue of one: the hub offers both at once
            await make_late(sessions, world, 0, 1)
            assert await dispatch(sessions, world) == 4
            ending = await subscription.results.get()
            if isinstance(ending, dict):  # the one event that fitted may have gone out before the close
                ending = await subscription.results.get()
            assert isinstance(ending, BaseException)
            assert close_of(ending) == (
                1013,
                "Too many undelivered events: read the current state and subscribe again",
            )
        await small.subscribers(0)


async def test_a_lost_listen_connection_interrupts_subscriptions_then_listening_resumes(
    database: Database,
    settings: Settings,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    owner_engine: AsyncEngine,
    process_broker: dramatiq.Broker,
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=2)
    token = tokens.issue(staff(world))
    async with live_server(database, settings, tokens) as server:
        async with subscribed(server.url, token, EXCEPTION_EVENTS) as subscription:
            await server.subscribers(1)
            lost_pid = server.hub.server_pid
            async with owner_engine.connect() as connection:
                await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": lost_pid})
            error = await subscription.ending()
            assert isinstance(error, TransportQueryError), error
            assert error.errors == [
                {
                    "message": "live events were interrupted (the database connection dropped); some may be "
                    "lost: read the current state and subscribe again",
                    "extensions": {"code": "EVENTS_INTERRUPTED"},
                }
            ]
        await server.subscribers(0)
        await poll(lambda: server.hub.listening and server.hub.server_pid != lost_pid, "listening again")
        async with subscribed(server.url, token, EXCEPTION_EVENTS) as again:
            await server.subscribers(1)
            await make_late(sessions, world, 0)
            assert await dispatch(sessions, world) == 2
            [event] = await again.take(1)
            assert event["exceptionEvents"]["topic"] == "exception.opened"


async def test_subscribing_while_the_hub_cannot_listen_answers_unavailable(
    database: Database, settings: Settings, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    async with live_server(
        database, settings, tokens, database_port=1
    ) as unreachable:  # nothing listens on 1
        assert not unreachable.hub.listening
        async with subscribed(unreachable.url, tokens.issue(staff(world)), EXCEPTION_EVENTS) as subscription:
            error = await subscription.ending()
    assert isinstance(error, TransportQueryError)
    assert error.errors is not None
    assert [(e["message"], e["extensions"]) for e in error.errors] == [
        (
            "live events are unavailable right now (the database connection is being re-established); "
            "subscribe again shortly",
            {"code": "UNAVAILABLE"},
        )
    ]


NESTED = """
subscription {
  exceptionEvents {
    topic
    exception { id type shipment { id status timeline { code status } } activities { kind note } }
  }
}
"""


async def test_the_statements_per_batch_do_not_grow_with_the_subscribers(
    server: LiveServer,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    process_broker: dramatiq.Broker,
) -> None:
    counts = {}
    for per_kind in (1, 4):
        world = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
        quiet = await committed_tenant(sessions, accounts=1, shipments_per_account=1)  # nobody listens
        async with contextlib.AsyncExitStack() as stack:
            subscriptions = [
                await stack.enter_async_context(subscribed(server.url, tokens.issue(principal), NESTED))
                for principal in [staff(world) for _ in range(per_kind)]
                + [shipper(world) for _ in range(per_kind)]
            ]
            await server.subscribers(2 * per_kind)
            await make_late(sessions, world, 0)
            await make_late(sessions, quiet, 0)
            with count_statements(server.engine) as statements:
                # the quiet tenant's batch is announced first, and costs the server nothing
                assert await dispatch(sessions, quiet, world) == 4  # the test's own engine: not counted
                events = [await subscription.take(1) for subscription in subscriptions]
            assert {e[0]["exceptionEvents"]["exception"]["type"] for e in events} == {"MILESTONE_LATE"}
            notes = [e[0]["exceptionEvents"]["exception"]["activities"][0]["note"] for e in events]
            assert notes[per_kind:] == [None] * per_kind  # shippers: no internal notes
            assert all(note for note in notes[:per_kind])
            counts[per_kind] = len(statements)
    # one transaction reads the batch (scope, outbox rows, exceptions, shipments: 4 statements), then per
    # scope (the staff's, the shippers' account) one transaction each for milestones and activities (2 + 2)
    assert counts == {1: 12, 4: 12}


async def test_queries_also_run_over_the_socket_each_with_its_own_context(
    server: LiveServer, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    transport = WebsocketsTransport(
        url=server.url,
        init_payload={"token": tokens.issue(shipper(world))},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    viewer = GraphQLRequest("{ viewer { kind roles tenant { slug } account { code } } }")
    async with Client(transport=transport) as session:
        assert await session.execute(viewer) == {
            "viewer": {
                "kind": "user",
                "roles": ["shipper"],
                "tenant": {"slug": world.slug},
                "account": {"code": "ACC0"},
            }
        }
        shipment = GraphQLRequest(
            "query($id: ID!) { shipment(id: $id) { id } }",
            variable_values={"id": to_global_id("Shipment", world.shipments[0].id)},
        )
        assert await session.execute(shipment) == {
            "shipment": {"id": to_global_id("Shipment", world.shipments[0].id)}
        }


async def test_a_stray_or_forged_notification_delivers_nothing_it_should_not(
    server: LiveServer,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    owner_engine: AsyncEngine,
    process_broker: dramatiq.Broker,
) -> None:
    mine = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    theirs = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    await make_late(sessions, theirs, 0)
    assert await dispatch(sessions, theirs) == 2
    async with owner_engine.connect() as connection:
        their_ids = list(
            (
                await connection.execute(
                    text("SELECT id FROM outbox WHERE tenant_id = :tenant ORDER BY id"),
                    {"tenant": theirs.scope.tenant_id},
                )
            ).scalars()
        )
    assert len(their_ids) == 2
    async with subscribed(server.url, tokens.issue(staff(mine)), EXCEPTION_EVENTS) as subscription:
        await server.subscribers(1)
        forged = json.dumps(
            {"tenant_id": str(mine.scope.tenant_id), "topics": {"exception.opened": their_ids}}
        )
        async with owner_engine.connect() as connection:
            for payload in ("not json", '{"tenant_id": "x"}', forged):
                await connection.execute(text("SELECT pg_notify('milepost_changes', :p)"), {"p": payload})
            await connection.commit()
        # the hub reads ids in the named tenant's scope: their rows are not mine, so nothing comes; and it
        # is still alive for the next real batch
        await make_late(sessions, mine, 0)
        assert await dispatch(sessions, mine) == 2
        [event] = await subscription.take(1)
        shipment = to_global_id("Shipment", mine.shipments[0].id)
        assert event["exceptionEvents"]["exception"]["shipment"]["id"] == shipment


async def test_workflow_changes_reach_subscribers_and_internal_comments_stay_with_the_staff(
    server: LiveServer,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    process_broker: dramatiq.Broker,
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    query = (
        "subscription { exceptionEvents { topic exceptionId exception { status activities { kind note } } } }"
    )
    async with (
        subscribed(server.url, tokens.issue(staff(world)), query) as for_ops,
        subscribed(server.url, tokens.issue(shipper(world)), query) as for_shipper,
    ):
        await server.subscribers(2)
        await make_late(sessions, world, 0)
        assert await dispatch(sessions, world) == 2
        async with scoped_transaction(sessions, world.scope) as session:
            [exception_id] = (
                await session.execute(scoped(select(ShipmentException.id), ShipmentException, world.scope))
            ).scalars()
        ops = workflow.Actor("user", None)
        steps = [
            lambda s: workflow.acknowledge(s, world.scope, exception_id, ops, now=T0 + 2 * H),
            lambda s: workflow.comment(
                s, world.scope, exception_id, ops, now=T0 + 3 * H, body="carrier asked"
            ),
            lambda s: workflow.comment(
                s, world.scope, exception_id, ops, now=T0 + 4 * H, body="a day late", customer_visible=True
            ),
        ]
        for step in steps:  # each in its own transaction and batch, as people act
            async with scoped_transaction(sessions, world.scope) as session:
                await step(session)
            assert await dispatch(sessions, world) == 1

        def heard(results: list[dict[str, Any]]) -> list[tuple[str, str, list[str | None]]]:
            return [
                (
                    r["exceptionEvents"]["topic"],
                    r["exceptionEvents"]["exception"]["status"],
                    [
                        a["note"]
                        for a in r["exceptionEvents"]["exception"]["activities"]
                        if a["kind"] == "comment"
                    ],
                )
                for r in results
            ]

        # an event shows the exception as it is when delivered: only the last one's state is certain
        staff_heard = heard(await for_ops.take(4))
        shipper_heard = heard(await for_shipper.take(3))
    assert [topic for topic, _, _ in staff_heard] == [
        "exception.opened",
        "exception.acknowledged",
        "exception.commented",
        "exception.commented",
    ]
    assert staff_heard[-1][1:] == ("ACKNOWLEDGED", ["carrier asked", "a day late"])
    assert [topic for topic, _, _ in shipper_heard] == [
        "exception.opened",
        "exception.acknowledged",
        "exception.commented",
    ]
    assert shipper_heard[-1][1:] == ("ACKNOWLEDGED", ["a day late"])
