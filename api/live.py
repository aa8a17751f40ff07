"""Live events for GraphQL subscriptions: one ``LISTEN`` connection per API process, fanned out in-process.

The outbox dispatcher sends one ``NOTIFY milepost_changes`` per dispatched batch carrying a tenant id and
outbox ids per topic, nothing else (``domain.outbox.rules``). For each notification of a tenant that has
subscribers here, the hub reads the rows and what they are about in **one** scoped transaction (outbox
rows, their exceptions, their shipments: three queries, however many subscribers), then offers each
subscriber the changes its :class:`Interest` matches. Each delivery carries dataloaders shared by every
subscriber of the same scope (tenant, and account for shippers) for this batch, primed with those rows,
so resolving the events costs queries per batch and scope, not per subscriber.

Losing events is never silent:

- the ``LISTEN`` connection is checked every ``keepalive_seconds``; when it drops, every subscription
  ends with an ``EVENTS_INTERRUPTED`` error (NOTIFYs sent meanwhile are gone), the hub reconnects with
  backoff, and subscribing meanwhile answers ``UNAVAILABLE``;
- a batch that cannot be read (the database failed) interrupts that tenant's subscriptions the same way;
- a subscriber whose bounded queue is full (it reads slower than events come) is dropped and its
  WebSocket closed with :data:`SLOW_CLOSE_CODE`, instead of memory growing without end.

Clients re-read what they show and subscribe again in every one of these cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.websockets import WebSocket

from api.auth.tokens import VerifiedToken
from api.graphql.context import Loaders
from domain.db import TenantScope, scoped_transaction
from domain.exceptions.models import ShipmentException
from domain.exceptions.repository import exceptions_by_id
from domain.exceptions.rules import customer_sees_change
from domain.outbox.repository import OutboxRow, rows_by_id
from domain.outbox.rules import CHANGES_CHANNEL, MalformedNotification, parse_notification
from domain.shipments.models import Shipment
from domain.shipments.repository import shipments_by_id
from domain.tenancy.principal import Principal
from domain.tracking.service import REEVALUATE_REASON, TIMELINE_CHANGED

if TYPE_CHECKING:
    from api.listen import Listener
from api.listen import Listener
from api.state import AppState

log = structlog.get_logger("milepost.live")

EXCEPTION_TOPIC_PREFIX = "exception."
# a subscriber this far behind is dropped: RFC 6455 "try again later" (clients such as graphql-ws retry it)
SLOW_CLOSE_CODE = 1013
# the token's end, as graphql-transport-ws closes a connection it does not accept
EXPIRED_CLOSE_CODE, EXPIRED_CLOSE_REASON = 4403, "Forbidden"
# notifications waiting to be read in; more means this process cannot keep up, which interrupts everyone
INBOX_SIZE = 1_000


def is_live_topic(topic: str) -> bool:
    """Topics subscriptions announce: every exception topic (the workflow adds more; each carries the base
    payload of ``domain.workflow.topics``) and timeline changes."""
    return topic.startswith(EXCEPTION_TOPIC_PREFIX) or topic == TIMELINE_CHANGED


@dataclass(frozen=True, slots=True)
class Change:
    """One dispatched outbox row as subscribers see it. ``type``, ``category`` and ``severity`` are the
    exception's at the time of the change (its payload); the exception itself is read as it is now."""

    outbox_id: int
    topic: str
    at: dt.datetime
    shipment_id: uuid.UUID
    account_id: uuid.UUID
    exception_id: uuid.UUID | None = None
    type: str | None = None
    category: str | None = None
    severity: str | None = None
    customer_visible: bool = True


