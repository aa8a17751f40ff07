"""Capture: from parsed events to stored, deduplicated, matched events and rebuilt timelines.

Every event path ends in :func:`store_events`: the ingest endpoints, ``milepost import``, replays and the
demo feed. It resolves codes through the tenant's mapping table, derives each event's dedup key, matches
events to shipments by their references (or parks them), writes them in one statement and brings the
timelines it touched up to date — advanced from their milestones' winning events, or rebuilt from *all*
their events when one may have been replaced or withdrawn — so arrival order never matters. Services flush
only.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy import any_, delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.columns import utcnow
from domain.db import TenantScope, json_text, scoped, tenant_condition, text_array, uuid_array
from domain.outbox.service import publish_all
from domain.shipments.models import Milestone, MilestoneCode, Shipment, ShipmentReference
from domain.shipments.timeline import (
    UNPLANNED_SEQUENCE_START,
    MilestoneState,
    PlanStep,
    TimelineEvent,
    build_timeline,
)
from domain.tracking import rules
from domain.tracking.canonical import CanonicalEvent, Classifier, Place, SourceCode
from domain.tracking.mapping import CANONICAL_SYSTEM, CodeMapping, MappingTable, builtin_tables
from domain.tracking.models import CodeMapping as CodeMappingRow
from domain.tracking.models import EventClassifier, TrackingEvent

_LOCODE = re.compile(r"^[A-Z]{2}[A-Z2-9]{3}$")
_SOURCE_LENGTH = 32
_MAX_OFFSET_MINUTES = 14 * 60

# the outbox topic of a changed timeline (payload: shipment id, status); detection listens to it
TIMELINE_CHANGED = "shipment.timeline_changed"
# the same topic also asks detection to look again without a change (payload: shipment id and this reason);
# live subscriptions do not announce such rows
REEVALUATE_REASON = "re-evaluate"

ACCEPTED, PARKED, DUPLICATE, UPDATED, REJECTED = "accepted", "parked", "duplicate", "updated", "rejected"


class TrackingError(ValueError):
    """An event that cannot be recorded as given; the message says which field and why."""


@dataclass
class Outcome:
    """What happened to one event of a message."""

    position: str
    outcome: str  # accepted | parked | duplicate | updated | rejected
    event_id: uuid.UUID | None = None
    shipment_id: uuid.UUID | None = None
    code: str | None = None
    reason: str | None = None
    signals: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"position": self.position, "outcome": self.outcome}
        for name in ("event_id", "shipment_id"):
            value = getattr(self, name)
            if value is not None:
                data[name] = str(value)
        if self.code:
            data["code"] = self.code
        if self.reason:
            data["reason"] = self.reason
        if self.signals:
            data["signals"] = list(self.signals)
        return data


@dataclass
class StoreResult:
    outcomes: list[Outcome] = field(default_factory=list)
    touched_shipments: set[uuid.UUID] = field(default_factory=set)


# --- mapping -------------------------------------------------------------------------------------------


async def mapping_for(session: AsyncSession, scope: TenantScope) -> MappingTable:
    """The built-in code mappings with this tenant's overrides on top."""
    rows = (await session.execute(scoped(select(CodeMappingRow), CodeMappingRow, scope))).scalars()
    overrides = {
        (row.carrier_code, row.system, row.code): CodeMapping(
            row.milestone, row.signal, row.raw_only, row.description
        )
        for row in rows
    }
    return MappingTable(builtin=builtin_tables(), overrides=overrides)


# --- storing events ------------------------------------------------------------------------------------

