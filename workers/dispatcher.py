"""The outbox dispatcher: committed outbox rows → broker messages (and one ``NOTIFY`` per batch).

Routing: each outbox topic has one or more routes (one per consumer), each a pure function
``(tenant_id, payloads) -> [Send, ...]`` that turns a batch of one tenant's rows of that topic into a few
messages (say, one ``exceptions.evaluate`` per 500 shipment ids). Register routes next to their actors,
in a module listed in ``workers.broker.ACTOR_MODULES`` so every dispatching process imports it::

    route_ids("shipment.timeline_changed", "exceptions.evaluate", key="shipment_id")

or, for anything else::

    @route("some.topic")
    def _some_topic(tenant_id: uuid.UUID, payloads: list[dict[str, Any]]) -> list[Send]: ...

A topic without a route is marked dispatched with a warning (never retried forever); a message naming an
actor this process does not know is dropped with an error. Each message must carry the batch's tenant id
(its ``tenant_id`` keyword or first positional argument): a route cannot mix tenants.

Delivery is at least once: rows are claimed (``FOR UPDATE SKIP LOCKED``), their messages sent, and the rows
marked dispatched in one transaction, so a crash between the send and the commit sends those messages
again on the next round. Actors are idempotent for that reason (see docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dramatiq
import structlog
from dramatiq.errors import ActorNotFound
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.columns import utcnow
from domain.db import TenantScope, scoped_transaction, system_transaction
from domain.jobs.service import REPLAY_TOPIC
from domain.outbox.service import PendingChange, claim_pending, mark_dispatched
from domain.tenancy.repository import all_tenant_ids
from workers.broker import current_broker
from workers.retries import message_tenant

log = structlog.get_logger("milepost.dispatcher")

# shipment ids (or other ids) per message when a route batches them
IDS_PER_MESSAGE = 500


@dataclass(frozen=True, slots=True)
class Send:
    """One message to send: the actor by name and its arguments (ids and the tenant id, never objects)."""

    actor_name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    message_id: str | None = None  # fixed in advance (a replay records it before the message exists)


Route = Callable[[uuid.UUID, list[dict[str, Any]]], list[Send]]

_routes: dict[str, list[Route]] = {}


def register_route(topic: str, fn: Route) -> None:
    """Also send this topic's outbox rows as the messages ``fn(tenant_id, payloads)`` returns (one call per
    route per topic per batch, payloads in outbox order, all of one tenant, each with its ``outbox_id``).
    A topic may have several routes, one per consumer (detection, the workflow, notifications);
    registering the same function twice (a module imported twice) adds it once."""
    registered = _routes.setdefault(topic, [])
    if fn not in registered:
        registered.append(fn)


def routes_of(topic: str) -> tuple[Route, ...]:
    return tuple(_routes.get(topic, ()))


def route(topic: str) -> Callable[[Route], Route]:
    """Decorator form of :func:`register_route`."""

    def register(fn: Route) -> Route:
        register_route(topic, fn)
        return fn

    return register


def route_ids(topic: str, actor_name: str, *, key: str, per_message: int = IDS_PER_MESSAGE) -> Route:
    """Route ``topic`` to ``actor_name(tenant_id, ids)``: the distinct ``payload[key]`` values of a batch,
    in outbox order, ``per_message`` ids to a message."""

    def send_ids(tenant_id: uuid.UUID, payloads: list[dict[str, Any]]) -> list[Send]:
        return [Send(actor_name, (str(tenant_id), ids)) for ids in id_batches(payloads, key, per_message)]

    register_route(topic, send_ids)
    return send_ids


def id_batches(payloads: Sequence[dict[str, Any]], key: str, size: int = IDS_PER_MESSAGE) -> list[list[str]]:
    """The distinct ``payload[key]`` values in first-seen order, cut into lists of at most ``size``."""
    ids = list(dict.fromkeys(str(payload[key]) for payload in payloads))
    return [ids[start : start + size] for start in range(0, len(ids), size)]


@route(REPLAY_TOPIC)
def _replay_dead_letters(_tenant_id: uuid.UUID, payloads: list[dict[str, Any]]) -> list[Send]:
    """A replayed dead letter: the same actor and arguments, under the message id the replay recorded."""
    return [
        Send(p["actor_name"], tuple(p["args"]), dict(p["kwargs"]), message_id=p["message_id"])
        for p in payloads
    ]


class BrokerUnavailable(Exception):
    """Sending to the broker failed; the batch's rows stay pending."""


