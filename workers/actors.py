"""Dramatiq actors, named ``<concept>.<verb>``. Each takes ids and the tenant id, reloads what it needs from
the database on the worker's own engine, and is safe to run twice for the same message."""

from __future__ import annotations

import datetime as dt
import uuid

from dramatiq.middleware import CurrentMessage

import domain.models  # noqa: F401 - every table, so foreign keys resolve in a worker process
from domain.db import TenantScope
from milepost import demo
from workers.broker import actor, worker_context


@actor("demo.advance_feed", queue_name="demo", max_attempts=4, min_backoff=1_000, time_limit=60_000)
async def advance_feed(tenant_id: str, shipment_ids: list[str]) -> None:
    """Advance the simulated carrier feed for these shipments: each one's next due milestone is reported.

    The message's id and enqueue time make the run repeatable: the same message run twice reports the
    same events once (their dedup keys carry the message id), however long it waited in the queue.
    """
    message = CurrentMessage.get_current_message()
    if message is None:
        raise RuntimeError("demo.advance_feed runs inside a Dramatiq worker")
    await demo.advance_shipments(
        worker_context().sessions(),
        TenantScope(uuid.UUID(tenant_id)),
        [uuid.UUID(shipment_id) for shipment_id in shipment_ids],
        cutoff=dt.datetime.fromtimestamp(message.message_timestamp / 1000, dt.UTC),
        run_id=message.message_id,
    )