_INSERT = text(
    """
    INSERT INTO tracking_event AS t (
        tenant_id, id, created_at, shipment_id, ingest_message_id, source, source_event_id, dedup_key,
        classifier, milestone_code, raw_code, raw_reason, code_system, qualifier_system, location_locode,
        location_name, occurred_at, utc_offset_minutes, received_at, "references", reference_values,
        signals, unknown_codes, carrier_code, place, version_at, payload, is_retracted)
    SELECT :tenant_id, gen_random_uuid(), :received_at, r.shipment_id, :ingest_message_id, r.source,
        r.source_event_id, r.dedup_key, r.classifier, r.milestone_code, r.raw_code, r.raw_reason,
        r.code_system, r.qualifier_system, r.location_locode, r.location_name, r.occurred_at,
        r.utc_offset_minutes, :received_at, r.refs::jsonb,
        ARRAY(SELECT jsonb_array_elements(r.refs::jsonb) ->> 'value'),
        ARRAY(SELECT jsonb_array_elements_text(r.signals::jsonb)),
        ARRAY(SELECT jsonb_array_elements_text(r.unknown::jsonb)),
        r.carrier_code, r.place::jsonb, r.version_at, r.payload::jsonb, r.is_retracted
    FROM unnest(
        CAST(:shipment_id AS uuid[]), CAST(:source AS text[]),
        CAST(:source_event_id AS text[]), CAST(:dedup_key AS text[]), CAST(:classifier AS text[]),
        CAST(:milestone_code AS text[]), CAST(:raw_code AS text[]), CAST(:raw_reason AS text[]),
        CAST(:code_system AS text[]), CAST(:qualifier_system AS text[]), CAST(:location_locode AS text[]),
        CAST(:location_name AS text[]), CAST(:occurred_at AS timestamptz[]),
        CAST(:utc_offset_minutes AS int[]), CAST(:refs AS text[]), CAST(:signals AS text[]),
        CAST(:unknown AS text[]), CAST(:carrier_code AS text[]), CAST(:place AS text[]),
        CAST(:version_at AS timestamptz[]), CAST(:payload AS text[]), CAST(:is_retracted AS boolean[])
    ) AS r(shipment_id, source, source_event_id, dedup_key, classifier, milestone_code, raw_code,
           raw_reason, code_system, qualifier_system, location_locode, location_name, occurred_at,
           utc_offset_minutes, refs, signals, unknown, carrier_code, place, version_at, payload,
           is_retracted)
    ON CONFLICT (tenant_id, dedup_key) DO UPDATE SET
        milestone_code = EXCLUDED.milestone_code,
        signals = EXCLUDED.signals,
        unknown_codes = EXCLUDED.unknown_codes,
        shipment_id = coalesce(t.shipment_id, EXCLUDED.shipment_id)
    -- a duplicate writes nothing, unless a mapping fix changed what it means or it can now be matched
    WHERE t.milestone_code IS DISTINCT FROM EXCLUDED.milestone_code
       OR t.signals IS DISTINCT FROM EXCLUDED.signals
       OR t.unknown_codes IS DISTINCT FROM EXCLUDED.unknown_codes
       OR (t.shipment_id IS NULL AND EXCLUDED.shipment_id IS NOT NULL)
    RETURNING t.id, t.dedup_key, t.shipment_id, (t.xmax = 0) AS inserted
    """
)
# the insert's per-event parameters, in the order of its unnest
_INSERT_COLUMNS = (
    "shipment_id",
    "source",
    "source_event_id",
    "dedup_key",
    "classifier",
    "milestone_code",
    "raw_code",
    "raw_reason",
    "code_system",
    "qualifier_system",
    "location_locode",
    "location_name",
    "occurred_at",
    "utc_offset_minutes",
    "refs",
    "signals",
    "unknown",
    "carrier_code",
    "place",
    "version_at",
    "payload",
    "is_retracted",
)


def _place_text(place: Place | None) -> str:
    if place is None:
        return ""
    return place.locode or "/".join(p or "" for p in (place.city, place.state, place.country, place.name))


def _place_json(place: Place | None) -> str | None:
    if place is None:
        return None
    return json_text({k: v for k, v in _fields(place).items() if v is not None})


def _fields(place: Place) -> dict[str, Any]:
    return {name: getattr(place, name) for name in Place.__slots__}


def _event_key(event: CanonicalEvent) -> str:
    return rules.event_dedup_key(
        source=event.source,
        source_event_id=event.source_event_id,
        version_at=event.updated_at,
        is_retracted=event.is_retracted,
        reference_values=(value for _, value in event.references),
        code=f"{event.code.system}:{event.code.code}:{event.code.qualifier or ''}",
        classifier=event.classifier,
        occurred_at=event.occurred_at,
        place=_place_text(event.place),
    )


async def match_shipments(
    session: AsyncSession, scope: TenantScope, events: Sequence[CanonicalEvent]
) -> list[uuid.UUID | None]:
    """Per event, the shipment its references point to; ``None`` parks it.

    A reference of the same kind is a stronger match than one of another kind with the same value; among
    equals the newest shipment wins (a container number is reused across voyages). References of another
    tenant are invisible here, so they are simply unknown.
    """
    values = sorted({value for event in events for _, value in event.references})
    if not values:
        return [None] * len(events)
    reference, shipment = ShipmentReference.__table__.c, Shipment.__table__.c  # plain rows, no ORM loading
    statement = (
        scoped(select(reference.value, reference.kind, shipment.id, shipment.created_at), reference, scope)
        .join(
            Shipment.__table__,
            (Shipment.tenant_id == ShipmentReference.tenant_id) & (shipment.id == reference.shipment_id),
        )
        .where(reference.value == any_(text_array(values)))
    )
    found: dict[str, list[tuple[str, uuid.UUID, dt.datetime]]] = defaultdict(list)
    for value, kind, shipment_id, created_at in (await session.execute(statement)).all():
        found[value].append((kind, shipment_id, created_at))
    matches: list[uuid.UUID | None] = []
    for event in events:
        best: tuple[bool, dt.datetime, uuid.UUID] | None = None
        for kind, value in event.references:
            for found_kind, shipment_id, created_at in found.get(value, ()):
                candidate = (found_kind == kind, created_at, shipment_id)
                if best is None or candidate > best:
                    best = candidate
        matches.append(best[2] if best else None)
    return matches