TenantIds = Callable[[], Awaitable[list[uuid.UUID]]]


class Dispatcher:
    """Dispatches committed outbox rows, tenant by tenant, ``batch_size`` rows per transaction.

    ``broker`` defaults to the process's current one; ``tenant_ids`` to every tenant (listed in a
    :func:`domain.db.system_transaction`).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        broker: dramatiq.Broker | None = None,
        batch_size: int = IDS_PER_MESSAGE,
        clock: Callable[[], dt.datetime] = utcnow,
        tenant_ids: TenantIds | None = None,
    ) -> None:
        self.sessions = sessions
        self.broker = broker
        self.batch_size = batch_size
        self.clock = clock
        self.tenant_ids = tenant_ids or self._all_tenant_ids

    async def _all_tenant_ids(self) -> list[uuid.UUID]:
        async with system_transaction(self.sessions) as session:
            return await all_tenant_ids(session)

    async def dispatch_all(self) -> int:
        """One round over every tenant; returns the rows dispatched. A tenant whose batch fails is logged
        and skipped (its rows stay pending); a broker that cannot be reached ends the round."""
        dispatched = 0
        for tenant_id in await self.tenant_ids():
            try:
                dispatched += await self.dispatch_tenant(tenant_id)
            except BrokerUnavailable as error:
                log.error("outbox dispatch paused: broker unavailable", error=str(error.__cause__ or error))
                break
            except Exception:
                log.exception("outbox dispatch failed for a tenant", tenant_id=str(tenant_id))
        return dispatched

    async def dispatch_tenant(self, tenant_id: uuid.UUID) -> int:
        """Dispatch the tenant's pending rows, batch after batch, until none is left; returns how many."""
        scope = TenantScope(tenant_id)
        dispatched = 0
        while True:
            count = await self.dispatch_batch(scope)
            dispatched += count
            if count < self.batch_size:
                return dispatched

    async def dispatch_batch(self, scope: TenantScope) -> int:
        """Claim, send, mark and notify one batch in one transaction; returns the rows dispatched."""
        async with scoped_transaction(self.sessions, scope) as session:
            changes = await claim_pending(session, scope, self.batch_size)
            if not changes:
                return 0
            messages = self.messages(scope.tenant_id, changes)
            if messages:
                # blocking network I/O (RabbitMQ waits for its publisher confirms): off the event loop
                await asyncio.to_thread(self._send, messages)
            await mark_dispatched(session, scope, changes, self.clock())
        return len(changes)

    def messages(self, tenant_id: uuid.UUID, changes: Sequence[PendingChange]) -> list[dramatiq.Message[Any]]:
        """The messages for one tenant's batch, through each topic's route."""
        by_topic: dict[str, list[PendingChange]] = {}
        for change in changes:
            by_topic.setdefault(change.topic, []).append(change)
        messages = []
        for topic, rows in by_topic.items():
            topic_routes = _routes.get(topic)
            if not topic_routes:
                log.warning(
                    "outbox topic has no route; rows marked dispatched",
                    topic=topic,
                    tenant_id=str(tenant_id),
                    rows=len(rows),
                    first_id=rows[0].id,
                )
                continue
            # each payload with its outbox row's id, which consumers key their idempotency on
            payloads = [{**row.payload, "outbox_id": row.id} for row in rows]
            for topic_route in topic_routes:
                for send in topic_route(tenant_id, payloads):
                    message = self._message(tenant_id, topic, send)
                    if message is not None:
                        messages.append(message)
        return messages

    def _message(self, tenant_id: uuid.UUID, topic: str, send: Send) -> dramatiq.Message[Any] | None:
        if message_tenant(send.args, send.kwargs) != tenant_id:
            raise ValueError(
                f"route of {topic!r} built a message for {send.actor_name} without tenant {tenant_id}"
            )
        try:
            actor = (self.broker or current_broker()).get_actor(send.actor_name)
        except ActorNotFound:
            log.error(
                "outbox message names an unknown actor; dropped",
                topic=topic,
                actor=send.actor_name,
                tenant_id=str(tenant_id),
            )
            return None
        message: dramatiq.Message[Any] = actor.message_with_options(args=send.args, kwargs=send.kwargs)
        return message.copy(message_id=send.message_id) if send.message_id else message

    def _send(self, messages: Sequence[dramatiq.Message[Any]]) -> None:
        broker = self.broker or current_broker()
        try:
            for message in messages:
                broker.enqueue(message)
        except Exception as error:
            raise BrokerUnavailable(f"{type(error).__name__}: {error}") from error
