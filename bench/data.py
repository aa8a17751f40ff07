"""Deterministic benchmark data: tenants' shipments (seeded with set-based SQL) and their tracking events.

Everything derives from a :class:`Plan` and a shipment's ``(tenant, index)``: its id (an md5 UUID that SQL
and Python compute alike), its booking reference, its planned milestones and the events a carrier reports
for it. The same :class:`Message` yields both the canonical JSON body posted to ``/ingest/events`` and the
exact ``tracking_event`` column values the application stores for it, so the database-limit run inserts the
same rows the end-to-end run produces.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg

SOURCE = "events"
CARRIER = "MAEU"
HOURS_OF_BASES = 480  # shipments' first planned milestones spread over 20 days


@dataclass(frozen=True, slots=True)
class PlannedStep:
    sequence: int
    code: str
    locode: str
    offset_hours: int  # after the shipment's base time
    utc_offset_minutes: int  # the local offset a carrier writes for it


# an ocean shipment Shanghai → Rotterdam: what a template would plan
STEPS = (
    PlannedStep(1, "GATE_IN_ORIGIN", "CNSHA", 0, 480),
    PlannedStep(2, "DEPARTED", "CNSHA", 24, 480),
    PlannedStep(3, "ARRIVED", "NLRTM", 28 * 24, 60),
    PlannedStep(4, "DELIVERED", "NLRTM", 30 * 24, 60),
)
_ZONES = {
    minutes: dt.timezone(dt.timedelta(minutes=minutes)) for minutes in {s.utc_offset_minutes for s in STEPS}
}


@dataclass(frozen=True, slots=True)
class Plan:
    """How much data, and in which order it arrives.

    ``order="time"``: a carrier feed as it happens — round ``k`` carries every shipment's ``k``-th event, so
    one message touches as many shipments as it has events. ``order="shipment"``: each shipment's events
    arrive together (a backfill), so a message touches ``message_events / events_per_shipment`` shipments.
    """

    shipments: int  # over all tenants
    events_per_shipment: int
    epoch: dt.datetime  # the earliest base time; everything planned and reported lies after it, in the past
    tenants: int = 2
    message_events: int = 10_000
    order: str = "time"

    @property
    def events(self) -> int:
        return self.shipments * self.events_per_shipment

    def tenant_shipments(self, tenant: int) -> int:
        return self.shipments // self.tenants + (1 if tenant < self.shipments % self.tenants else 0)


def make_plan(
    *, events: int, shipments: int, tenants: int, message_events: int, order: str, now: dt.datetime
) -> Plan:
    if order not in ("time", "shipment"):
        raise ValueError(f"order must be 'time' or 'shipment', got {order!r}")
    per_shipment = max(1, round(events / shipments))
    # the last actual is planned 30 days after a base at most 20 days after the epoch; keep it two weeks back
    epoch = (now - dt.timedelta(days=64)).replace(minute=0, second=0, microsecond=0)
    return Plan(shipments, per_shipment, epoch, tenants, message_events, order)


def shipment_id(tenant: int, index: int) -> uuid.UUID:
    return uuid.UUID(hashlib.md5(f"bench-shipment:{tenant}:{index}".encode()).hexdigest())


def booking(tenant: int, index: int) -> str:
    return f"BK{tenant}{index:08d}"


def base_time(plan: Plan, index: int) -> dt.datetime:
    return plan.epoch + dt.timedelta(hours=index % HOURS_OF_BASES)


# --- seeding ------------------------------------------------------------------------------------------

_SEED_SHIPMENTS = """
INSERT INTO shipment (tenant_id, id, account_id, mode, status, carrier_code, origin_locode,
                      destination_locode, priority)
SELECT $1::uuid, md5('bench-shipment:' || $3::int || ':' || s)::uuid, $2::uuid, 'ocean', 'booked', 'MAEU',
       'CNSHA', 'NLRTM', 'normal'
FROM generate_series(0, $4::int - 1) AS s
"""
_SEED_REFERENCES = """
INSERT INTO shipment_reference (tenant_id, id, shipment_id, kind, value)
SELECT $1::uuid, gen_random_uuid(), md5('bench-shipment:' || $2::int || ':' || s)::uuid, 'booking',
       'BK' || $2::int || lpad(s::text, 8, '0')
FROM generate_series(0, $3::int - 1) AS s
"""
_SEED_MILESTONES = """
INSERT INTO milestone (tenant_id, id, shipment_id, code, sequence, location_locode, baseline_planned_at,
                       baseline_source, planned_at, planned_source)
SELECT $1::uuid, gen_random_uuid(), md5('bench-shipment:' || $2::int || ':' || s)::uuid, m.code, m.sequence,
       m.locode, at, 'booking', at, 'booking'