async def store_events(
    session: AsyncSession,
    scope: TenantScope,
    events: Sequence[CanonicalEvent],
    *,
    mapping: MappingTable,
    received_at: dt.datetime,
    ingest_message_id: uuid.UUID | None = None,
    shipment_id: uuid.UUID | None = None,
) -> StoreResult:
    """Store ``events`` (deduplicated), match or park them, and bring the timelines they change up to date.

    ``shipment_id`` skips matching (the caller knows the shipment, as the demo feed does). This is the hot
    path of capture: one pass over the events builds the insert's columns, nothing per event is an ORM
    object, and ids come from the database.
    """
    result = StoreResult()
    if not events:
        return result
    matched = [shipment_id] * len(events) if shipment_id else await match_shipments(session, scope, events)
    rows: list[tuple[Any, ...]] = []  # the insert's values per event, in _INSERT_COLUMNS order
    keys: list[str] = []
    resolutions = []
    first: dict[str, tuple[CanonicalEvent, str | None]] = {}  # per key: the event and its milestone
    for event, target in zip(events, matched, strict=True):
        resolution = mapping.resolve_event(event)
        resolutions.append(resolution)
        key = _event_key(event)
        keys.append(key)
        if key in first:  # the same event twice in one message: one row
            continue
        # a retraction only withdraws; it never advances the timeline itself
        milestone = None if event.is_retracted else resolution.milestone
        first[key] = (event, milestone)
        place, code = event.place, event.code
        rows.append(
            (
                target,
                event.source,
                event.source_event_id,
                key,
                event.classifier.value,
                milestone,
                code.code,
                code.qualifier,
                code.system,
                code.qualifier_system,
                place.locode if place else None,
                _location_name(place),
                event.occurred_at,
                event.utc_offset_minutes,
                json_text([{"kind": k, "value": v} for k, v in event.references]),
                json_text(resolution.signals),
                json_text(resolution.unknown),
                (event.carrier_code or "")[:16] or None,
                _place_json(place),
                event.updated_at,
                json_text({"position": event.position, **event.detail}, str),
                event.is_retracted,
            )
        )
    columns = dict(zip(_INSERT_COLUMNS, map(list, zip(*rows, strict=True)), strict=True))
    written = (
        await session.execute(
            _INSERT,
            {
                "tenant_id": scope.tenant_id,
                "received_at": received_at,
                "ingest_message_id": ingest_message_id,
                **columns,
            },
        )
    ).all()
    by_key = {row.dedup_key: row for row in written}
    added = AddedEvents()
    changed: set[uuid.UUID] = set()  # events stored before whose meaning or shipment changed
    reported: set[str] = set()
    for event, key, resolution in zip(events, keys, resolutions, strict=True):
        row = by_key.get(key)
        if row is None or key in reported:
            outcome = Outcome(event.position, DUPLICATE)
        else:
            reported.add(key)
            if row.inserted:
                outcome = Outcome(
                    event.position, ACCEPTED if row.shipment_id else PARKED, row.id, row.shipment_id
                )
                if row.shipment_id is not None:
                    added.append(row.id, row.shipment_id, key, *first[key])
            else:
                outcome = Outcome(event.position, UPDATED, row.id, row.shipment_id)
                if row.shipment_id is not None:
                    changed.add(row.shipment_id)
            if row.shipment_id is not None:
                result.touched_shipments.add(row.shipment_id)
        outcome.signals = resolution.signals
        result.outcomes.append(outcome)
    if result.touched_shipments:
        await update_timelines(session, scope, added, rebuild=changed)
    return result


def _location_name(place: Place | None) -> str | None:
    if place is None:
        return None
    if place.name:
        return place.name
    parts = [p for p in (place.city, place.state, place.country) if p]
    return ", ".join(parts) or None


# --- timelines -----------------------------------------------------------------------------------------


@dataclass
class AddedEvents:
    """Events just inserted on shipments, column by column, as the timeline statements take them."""

    id: list[uuid.UUID] = field(default_factory=list)
    shipment_id: list[uuid.UUID] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    source_event_id: list[str | None] = field(default_factory=list)
    milestone: list[str | None] = field(default_factory=list)  # None: it names none (unknown, retraction)
    classifier: list[str] = field(default_factory=list)
    occurred_at: list[dt.datetime] = field(default_factory=list)
    key: list[str] = field(default_factory=list)
    locode: list[str | None] = field(default_factory=list)
    utc_offset_minutes: list[int | None] = field(default_factory=list)
    version: list[dt.datetime | None] = field(default_factory=list)

    def append(
        self,
        event_id: uuid.UUID,
        shipment_id: uuid.UUID,
        key: str,
        event: CanonicalEvent,
        milestone: str | None,
    ) -> None:
        self.id.append(event_id)
        self.shipment_id.append(shipment_id)
        self.source.append(event.source)
        self.source_event_id.append(event.source_event_id)
        self.milestone.append(milestone)
        self.classifier.append(event.classifier.value)
        self.occurred_at.append(event.occurred_at)
        self.key.append(key)
        self.locode.append(event.place.locode if event.place else None)
        self.utc_offset_minutes.append(event.utc_offset_minutes)
        self.version.append(event.updated_at)

    def outside(self, excluded: Set[uuid.UUID]) -> dict[str, list[Any]]:
        """The columns of the events on shipments not in ``excluded``."""
        if not excluded:
            return dict(vars(self))
        rows = [i for i, shipment_id in enumerate(self.shipment_id) if shipment_id not in excluded]
        return {name: [column[i] for i in rows] for name, column in vars(self).items()}


async def rebuild_timelines(
    session: AsyncSession, scope: TenantScope, shipment_ids: Iterable[uuid.UUID]
) -> None:
    """Recompute the timelines (and statuses) of these shipments from their plans and every event in force."""
    await update_timelines(session, scope, AddedEvents(), rebuild=set(shipment_ids))


