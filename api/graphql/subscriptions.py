"""Subscriptions over graphql-transport-ws: ``exceptionEvents`` and ``shipmentUpdates``.

Events come from the process's :class:`api.live.LiveHub`. Who may subscribe is the access map's
(``api/graphql/access.py``), checked with the document before the subscription starts; each event
resolves through the normal ``ShipmentException`` and ``Shipment`` types, so what a shipper sees of an
event is what it would see by querying.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import TypeVar

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from api.graphql.access import EXCEPTION_READ, allowed
from api.graphql.context import Context, Loaders
from api.graphql.exceptions.types import (
    ExceptionCategory,
    ExceptionType,
    Severity,
    ShipmentException,
    exception_node,
)
from api.graphql.relay import UserInputError, expect_global_id, to_global_id
from api.graphql.shipments.types import Shipment, shipment_node
from api.live import Change, Delivery, Interest, Interrupted, LiveConnection, LiveUnavailable
from domain.workflow import topics

Info = strawberry.Info[Context, None]
Event = TypeVar("Event")


class LiveOperations(SchemaExtension):
    """strawberry shares one context per WebSocket connection; here each operation on it gets a context of
    its own (its own loaders, its own clock reading), built from the connection's principal."""

    def on_operation(self) -> Iterator[None]:
        connection = self.execution_context.context
        if isinstance(connection, LiveConnection):
            assert connection.principal is not None  # no operation runs before connection_ack
            state = connection.state
            self.execution_context.context = Context(
                principal=connection.principal,
                state=state,
                loaders=Loaders(state.sessions, connection.principal.scope),
                request_id=connection.request_id,
                now=state.clock(),
                live=connection,
            )
        yield


@strawberry.type(description="A change to an exception, announced when it was committed.")
class ExceptionEvent:
    change: strawberry.Private[Change]

    @strawberry.field(
        description="What happened: `exception.opened`, `exception.updated`, `exception.reopened`, "
        "`exception.auto_resolved`, and the workflow's `exception.acknowledged`, `exception.assigned`, ... "
        "(docs/api.md lists them; new ones may appear)."
    )
    def topic(self) -> str:
        return self.change.topic

    @strawberry.field(description="When the change was recorded.")
    def at(self) -> dt.datetime:
        return self.change.at

    @strawberry.field(description="The exception's global id.")
    def exception_id(self) -> strawberry.ID:
        assert self.change.exception_id is not None
        return to_global_id("ShipmentException", self.change.exception_id)

    @strawberry.field(description="The exception as it is now; null if it no longer exists for you.")
    async def exception(self, info: Info) -> ShipmentException | None:
        return await _exception(info, self.change)


@strawberry.type(description="A change to one shipment: its timeline, or one of its exceptions.")
class ShipmentUpdate:
    change: strawberry.Private[Change]

    @strawberry.field(
        description="`shipment.timeline_changed`, or an exception topic such as `exception.opened` "
        "(see `ExceptionEvent.topic`)."
    )
    def topic(self) -> str:
        return self.change.topic

    @strawberry.field(description="When the change was recorded.")
    def at(self) -> dt.datetime:
        return self.change.at

    @strawberry.field(description="The shipment as it is now; null if it no longer exists for you.")
    async def shipment(self, info: Info) -> Shipment | None:
        row = await info.context.loaders.shipment.load(self.change.shipment_id)
        return shipment_node(row) if row is not None else None

    @strawberry.field(description="For an exception's change: the exception's global id; null otherwise.")
    def exception_id(self) -> strawberry.ID | None:
        exception_id = self.change.exception_id
        return to_global_id("ShipmentException", exception_id) if exception_id is not None else None

    @strawberry.field(description="For an exception's change: the exception as it is now; null otherwise.")
    async def exception(self, info: Info) -> ShipmentException | None:
        return await _exception(info, self.change)


async def _exception(info: Info, change: Change) -> ShipmentException | None:
    if change.exception_id is None:
        return None
    row = await info.context.loaders.exception.load(change.exception_id)
    if row is None or row.shadow:
        return None
    return exception_node(row)