def changes_of(
    rows: Iterable[OutboxRow],
    exceptions: Mapping[uuid.UUID, ShipmentException],
    shipments: Mapping[uuid.UUID, Shipment],
) -> list[Change]:
    """The announceable changes among ``rows`` (pure). Skipped: re-evaluation requests (nothing changed),
    rows whose exception or shipment no longer exists (or is not readable), shadow exceptions (in nobody's
    queue), and rows without the ids their topic promises."""
    changes = []
    for row in rows:
        payload = row.payload
        shipment_id = _uuid(payload.get("shipment_id"))
        shipment = shipments.get(shipment_id) if shipment_id else None
        if shipment is None:
            continue
        if row.topic == TIMELINE_CHANGED:
            if payload.get("reason") == REEVALUATE_REASON:
                continue
            changes.append(Change(row.id, row.topic, row.created_at, shipment.id, shipment.account_id))
            continue
        exception_id = _uuid(payload.get("exception_id"))
        exception = exceptions.get(exception_id) if exception_id else None
        if exception is None or exception.shadow:
            continue
        changes.append(
            Change(
                row.id,
                row.topic,
                row.created_at,
                shipment.id,
                exception.account_id,
                exception_id=exception.id,
                type=_str(payload.get("type")),
                category=_str(payload.get("category")),
                severity=_str(payload.get("severity")),
                # internal comments, assignments and escalations are the staff's business
                customer_visible=customer_sees_change(row.topic, payload),
            )
        )
    return changes


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None


def _ids(values: Iterable[object]) -> list[uuid.UUID]:
    return list(dict.fromkeys(i for i in map(_uuid, values) if i is not None))


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Interest:
    """What one subscription may and wants to hear (pure; the subscription resolvers build it from the
    caller's permissions and the arguments). Empty sets match everything."""

    exceptions: bool  # exception topics: the caller may read exceptions
    timeline: bool  # timeline changes
    account_id: uuid.UUID | None = None  # shippers: their account's shipments only
    shipment_id: uuid.UUID | None = None
    topics: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    severities: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()

    def matches(self, change: Change) -> bool:
        if self.account_id is not None and change.account_id != self.account_id:
            return False
        if self.shipment_id is not None and change.shipment_id != self.shipment_id:
            return False
        if change.exception_id is None:
            return self.timeline
        if not self.exceptions or (self.account_id is not None and not change.customer_visible):
            return False
        return (
            _allows(self.topics, change.topic)
            and _allows(self.types, change.type)
            and _allows(self.severities, change.severity)
            and _allows(self.categories, change.category)
        )


def _allows(wanted: frozenset[str], value: str | None) -> bool:
    return not wanted or value in wanted


@dataclass(frozen=True, slots=True)
class Delivery:
    """A change for one subscriber, with the batch's loaders for its scope and the time it was announced."""

    change: Change
    loaders: Loaders
    now: dt.datetime


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The last item a subscriber gets when events may have been lost."""

    reason: str


class LiveUnavailable(Exception):
    """The hub is not listening (starting, or reconnecting): a subscription now would miss events."""


class Subscriber:
    """One subscription's queue (bounded) and what it wants."""

    def __init__(
        self, scope: TenantScope, interest: Interest, queue_size: int, on_overflow: Callable[[], None]
    ) -> None:
        self.scope = scope
        self.interest = interest
        self.queue: asyncio.Queue[Delivery | Interrupted] = asyncio.Queue(queue_size)
        self.on_overflow = on_overflow

    def offer(self, item: Delivery | Interrupted) -> bool:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
        return True