async def update_timelines(
    session: AsyncSession, scope: TenantScope, added: AddedEvents, *, rebuild: Set[uuid.UUID]
) -> None:
    """Bring the timelines (and statuses) of shipments up to date: ``added`` events just inserted on them,
    and the shipments in ``rebuild`` recomputed from every event in force.

    A shipment that only gained events is *advanced* by one set-based statement (:data:`_ADVANCE`): each
    event is compared with its milestone's stored winners, in the database, without reading the
    shipment's history into Python. It is *rebuilt* from every event in force instead (``build_timeline``)
    when one of its events may have been withdrawn or replaced (another row of the same source event id:
    a DCSA update or retraction), when an event's code is not planned, or when an event lands on a milestone
    written before milestones kept their winners: the same statement finds those shipments and leaves them
    alone. Both
    give the timeline a rebuild from scratch gives (tested, with generated feeds).

    Shipment rows are locked in id order first, so concurrent updates of overlapping sets wait for each
    other instead of deadlocking, and everything that decides between advancing and rebuilding is read
    after the lock. Changes go to the outbox.
    """
    ids = sorted({*added.shipment_id, *rebuild})
    if not ids:
        return
    shipment = Shipment.__table__.c  # table columns: plain rows, without the ORM's per-row loading
    statuses = {
        row.id: row.status
        for row in (
            await session.execute(
                scoped(select(shipment.id, shipment.status), shipment, scope)
                .where(shipment.id == any_(uuid_array(ids)))
                .order_by(shipment.id)
                # FOR NO KEY UPDATE: the event insert's foreign-key check holds FOR KEY SHARE on these rows,
                # which a plain FOR UPDATE would wait on — two messages for one shipment would deadlock
                .with_for_update(key_share=True)
            )
        ).all()
    }
    full = set(rebuild)
    shown: set[uuid.UUID] = set()
    reached: dict[uuid.UUID, list[tuple[str, str]]] = defaultdict(list)  # milestones that now happened
    columns = added.outside(full)
    if columns["shipment_id"]:
        advance = {"tenant_id": scope.tenant_id, "unplanned": UNPLANNED_SEQUENCE_START, **columns}
        for shipment_id, changed_shown, new_actual, blocked in await session.execute(_ADVANCE, advance):
            if blocked:
                full.add(shipment_id)
            if changed_shown:
                shown.add(shipment_id)
            if new_actual is not None:
                reached[shipment_id].append((Classifier.ACTUAL, new_actual))
    writes = _TimelineWrites()
    for shipment_id in [i for i in statuses if i not in full]:
        # events only added: the status moves on from the milestones that now happened (it was derived from
        # the others before, and a rebuild derives it from all of them again)
        status = statuses[shipment_id]
        writes.outcome(
            shipment_id,
            status,
            rules.status_after(status, reached.get(shipment_id, ())),
            shown=shipment_id in shown,
        )
    rebuilt = sorted(full & statuses.keys())
    if rebuilt:
        milestones = await _stored_milestones(session, scope, rebuilt)
        in_force = await _events_in_force(session, scope, rebuilt)
        for shipment_id in rebuilt:
            plan = [
                PlanStep(m.state.code, m.state.sequence, m.state.location_locode, *m.baseline)
                for m in milestones[shipment_id]
                if m.state.sequence < UNPLANNED_SEQUENCE_START
            ]
            timeline = build_timeline(plan, in_force[shipment_id])
            status = statuses[shipment_id]
            writes.outcome(
                shipment_id,
                status,
                _status(status, timeline),
                shown=writes.diff(shipment_id, milestones[shipment_id], timeline),
            )
    await writes.flush(session, scope)


# Advance milestones by events (domain/shipments/timeline.py has the rules, and build_timeline the same
# rules in Python for rebuilds): an event lands on the first planned milestone of its code at its place,
# else the first of its code; per milestone and classifier the best new event is compared with the stored
# winner — PLN and EST: the latest (version, time, key); ACT: the earliest (time, key). Keys compare as
# Python compares strings (COLLATE "C"). Only milestones whose winners change are written; each returns
# its shipment, whether what the timeline shows changed (not only which event won), and its code when its
# milestone happened for the first time.
# the best new event's fields per milestone and classifier, one row per milestone (a classifier's columns
# are NULL when no new event has it)
_CANDIDATE = """
        max(at) FILTER (WHERE classifier = '{c}') AS {p}_at,
        max(source) FILTER (WHERE classifier = '{c}') AS {p}_source,
        max(key) FILTER (WHERE classifier = '{c}') AS {p}_key,
        max(version) FILTER (WHERE classifier = '{c}') AS {p}_version,
        max(utc_offset_minutes) FILTER (WHERE classifier = '{c}') AS {p}_offset"""
