"""A live API server in the test's event loop (uvicorn on a free port, its own engine) and outside clients:
``gql`` over graphql-transport-ws, and a bare WebSocket for what ``gql`` would never send."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import uvicorn
import websockets
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from api.app import create_app
from api.auth.tokens import TokenService
from api.live import LiveHub
from api.state import AppState
from domain.db import scoped_transaction
from domain.exceptions import service
from domain.tracking.service import NewEvent, record_events
from milepost.database import Database, head_revision
from milepost.settings import Settings
from tests.shipment_factories import T0, TenantWorld
from workers.dispatcher import Dispatcher

T = TypeVar("T")
H = dt.timedelta(hours=1)
SUBPROTOCOL = "graphql-transport-ws"


@dataclass
class LiveServer:
    url: str
    hub: LiveHub
    engine: AsyncEngine

    async def subscribers(self, count: int) -> None:
        """Wait until the hub has ``count`` subscribers (a subscription is registered on its server's own
        time, after the client sent it)."""
        await poll(lambda: self.hub.subscriber_count() == count, f"{count} subscribers")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def live_server(
    database: Database,
    settings: Settings,
    tokens: TokenService,
    *,
    database_port: int | None = None,
    **overrides: Any,
) -> AsyncIterator[LiveServer]:
    """The real app under uvicorn (lifespan on, so its hub listens), with its own engine so a test can
    count the statements the server alone makes. ``database_port`` points it at a port where no database
    answers (its hub then never listens)."""
    url = database.app_url if database_port is None else database.app_url.set(port=database_port)
    engine = create_async_engine(url, pool_size=5, max_overflow=5)
    state = AppState(
        settings=settings.model_copy(update={"ws_init_timeout_seconds": 1.0, **overrides}),
        engine=engine,
        sessions=async_sessionmaker(engine, expire_on_commit=False),
        tokens=tokens,
        expected_revision=head_revision(),
    )
    app = create_app(state)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on", access_log=False)
    )
    serving = asyncio.create_task(server.serve())
    hub: LiveHub = app.state.live
    try:
        reachable = database_port is None
        await poll(lambda: server.started and (hub.listening or not reachable), "the server to listen")
        yield LiveServer(f"ws://127.0.0.1:{port}/graphql", hub, engine)
    finally:
        server.should_exit = True
        await serving
        await engine.dispose()


async def poll(check: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds} s for {what}")
        await asyncio.sleep(0.02)


class Subscribed:
    """One ``gql`` client (its own WebSocket) subscribed in the background; results queue up in order."""

    def __init__(self, url: str, token: str, query: str, variables: dict[str, Any] | None = None) -> None:
        transport = WebsocketsTransport(
            url=url, init_payload={"Authorization": f"Bearer {token}"}, subprotocols=[SUBPROTOCOL]
        )
        self.client = Client(transport=transport)
        self.request = GraphQLRequest(query, variable_values=variables)
        self.results: asyncio.Queue[dict[str, Any] | BaseException | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Subscribed:
        session = await self.client.connect_async()

        async def consume() -> None:
            try:
                async for result in session.subscribe(self.request):
                    self.results.put_nowait(result)
                self.results.put_nowait(None)  # completed
            except Exception as error:
                self.results.put_nowait(error)

        self._task = asyncio.create_task(consume())
        return self

    async def next(self, seconds: float = 20) -> dict[str, Any]:
        item = await asyncio.wait_for(self.results.get(), timeout=seconds)
        if isinstance(item, BaseException):
            raise item
        assert item is not None, "the subscription completed"
        return item

    async def take(self, count: int, seconds: float = 20) -> list[dict[str, Any]]:
        return [await self.next(seconds) for _ in range(count)]

    async def ending(self, seconds: float = 20) -> BaseException | None:
        """What ended the subscription: an error, or None when it completed."""
        item = await asyncio.wait_for(self.results.get(), timeout=seconds)
        assert not isinstance(item, dict), f"an event instead of the end: {item}"
        return item

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.client.close_async()


@asynccontextmanager
async def subscribed(
    url: str, token: str, query: str, variables: dict[str, Any] | None = None
) -> AsyncIterator[Subscribed]:
    subscription = await Subscribed(url, token, query, variables).start()
    try:
        yield subscription
    finally:
        await subscription.close()


def close_of(error: BaseException) -> tuple[int, str]:
    """The WebSocket close code and reason behind a ``gql`` transport error."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, websockets.ConnectionClosed) and cause.rcvd is not None:
            return cause.rcvd.code, cause.rcvd.reason
        cause = cause.__cause__ or cause.__context__
    raise AssertionError(f"not a closed connection: {error!r}")


@asynccontextmanager
async def raw_socket(url: str, subprotocol: str = SUBPROTOCOL) -> AsyncIterator[Any]:
    """A bare WebSocket, for messages ``gql`` would never send."""
    async with websockets.connect(url, subprotocols=[subprotocol]) as socket_:
        yield socket_


async def closed_with(socket_: Any, *messages: dict[str, Any] | str, seconds: float = 10) -> tuple[int, str]:
    """Send ``messages`` (objects as JSON) and read until the server closes; its code and reason."""
    for message in messages:
        await socket_.send(message if isinstance(message, str) else json.dumps(message))
    try:
        while True:
            await asyncio.wait_for(socket_.recv(), timeout=seconds)
    except websockets.ConnectionClosed as closed:
        return close_of(closed)


def late_departure(world: TenantWorld, index: int, hours_late: int = 24) -> tuple[int, list[NewEvent]]:
    """A carrier estimate putting shipment ``index``'s departure ``hours_late`` after its plan."""
    per_account = len(world.shipments) // len(world.accounts)
    planned = T0 + dt.timedelta(days=index % per_account + 4)
    event = NewEvent(
        source="carrier",
        classifier="EST",
        milestone_code="DEPARTED",
        occurred_at=planned + hours_late * H,
        location_locode="CNSHA",
    )
    return index, [event]


async def make_late(
    sessions: async_sessionmaker[AsyncSession], world: TenantWorld, *indexes: int, hours_late: int = 24
) -> None:
    """Record late departures for these shipments and run detection on them, committed: a timeline change
    and an ``exception.opened`` (or ``updated``) outbox row each, written by the real services."""
    async with scoped_transaction(sessions, world.scope) as session:
        for index in indexes:
            _, events = late_departure(world, index, hours_late)
            await record_events(session, world.scope, world.shipments[index].id, events, now=T0 + H)
        ids = [world.shipments[index].id for index in indexes]
        await service.evaluate_shipments(session, world.scope, ids, now=T0 + H)


async def dispatch(sessions: async_sessionmaker[AsyncSession], *worlds: TenantWorld) -> int:
    """Dispatch these tenants' outbox rows for real (in this order), as the background loop does."""
    tenants = [world.scope.tenant_id for world in worlds]

    async def only() -> list[Any]:
        return tenants

    return await Dispatcher(sessions, tenant_ids=only).dispatch_all()


async def eventually(check: Callable[[], Awaitable[T | None]], what: str, seconds: float = 20) -> T:
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds} s for {what}")
        await asyncio.sleep(0.05)