def listen_dsn(url: URL) -> str:
    """The engine's database as a plain ``postgresql://`` URL for the hub's own asyncpg connection."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class LiveHub:
    """The process's ``LISTEN`` connection and its subscribers (see the module docstring)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        dsn: str,
        *,
        queue_size: int,
        clock: Callable[[], dt.datetime],
        keepalive_seconds: float = 10.0,
        retry_seconds: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        self._sessions = sessions
        self._queue_size = queue_size
        self._clock = clock
        self._by_tenant: dict[uuid.UUID, set[Subscriber]] = {}
        self._inbox: asyncio.Queue[str] = asyncio.Queue(INBOX_SIZE)
        self._listener = Listener(
            dsn,
            CHANGES_CHANNEL,
            self._heard,
            name="live events",
            keepalive_seconds=keepalive_seconds,
            retry_seconds=retry_seconds,
            on_listening=lambda: log.info("live events: listening", channel=CHANGES_CHANNEL),
            on_lost=self._lost,
        )

    @property
    def listening(self) -> bool:
        return self._listener.listening

    @property
    def server_pid(self) -> int | None:
        """The LISTEN connection's backend (tests end it on purpose)."""
        return self._listener.server_pid

    def subscribe(
        self, scope: TenantScope, interest: Interest, on_overflow: Callable[[], None]
    ) -> Subscriber:
        """Register a subscriber of ``scope``'s tenant; :class:`LiveUnavailable` while not listening."""
        if not self.listening:
            raise LiveUnavailable(
                "live events are unavailable right now (the database connection is being "
                "re-established); subscribe again shortly"
            )
        subscriber = Subscriber(scope, interest, self._queue_size, on_overflow)
        self._by_tenant.setdefault(scope.tenant_id, set()).add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subscribers = self._by_tenant.get(subscriber.scope.tenant_id)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._by_tenant[subscriber.scope.tenant_id]

    def subscriber_count(self) -> int:
        return sum(len(subscribers) for subscribers in self._by_tenant.values())

    async def run(self, stopping: asyncio.Event) -> None:
        """Listen (reconnecting when the connection drops) and fan out, until ``stopping`` is set."""
        reader = asyncio.create_task(self._read_inbox())
        try:
            await self._listener.run(stopping)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self._interrupt(self._all(), "the API process is stopping")

    def _lost(self) -> None:
        self._interrupt(
            self._all(),
            "live events were interrupted (the database connection dropped); "
            "some may be lost: read the current state and subscribe again",
        )
        # notifications heard before the loss are stale for the subscriptions just ended
        _drain(self._inbox)

    def _heard(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            self._inbox.put_nowait(payload)
        except asyncio.QueueFull:
            log.error("live events: this process cannot keep up with notifications; interrupting everyone")
            _drain(self._inbox)
            self._interrupt(
                self._all(),
                "live events were interrupted (this server fell behind); some may "
                "be lost: read the current state and subscribe again",
            )

    async def _read_inbox(self) -> None:
        while True:
            payload = await self._inbox.get()
            try:
                await self.fan_out(payload)
            except Exception:  # one bad batch must not end live events for everyone
                log.exception("live events: fan-out failed")

    async def fan_out(self, payload: str) -> None:
        """Deliver one notification to the subscribers of its tenant (reads nothing if there are none)."""
        try:
            notification = parse_notification(payload)
        except MalformedNotification as error:
            log.error(
                "live events: a notification that the dispatcher did not write was ignored", error=str(error)
            )
            return
        subscribers = self._by_tenant.get(notification.tenant_id)
        ids = [i for topic, ids in notification.topics.items() if is_live_topic(topic) for i in ids]
        if not subscribers or not ids:
            return
        scope = TenantScope(notification.tenant_id)
        try:
            changes, exceptions, shipments = await self._read(scope, ids)
        except Exception:
            log.exception("live events: reading a batch failed", tenant_id=str(scope.tenant_id))
            self._interrupt(
                list(subscribers),
                "live events were interrupted (reading a batch failed); "
                "some may be lost: read the current state and subscribe again",
            )
            return
        now = self._clock()
        loaders: dict[TenantScope, Loaders] = {}
        for subscriber in list(subscribers):
            wanted = [change for change in changes if subscriber.interest.matches(change)]
            if not wanted:
                continue
            batch = loaders.get(subscriber.scope)
            if batch is None:
                batch = loaders[subscriber.scope] = self._primed(subscriber.scope, exceptions, shipments)
            for change in wanted:
                if not subscriber.offer(Delivery(change, batch, now)):
                    log.warning(
                        "live events: a subscriber fell behind and is dropped",
                        queued=subscriber.queue.qsize(),
                        tenant_id=str(scope.tenant_id),
                    )
                    self.unsubscribe(subscriber)
                    subscriber.on_overflow()
                    break

    async def _read(
        self, scope: TenantScope, ids: Sequence[int]
    ) -> tuple[list[Change], dict[uuid.UUID, ShipmentException], dict[uuid.UUID, Shipment]]:
        async with scoped_transaction(self._sessions, scope) as session:
            rows = await rows_by_id(session, scope, ids)
            exception_ids = _ids(row.payload.get("exception_id") for row in rows)
            shipment_ids = _ids(row.payload.get("shipment_id") for row in rows)
            exceptions = await exceptions_by_id(session, scope, exception_ids) if exception_ids else {}
            shipments = await shipments_by_id(session, scope, shipment_ids) if shipment_ids else {}
        return changes_of(rows, exceptions, shipments), exceptions, shipments

    def _primed(
        self,
        scope: TenantScope,
        exceptions: Mapping[uuid.UUID, ShipmentException],
        shipments: Mapping[uuid.UUID, Shipment],
    ) -> Loaders:
        """Loaders for ``scope`` holding the batch's rows that scope may see (read in the tenant's scope,
        so a shipper's get only their account's)."""
        loaders = Loaders(self._sessions, scope)
        for exception in exceptions.values():
            if scope.account_id is None or exception.account_id == scope.account_id:
                loaders.exception.prime(exception.id, exception)
        for shipment in shipments.values():
            if scope.account_id is None or shipment.account_id == scope.account_id:
                loaders.shipment.prime(shipment.id, shipment)
        return loaders

    def _all(self) -> list[Subscriber]:
        return [subscriber for subscribers in self._by_tenant.values() for subscriber in subscribers]

    def _interrupt(self, subscribers: Iterable[Subscriber], reason: str) -> None:
        for subscriber in list(subscribers):
            self.unsubscribe(subscriber)
            if not subscriber.offer(Interrupted(reason)):
                subscriber.on_overflow()


class LiveConnection:
    """One graphql-transport-ws connection: who it is once ``connection_init`` was accepted, a timer that
    closes it when the token expires, and its subscribers (dropped with it)."""

    def __init__(self, state: AppState, hub: LiveHub, request_id: str) -> None:
        self.state = state
        self.hub = hub
        self.request_id = request_id
        self.websocket: WebSocket | None = None
        self.principal: Principal | None = None
        self.connection_params: dict[str, object] | None = None  # set by strawberry at connection_init
        self._subscribers: set[Subscriber] = set()
        self._expiry: asyncio.TimerHandle | None = None
        self._forget_token: Callable[[], None] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def accept(self, verified: VerifiedToken) -> None:
        """Authenticated: the connection ends with :data:`EXPIRED_CLOSE_CODE` when the token expires, or
        as soon as this process learns it was revoked (its client or the token itself)."""
        self.principal = verified.principal
        tokens = self.state.tokens
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(
            max(tokens.seconds_left(verified), 0.0), self.close_soon, EXPIRED_CLOSE_CODE, EXPIRED_CLOSE_REASON
        )
        self._forget_token = tokens.on_revoked(
            verified, lambda: self.close_soon(EXPIRED_CLOSE_CODE, EXPIRED_CLOSE_REASON)
        )

    def subscribe(self, interest: Interest) -> Subscriber:
        assert self.principal is not None  # graphql-transport-ws refuses operations before the ack
        subscriber = self.hub.subscribe(
            self.principal.scope,
            interest,
            lambda: self.close_soon(
                SLOW_CLOSE_CODE, "Too many undelivered events: read the current state and subscribe again"
            ),
        )
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
        self.hub.unsubscribe(subscriber)

    def close_soon(self, code: int, reason: str) -> None:
        task = asyncio.create_task(self._close(code, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, code: int, reason: str) -> None:
        if self.websocket is None:
            return
        with contextlib.suppress(Exception):  # already closed by the client or by the protocol handler
            await self.websocket.close(code=code, reason=reason)

    def end(self) -> None:
        """The WebSocket is gone: stop the expiry timer and forget its subscribers."""
        if self._expiry is not None:
            self._expiry.cancel()
        if self._forget_token is not None:
            self._forget_token()
        for subscriber in list(self._subscribers):
            self.unsubscribe(subscriber)


def _drain(queue: asyncio.Queue[str]) -> None:
    while not queue.empty():
        queue.get_nowait()