_ADVANCE = text(
    f"""
    WITH e AS (
        SELECT * FROM unnest(
            CAST(:shipment_id AS uuid[]), CAST(:id AS uuid[]), CAST(:source AS text[]),
            CAST(:source_event_id AS text[]), CAST(:milestone AS text[]), CAST(:classifier AS text[]),
            CAST(:occurred_at AS timestamptz[]), CAST(:key AS text[]), CAST(:locode AS text[]),
            CAST(:utc_offset_minutes AS int[]), CAST(:version AS timestamptz[])
        ) WITH ORDINALITY AS e(shipment_id, id, source, source_event_id, milestone, classifier, occurred_at,
                               key, locode, utc_offset_minutes, version, n)
    ), targeted AS (
        -- per event its planned milestone (one index probe each), and whether that milestone was last
        -- written before milestones kept their winning events (migration 0005): no winner to compare with
        SELECT e.*, t.id AS milestone_id, t.legacy
        FROM e CROSS JOIN LATERAL (
            SELECT m.id,
                NOT ((m.estimated_at IS NULL OR m.estimated_event_key IS NOT NULL)
                     AND (m.actual_at IS NULL OR m.actual_event_key IS NOT NULL)
                     AND (m.planned_event_key IS NOT NULL
                          OR (m.planned_at IS NOT DISTINCT FROM m.baseline_planned_at
                              AND m.planned_source IS NOT DISTINCT FROM m.baseline_source))) AS legacy
            FROM milestone AS m
            WHERE m.tenant_id = :tenant_id AND m.shipment_id = e.shipment_id AND m.code = e.milestone
              AND m.sequence < :unplanned
            ORDER BY coalesce(m.location_locode = e.locode, false) DESC, m.sequence
            LIMIT 1
        ) AS t
    ), blocked AS (
        -- shipments to rebuild instead: a code the plan lacks (where an unplanned milestone goes depends on
        -- every event of its code) ...
        SELECT e.shipment_id FROM e
        WHERE e.milestone IS NOT NULL AND NOT EXISTS (SELECT FROM targeted AS t WHERE t.n = e.n)
        UNION
        -- ... another version of the same source event (one may replace or withdraw the other) ...
        SELECT e.shipment_id FROM e
        WHERE e.source_event_id IS NOT NULL AND EXISTS (
            SELECT FROM tracking_event AS x
            WHERE x.tenant_id = :tenant_id AND x.source = e.source AND x.source_event_id = e.source_event_id
              AND x.shipment_id = e.shipment_id AND x.id <> e.id)
        UNION
        -- ... or an event on a milestone without its winners (rebuilt once, then kept up like the others)
        SELECT shipment_id FROM targeted WHERE legacy
    ), advancing AS (
        SELECT * FROM targeted AS t
        WHERE NOT EXISTS (SELECT FROM blocked AS b WHERE b.shipment_id = t.shipment_id)
    ), best AS (
        (SELECT DISTINCT ON (milestone_id, classifier)
            milestone_id, classifier, occurred_at AS at, source, key, version, utc_offset_minutes
        FROM advancing WHERE classifier <> 'ACT'
        ORDER BY milestone_id, classifier, coalesce(version, '-infinity') DESC, occurred_at DESC,
            key COLLATE "C" DESC)
        UNION ALL
        (SELECT DISTINCT ON (milestone_id)
            milestone_id, classifier, occurred_at AS at, source, key, version, utc_offset_minutes
        FROM advancing WHERE classifier = 'ACT'
        ORDER BY milestone_id, occurred_at, key COLLATE "C")
    ), candidate AS (
        -- one row per milestone: no join between the classifiers' winners, whose counts the planner
        -- cannot estimate (it chose nested loops over thousands of rows)
        SELECT milestone_id, {_CANDIDATE.format(c="PLN", p="p")}, {_CANDIDATE.format(c="EST", p="s")},
            {_CANDIDATE.format(c="ACT", p="a")}
        FROM best GROUP BY milestone_id
    ), compared AS (
        SELECT m.id, c.*,
            c.p_key IS NOT NULL AND (
                m.planned_event_key IS NULL OR m.planned_at IS NULL OR m.planned_source IS NULL
                OR (coalesce(c.p_version, '-infinity'), c.p_at, c.p_key COLLATE "C")
                   > (coalesce(m.planned_version_at, '-infinity'), m.planned_at,
                      m.planned_event_key COLLATE "C")) AS plan_wins,
            c.s_key IS NOT NULL AND (
                m.estimated_event_key IS NULL OR m.estimated_at IS NULL OR m.estimated_source IS NULL
                OR (coalesce(c.s_version, '-infinity'), c.s_at, c.s_key COLLATE "C")
                   > (coalesce(m.estimated_version_at, '-infinity'), m.estimated_at,
                      m.estimated_event_key COLLATE "C")) AS estimate_wins,
            c.a_key IS NOT NULL AND (
                m.actual_event_key IS NULL OR m.actual_at IS NULL OR m.actual_source IS NULL
                OR (c.a_at, c.a_key COLLATE "C") < (m.actual_at, m.actual_event_key COLLATE "C"))
                AS actual_wins,
            m.planned_at, m.planned_source, m.estimated_at, m.estimated_source, m.actual_at, m.actual_source,
            m.utc_offset_minutes
        FROM candidate AS c
        JOIN milestone AS m ON m.tenant_id = :tenant_id AND m.id = c.milestone_id
    ), advanced AS (
    UPDATE milestone AS m SET
        planned_at = CASE WHEN c.plan_wins THEN c.p_at ELSE m.planned_at END,
        planned_source = CASE WHEN c.plan_wins THEN c.p_source ELSE m.planned_source END,
        planned_event_key = CASE WHEN c.plan_wins THEN c.p_key ELSE m.planned_event_key END,
        planned_version_at = CASE WHEN c.plan_wins THEN c.p_version ELSE m.planned_version_at END,
        estimated_at = CASE WHEN c.estimate_wins THEN c.s_at ELSE m.estimated_at END,
        estimated_source = CASE WHEN c.estimate_wins THEN c.s_source ELSE m.estimated_source END,
        estimated_event_key = CASE WHEN c.estimate_wins THEN c.s_key ELSE m.estimated_event_key END,
        estimated_version_at = CASE WHEN c.estimate_wins THEN c.s_version ELSE m.estimated_version_at END,
        actual_at = CASE WHEN c.actual_wins THEN c.a_at ELSE m.actual_at END,
        actual_source = CASE WHEN c.actual_wins THEN c.a_source ELSE m.actual_source END,
        actual_event_key = CASE WHEN c.actual_wins THEN c.a_key ELSE m.actual_event_key END,
        utc_offset_minutes = CASE WHEN c.actual_wins THEN c.a_offset ELSE m.utc_offset_minutes END,
        updated_at = now()
    FROM compared AS c
    WHERE m.tenant_id = :tenant_id AND m.id = c.id AND (c.plan_wins OR c.estimate_wins OR c.actual_wins)
    RETURNING m.shipment_id,
        (c.plan_wins AND (c.p_at, c.p_source) IS DISTINCT FROM (c.planned_at, c.planned_source))
        OR (c.estimate_wins AND (c.s_at, c.s_source) IS DISTINCT FROM (c.estimated_at, c.estimated_source))
        OR (c.actual_wins AND (c.a_at, c.a_source, c.a_offset)
                              IS DISTINCT FROM (c.actual_at, c.actual_source, c.utc_offset_minutes)) AS shown,
        CASE WHEN c.actual_wins AND c.actual_at IS NULL THEN m.code END AS new_actual
    )
    SELECT shipment_id, shown, new_actual, false AS blocked FROM advanced
    UNION ALL
    SELECT shipment_id, false, NULL, true FROM blocked
    """  # noqa: S608 - only the constant fragments above are interpolated
)