FROM generate_series(0, $3::int - 1) AS s
CROSS JOIN unnest($5::int[], $6::text[], $7::text[], $8::int[]) AS m(sequence, code, locode, hours)
CROSS JOIN LATERAL (
    SELECT $4::timestamptz + make_interval(hours => s % $9::int) + make_interval(hours => m.hours) AS at
) AS planned
"""


async def seed_shipments(
    conn: asyncpg.Connection, plan: Plan, tenant: int, tenant_id: uuid.UUID, account_id: uuid.UUID
) -> None:
    """The tenant's shipments with a booking reference and a planned timeline, in one transaction as the
    application role (row-level security applies)."""
    count = plan.tenant_shipments(tenant)
    async with conn.transaction():
        await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))
        await conn.execute(_SEED_SHIPMENTS, tenant_id, account_id, tenant, count)
        await conn.execute(_SEED_REFERENCES, tenant_id, tenant, count)
        await conn.execute(
            _SEED_MILESTONES,
            tenant_id,
            tenant,
            count,
            plan.epoch,
            [s.sequence for s in STEPS],
            [s.code for s in STEPS],
            [s.locode for s in STEPS],
            [s.offset_hours for s in STEPS],
            HOURS_OF_BASES,
        )


# --- events -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    tenant: int
    shipment: int
    event_id: str
    step: PlannedStep
    classifier: str
    occurred_at: dt.datetime  # UTC

    @property
    def reference(self) -> str:
        return booking(self.tenant, self.shipment)

    def local_time(self) -> str:
        return self.occurred_at.astimezone(_ZONES[self.step.utc_offset_minutes]).isoformat()


def _jitter(index: int, k: int, modulo: int) -> int:
    return (index * 7919 + k * 104_729) % modulo


def event(plan: Plan, tenant: int, index: int, k: int) -> Event:
    """The ``k``-th event reported for a shipment: estimates first (later ones more pessimistic), then one
    actual per planned milestone, in order."""
    actuals = min(plan.events_per_shipment, len(STEPS))
    estimates = plan.events_per_shipment - actuals
    base = base_time(plan, index)
    if k < estimates:
        step = STEPS[k % len(STEPS)]
        revision = k // len(STEPS)
        minutes = (revision + 1) * 90 + _jitter(index, k, 60)
        classifier = "EST"
    else:
        step = STEPS[k - estimates]
        minutes = -60 + _jitter(index, k, 420)
        classifier = "ACT"
    at = base + dt.timedelta(hours=step.offset_hours, minutes=minutes)
    return Event(tenant, index, f"t{tenant}-s{index}-e{k}", step, classifier, at)


@dataclass(frozen=True, slots=True)
class Message:
    """Events of one tenant: shipments ``start``..``stop`` (exclusive), event ``k`` of each, or all of
    their events when ``k`` is ``None``."""

    tenant: int
    start: int
    stop: int
    k: int | None

    def events(self, plan: Plan) -> Iterator[Event]:
        ks = range(plan.events_per_shipment) if self.k is None else (self.k,)
        for index in range(self.start, self.stop):
            for k in ks:
                yield event(plan, self.tenant, index, k)

    def size(self, plan: Plan) -> int:
        return (self.stop - self.start) * (plan.events_per_shipment if self.k is None else 1)


def messages(plan: Plan) -> list[Message]:
    """Every message, in the order they are sent: the tenants' messages interleaved."""
    per_tenant: list[list[Message]] = []
    for tenant in range(plan.tenants):
        count = plan.tenant_shipments(tenant)
        found: list[Message] = []
        if plan.order == "time":
            step = plan.message_events
            for k in range(plan.events_per_shipment):
                found += [Message(tenant, s, min(s + step, count), k) for s in range(0, count, step)]
        else:
            step = max(1, plan.message_events // plan.events_per_shipment)
            found += [Message(tenant, s, min(s + step, count), None) for s in range(0, count, step)]
        per_tenant.append(found)
    ordered: list[Message] = []
    for position in range(max(len(m) for m in per_tenant)):
        ordered += [m[position] for m in per_tenant if position < len(m)]
    return ordered


_EVENT_JSON = (
    '{{"eventId":"{}","references":[{{"kind":"booking","value":"{}"}}],"code":"{}","classifier":"{}",'
    '"occurredAt":"{}","location":{{"locode":"{}"}},"carrierCode":"{}"}}'
)


def body(plan: Plan, message: Message) -> bytes:
    """The canonical JSON message (docs/formats/events.md)."""
    parts = [
        _EVENT_JSON.format(
            e.event_id, e.reference, e.step.code, e.classifier, e.local_time(), e.step.locode, CARRIER
        )
        for e in message.events(plan)
    ]
    return ('{"events":[' + ",".join(parts) + "]}").encode()


# the columns of :func:`rows`, in the order the database-limit insert takes them
ROW_COLUMNS = (
    "id",
    "shipment_id",
    "source_event_id",
    "dedup_key",
    "classifier",
    "code",
    "locode",
    "occurred_at",
    "utc_offset_minutes",
    "refs",
    "reference_value",
    "place",
    "payload",
)


def rows(plan: Plan, message: Message) -> dict[str, list[Any]]:
    """The ``tracking_event`` values the application stores for ``message`` (domain/tracking/service.py)."""
    columns: dict[str, list[Any]] = {name: [] for name in ROW_COLUMNS}
    shipment_ids: dict[int, uuid.UUID] = {}
    for position, e in enumerate(message.events(plan)):
        sid = shipment_ids.get(e.shipment)
        if sid is None:
            sid = shipment_ids[e.shipment] = shipment_id(e.tenant, e.shipment)
        columns["id"].append(uuid.uuid4())
        columns["shipment_id"].append(sid)
        columns["source_event_id"].append(e.event_id)
        columns["dedup_key"].append(f"{SOURCE}:{e.event_id}")
        columns["classifier"].append(e.classifier)
        columns["code"].append(e.step.code)
        columns["locode"].append(e.step.locode)
        columns["occurred_at"].append(e.occurred_at)
        columns["utc_offset_minutes"].append(e.step.utc_offset_minutes)
        columns["refs"].append(json.dumps([{"kind": "booking", "value": e.reference}]))
        columns["reference_value"].append(e.reference)
        columns["place"].append(json.dumps({"locode": e.step.locode}))
        columns["payload"].append(json.dumps({"position": f"events[{position}]"}))
    return columns