@strawberry.input(description="Narrow live exception events; all given conditions must hold.")
class ExceptionEventFilter:
    topic: list[str] | None = strawberry.field(
        default=None, description="Any of these topics, e.g. `exception.opened` (docs/api.md lists them)."
    )
    type: list[ExceptionType] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Any of these exception types."
    )
    severity: list[Severity] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Any of these severities (as of the change)."
    )
    category: list[ExceptionCategory] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Any of these categories."
    )
    shipment_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only this shipment's exceptions."
    )


async def exception_events(
    info: Info, filter: ExceptionEventFilter | None = None
) -> AsyncGenerator[ExceptionEvent, None]:
    context = info.context
    given = filter or ExceptionEventFilter()
    unknown = [(n, topic) for n, topic in enumerate(given.topic or []) if topic not in topics.ALL_TOPICS]
    if unknown:
        index, topic = unknown[0]
        raise UserInputError(
            f"filter.topic[{index}]: {topic!r} is not an exception topic "
            f"(one of {', '.join(topics.ALL_TOPICS)})",
            argument="filter",
        )
    shipment_id = None
    if given.shipment_id is not None:
        shipment_id = expect_global_id(given.shipment_id, "Shipment", argument="filter.shipmentId")
        if shipment_id is None:
            raise UserInputError(
                f"filter.shipmentId: {given.shipment_id!r} is not a Shipment id", argument="filter"
            )
    interest = Interest(
        exceptions=True,
        timeline=False,
        account_id=context.principal.account_id,
        shipment_id=shipment_id,
        topics=frozenset(given.topic or ()),
        types=frozenset(str(t) for t in given.type or ()),
        severities=frozenset(str(s) for s in given.severity or ()),
        categories=frozenset(str(c) for c in given.category or ()),
    )
    return _events(context, interest, lambda change: ExceptionEvent(change=change))


async def shipment_updates(info: Info, shipment_id: strawberry.ID) -> AsyncGenerator[ShipmentUpdate, None]:
    context = info.context
    value = expect_global_id(shipment_id, "Shipment", argument="shipmentId")
    if value is None:
        raise UserInputError(f"shipmentId: {shipment_id!r} is not a Shipment id", argument="shipmentId")
    # another tenant's (or account's) shipment answers exactly like a missing one
    if await context.loaders.shipment.load(value) is None:
        raise GraphQLError(f"shipmentId: no shipment {shipment_id}", extensions={"code": "NOT_FOUND"})
    interest = Interest(
        exceptions=allowed(context.principal, EXCEPTION_READ),
        timeline=True,
        account_id=context.principal.account_id,
        shipment_id=value,
    )
    return _events(context, interest, lambda change: ShipmentUpdate(change=change))


def _events(
    context: Context, interest: Interest, event: Callable[[Change], Event]
) -> AsyncGenerator[Event, None]:
    """Register the subscriber now (events committed from here on reach it) and return its stream."""
    connection = context.live
    if connection is None:
        raise GraphQLError(
            "subscriptions run over the WebSocket at /graphql (graphql-transport-ws)",
            extensions={"code": "BAD_REQUEST"},
        )
    try:
        subscriber = connection.subscribe(interest)
    except LiveUnavailable as error:
        raise GraphQLError(str(error), extensions={"code": "UNAVAILABLE"}) from None

    async def stream() -> AsyncGenerator[Event, None]:
        try:
            while True:
                item: Delivery | Interrupted = await subscriber.queue.get()
                if isinstance(item, Interrupted):
                    raise GraphQLError(item.reason, extensions={"code": "EVENTS_INTERRUPTED"})
                # events resolve one at a time: this event's rows and clock until the next one
                context.loaders, context.now = item.loaders, item.now
                yield event(item.change)
        finally:
            connection.unsubscribe(subscriber)

    return stream()


@strawberry.type(description="Live events over the WebSocket at /graphql (graphql-transport-ws).")
class Subscription:
    exception_events: AsyncGenerator[ExceptionEvent, None] = strawberry.subscription(
        resolver=exception_events,
        description="Exceptions as they open, change and close, for whoever may query `exceptions` "
        "(shippers: their account's).",
    )
    shipment_updates: AsyncGenerator[ShipmentUpdate, None] = strawberry.subscription(
        resolver=shipment_updates,
        description="One shipment's timeline changes and (for those who may read exceptions) its exception "
        "changes.",
    )