@dataclass(frozen=True, slots=True)
class _StoredMilestone:
    id: uuid.UUID
    baseline: tuple[dt.datetime | None, str | None]  # the booked plan: planned_at, planned_source
    state: MilestoneState


_milestone = Milestone.__table__.c
# the columns of a MilestoneState, in its order, so a row's tail is one
_MILESTONE_STATE = tuple(_milestone[f.name] for f in fields(MilestoneState))


async def _stored_milestones(
    session: AsyncSession, scope: TenantScope, shipment_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[_StoredMilestone]]:
    # table columns, not ORM attributes: plain rows without the ORM's per-row loading
    statement = (
        scoped(
            select(
                _milestone.shipment_id,
                _milestone.id,
                _milestone.baseline_planned_at,
                _milestone.baseline_source,
                *_MILESTONE_STATE,
            ),
            _milestone,
            scope,
        )
        .where(_milestone.shipment_id == any_(uuid_array(shipment_ids)))
        .order_by(_milestone.shipment_id, _milestone.sequence)
    )
    milestones: dict[uuid.UUID, list[_StoredMilestone]] = defaultdict(list)
    for shipment_id, milestone_id, planned_at, source, *state in (await session.execute(statement)).all():
        milestones[shipment_id].append(
            _StoredMilestone(milestone_id, (planned_at, source), MilestoneState(*state))
        )
    return milestones


async def _events_in_force(
    session: AsyncSession, scope: TenantScope, shipment_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[TimelineEvent]]:
    """Per shipment, every event that names a milestone and is neither replaced nor withdrawn."""
    e = TrackingEvent.__table__.c
    event_columns = (
        e.shipment_id,
        e.source,
        e.source_event_id,
        e.version_at,
        e.is_retracted,
        e.dedup_key,
        e.classifier,
        e.milestone_code,
        e.occurred_at,
        e.location_locode,
        e.utc_offset_minutes,
    )
    rows: dict[uuid.UUID, list[tuple[str | None, dt.datetime | None, bool, TimelineEvent | None]]] = (
        defaultdict(list)
    )
    statement = scoped(select(*event_columns), e, scope).where(
        e.shipment_id == any_(uuid_array(shipment_ids))
    )
    for row in (await session.execute(statement)).all():
        timeline_event = None
        if row.milestone_code is not None:
            timeline_event = TimelineEvent(
                key=row.dedup_key,
                classifier=Classifier(row.classifier),
                milestone=row.milestone_code,
                occurred_at=row.occurred_at,
                source=row.source,
                location_locode=row.location_locode,
                utc_offset_minutes=row.utc_offset_minutes,
                version=row.version_at,
            )
        identity = f"{row.source}:{row.source_event_id}" if row.source_event_id else None
        rows[row.shipment_id].append((identity, row.version_at, row.is_retracted, timeline_event))
    in_force: dict[uuid.UUID, list[TimelineEvent]] = defaultdict(list)
    for shipment_id, group in rows.items():
        in_force[shipment_id] = [e for e in rules.current_versions(group) if e is not None]
    return in_force


@dataclass
class _TimelineWrites:
    """Everything a timeline update changes besides advanced milestones, written with one statement per
    kind: rebuilt milestones, statuses, and an outbox row per shipment whose timeline or status changed."""

    updates: list[tuple[uuid.UUID, Any]] = field(default_factory=list)  # (milestone id, state)
    inserts: list[tuple[uuid.UUID, Any]] = field(default_factory=list)  # (shipment id, state)
    deletes: list[uuid.UUID] = field(default_factory=list)
    statuses: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    changed: list[tuple[uuid.UUID, str]] = field(default_factory=list)

    def diff(
        self, shipment_id: uuid.UUID, current: Sequence[_StoredMilestone], timeline: Sequence[MilestoneState]
    ) -> bool:
        """Queue the writes that store ``timeline``; whether it changed what the timeline shows (another
        winning event with the same times and sources is stored, but there is nothing to announce)."""
        by_sequence = {m.state.sequence: m for m in current}
        shown = False
        for state in timeline:
            stored = by_sequence.get(state.sequence)
            if stored is None:
                self.inserts.append((shipment_id, state))
                shown = True
            elif _differ(stored.state, state, ("code", *_SHOWN_FIELDS)):
                self.updates.append((stored.id, state))
                shown = True
            elif _differ(stored.state, state, _WINNER_FIELDS):
                self.updates.append((stored.id, state))
        wanted = {state.sequence for state in timeline}
        # an unplanned milestone whose events were all withdrawn leaves the timeline
        withdrawn = [
            m.id for s, m in by_sequence.items() if s >= UNPLANNED_SEQUENCE_START and s not in wanted
        ]
        self.deletes += withdrawn
        return shown or bool(withdrawn)

    def outcome(self, shipment_id: uuid.UUID, status: str, new_status: str, *, shown: bool) -> None:
        """Queue the shipment's new status, and its outbox row when anything it shows changed."""
        if new_status != status:
            self.statuses.append((shipment_id, new_status))
        if shown or new_status != status:
            self.changed.append((shipment_id, new_status))

    async def flush(self, session: AsyncSession, scope: TenantScope) -> None:
        tenant = {"tenant_id": scope.tenant_id}
        if self.updates:
            await session.execute(_UPDATE_MILESTONES, {**tenant, **_state_arrays(self.updates, "id")})
        if self.inserts:
            await session.execute(
                _INSERT_MILESTONES, {**tenant, **_state_arrays(self.inserts, "shipment_id")}
            )
        if self.deletes:
            await session.execute(
                delete(Milestone).where(tenant_condition(Milestone, scope), Milestone.id.in_(self.deletes))
            )
        if self.statuses:
            await session.execute(
                _UPDATE_STATUSES,
                {**tenant, "id": [i for i, _ in self.statuses], "status": [s for _, s in self.statuses]},
            )
        await publish_all(
            session,
            scope,
            [(TIMELINE_CHANGED, {"shipment_id": str(i), "status": s}) for i, s in self.changed],
        )


_STATE_ARRAYS = """
    CAST(:code AS text[]), CAST(:sequence AS int[]), CAST(:location_locode AS text[]),
    CAST(:planned_at AS timestamptz[]), CAST(:planned_source AS text[]),
    CAST(:estimated_at AS timestamptz[]), CAST(:estimated_source AS text[]),
    CAST(:actual_at AS timestamptz[]), CAST(:actual_source AS text[]), CAST(:utc_offset_minutes AS int[]),
    CAST(:planned_event_key AS text[]), CAST(:planned_version_at AS timestamptz[]),
    CAST(:estimated_event_key AS text[]), CAST(:estimated_version_at AS timestamptz[]),
    CAST(:actual_event_key AS text[])
"""
_STATE_NAMES = """code, sequence, location_locode, planned_at, planned_source, estimated_at, estimated_source,
    actual_at, actual_source, utc_offset_minutes, planned_event_key, planned_version_at, estimated_event_key,
    estimated_version_at, actual_event_key"""

# only the constant column lists above are interpolated into these statements
_UPDATE_MILESTONES = text(
    f"""
    UPDATE milestone AS m SET code = u.code, location_locode = coalesce(u.location_locode, m.location_locode),
        planned_at = u.planned_at, planned_source = u.planned_source, estimated_at = u.estimated_at,
        estimated_source = u.estimated_source, actual_at = u.actual_at, actual_source = u.actual_source,
        utc_offset_minutes = u.utc_offset_minutes, planned_event_key = u.planned_event_key,
        planned_version_at = u.planned_version_at, estimated_event_key = u.estimated_event_key,
        estimated_version_at = u.estimated_version_at, actual_event_key = u.actual_event_key,
        updated_at = now()
    FROM unnest(CAST(:id AS uuid[]), {_STATE_ARRAYS}) AS u(id, {_STATE_NAMES})
    WHERE m.tenant_id = :tenant_id AND m.id = u.id
    """  # noqa: S608
)
_INSERT_MILESTONES = text(
    f"""
    INSERT INTO milestone (tenant_id, id, created_at, updated_at, shipment_id, {_STATE_NAMES})
    SELECT :tenant_id, gen_random_uuid(), now(), now(), u.shipment_id, u.code, u.sequence, u.location_locode,
        u.planned_at, u.planned_source, u.estimated_at, u.estimated_source, u.actual_at, u.actual_source,
        u.utc_offset_minutes, u.planned_event_key, u.planned_version_at, u.estimated_event_key,
        u.estimated_version_at, u.actual_event_key
    FROM unnest(CAST(:shipment_id AS uuid[]), {_STATE_ARRAYS}) AS u(shipment_id, {_STATE_NAMES})
    """  # noqa: S608
)
_UPDATE_STATUSES = text(
    """
    UPDATE shipment AS s SET status = u.status, updated_at = now()
    FROM unnest(CAST(:id AS uuid[]), CAST(:status AS text[])) AS u(id, status)
    WHERE s.tenant_id = :tenant_id AND s.id = u.id
    """
)


def _state_arrays(rows: Sequence[tuple[uuid.UUID, MilestoneState]], key: str) -> dict[str, list[Any]]:
    arrays: dict[str, list[Any]] = {key: [k for k, _ in rows]}
    for name in ("code", "sequence", "location_locode", *_STATE_FIELDS):
        arrays[name] = [getattr(state, name) for _, state in rows]
    return arrays


def _status(current: str, timeline: Sequence[MilestoneState]) -> str:
    return rules.status_of(current, (m.code for m in timeline if m.actual_at is not None))


# what a timeline shows, and which events won it (stored so later events can be compared with them)
_SHOWN_FIELDS = (
    "planned_at",
    "planned_source",
    "estimated_at",
    "estimated_source",
    "actual_at",
    "actual_source",
    "utc_offset_minutes",
)
_WINNER_FIELDS = (
    "planned_event_key",
    "planned_version_at",
    "estimated_event_key",
    "estimated_version_at",
    "actual_event_key",
)
_STATE_FIELDS = (*_SHOWN_FIELDS, *_WINNER_FIELDS)


def _differ(before: MilestoneState, after: MilestoneState, names: Sequence[str]) -> bool:
    return any(getattr(before, name) != getattr(after, name) for name in names)


# --- single-shipment recording (the demo feed) ---------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NewEvent:
    """An event for one known shipment in canonical milestone terms (the demo feed's simulated carrier)."""

    source: str
    classifier: str  # EventClassifier: PLN, EST or ACT
    milestone_code: str
    occurred_at: dt.datetime
    source_event_id: str | None = None
    raw_code: str | None = None  # the code the simulated carrier would have sent; kept in the detail
    raw_reason: str | None = None
    location_locode: str | None = None
    location_name: str | None = None
    utc_offset_minutes: int | None = None
    version_at: dt.datetime | None = None


def _validate(event: NewEvent) -> None:
    if not event.source or len(event.source) > _SOURCE_LENGTH:
        raise TrackingError(f"source: needs 1-{_SOURCE_LENGTH} characters, got {event.source!r}")
    if event.classifier not in set(EventClassifier):
        raise TrackingError(
            f"classifier: unknown classifier {event.classifier!r}; expected one of "
            f"{', '.join(EventClassifier)}"
        )
    if event.milestone_code not in set(MilestoneCode):
        raise TrackingError(f"milestone_code: unknown milestone {event.milestone_code!r}")
    for name in ("occurred_at", "version_at"):
        value = getattr(event, name)
        if value is not None and value.tzinfo is None:
            raise TrackingError(f"{name}: a time needs a UTC offset")
    if event.location_locode is not None and not _LOCODE.match(event.location_locode):
        raise TrackingError(f"location_locode: {event.location_locode!r} is not a UN/LOCODE")
    offset = event.utc_offset_minutes
    if offset is not None and not -_MAX_OFFSET_MINUTES <= offset <= _MAX_OFFSET_MINUTES:
        raise TrackingError(f"utc_offset_minutes: {offset} is outside -840..840")


def _canonical(event: NewEvent, shipment_id: uuid.UUID) -> CanonicalEvent:
    detail: dict[str, Any] = {}
    if event.raw_code:
        detail["carrier_code"] = event.raw_code
    if event.raw_reason:
        detail["carrier_reason"] = event.raw_reason
    return CanonicalEvent(
        source=event.source,
        classifier=Classifier(event.classifier),
        code=SourceCode(CANONICAL_SYSTEM, event.milestone_code),
        occurred_at=event.occurred_at.astimezone(dt.UTC),
        # without a source id the shipment itself is the reference that makes the key unique
        references=(("shipment", str(shipment_id)),),
        position="event",
        source_event_id=event.source_event_id,
        utc_offset_minutes=event.utc_offset_minutes,
        place=Place(locode=event.location_locode, name=event.location_name)
        if event.location_locode or event.location_name
        else None,
        updated_at=event.version_at,
        detail=detail,
    )


async def record_event(
    session: AsyncSession,
    scope: TenantScope,
    shipment_id: uuid.UUID,
    event: NewEvent,
    *,
    now: dt.datetime | None = None,
) -> bool:
    """Store ``event`` for the shipment and apply it to its timeline; ``False`` if it was a duplicate."""
    [is_new] = await record_events(session, scope, shipment_id, [event], now=now)
    return is_new


async def record_events(
    session: AsyncSession,
    scope: TenantScope,
    shipment_id: uuid.UUID,
    events: Sequence[NewEvent],
    *,
    now: dt.datetime | None = None,
) -> list[bool]:
    """Store events of one known shipment; per event, whether it was new."""
    for event in events:
        _validate(event)
    exists = await session.execute(
        scoped(select(Shipment.id), Shipment, scope).where(Shipment.id == shipment_id)
    )
    if exists.scalar_one_or_none() is None:
        raise TrackingError(f"shipment {shipment_id} not found")
    if not events:
        return []
    result = await store_events(
        session,
        scope,
        [_canonical(event, shipment_id) for event in events],
        mapping=MappingTable(),
        received_at=now or utcnow(),
        shipment_id=shipment_id,
    )
    return [outcome.outcome == ACCEPTED for outcome in result.outcomes]
