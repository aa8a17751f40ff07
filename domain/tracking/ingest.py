"""Ingest messages: stored raw first, parsed by their format's adapter, then processed into events.

The edge (HTTP endpoint, ``milepost import``, replay) runs three steps in separate transactions:
:func:`receive` (the raw body, committed before anything can fail), :func:`parse_body` (pure, may run in a
thread) and :func:`process` (events, shipments, per-event results). A message whose processing failed keeps
its body and error and can be :func:`replay`-ed — e.g. after a mapping fix — with the same outcome rules.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, scoped, tenant_condition
from domain.shipments.models import MilestoneCode, MilestoneTemplate, Shipment, ShipmentReference
from domain.shipments.service import ShipmentDraft, ShipmentError, create_shipment
from domain.shipments.templates import TemplateOverride, TemplateStep, choose_template, plan_timeline
from domain.tenancy.models import Account
from domain.tracking.canonical import ParsedMessage, ParseIssue
from domain.tracking.formats.aggregators import parse_aftership, parse_easypost
from domain.tracking.formats.canonical_json import parse_events
from domain.tracking.formats.csv_files import parse_csv, to_shipment_draft
from domain.tracking.formats.dcsa import parse_dcsa
from domain.tracking.formats.epcis import parse_epcis
from domain.tracking.formats.x12 import parse_x12
from domain.tracking.mapping import MappingError, validate_row
from domain.tracking.models import CodeMapping as CodeMappingRow
from domain.tracking.models import IngestMessage, IngestStatus, TrackingEvent
from domain.tracking.service import (
    ACCEPTED,
    DUPLICATE,
    REJECTED,
    Outcome,
    mapping_for,
    rebuild_timelines,
    store_events,
)

MAX_EVENTS_PER_MESSAGE = 10_000
MAX_REPORTED_RESULTS = 10_000
IDEMPOTENCY_KEY_LENGTH = 255

Parser = Callable[[bytes, dt.datetime], ParsedMessage]

PARSERS: dict[str, Parser] = {
    "events": lambda body, now: parse_events(body, now=now),
    "dcsa": lambda body, now: parse_dcsa(body, now=now),
    "x12": lambda body, now: parse_x12(body, now=now),
    "epcis": lambda body, now: parse_epcis(body, now=now),
    "aftership": lambda body, now: parse_aftership(body, now=now),
    "easypost": lambda body, now: parse_easypost(body, now=now),
    "csv": lambda body, now: parse_csv([body], now=now),
}
FORMATS = tuple(PARSERS)


class IngestError(ValueError):
    """A request the ingest layer refuses as a whole; ``code`` is stable, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_body(format: str, body: bytes, now: dt.datetime) -> ParsedMessage:
    """Run the format's adapter. An adapter bug becomes a fatal issue on a kept message, never a lost one."""
    try:
        parsed = PARSERS[format](body, now)
    except Exception as error:  # the raw body is stored; a replay after the fix recovers it
        return ParsedMessage(
            issues=[ParseIssue("$", "internal.parser_failed", f"the {format} parser failed: {error!r}", True)]
        )
    if len(parsed.events) > MAX_EVENTS_PER_MESSAGE:
        return ParsedMessage(
            issues=[
                ParseIssue(
                    "$",
                    "too_many_events",
                    f"{len(parsed.events)} events in one message; the limit is {MAX_EVENTS_PER_MESSAGE}: "
                    "split the message",
                    True,
                )
            ]
        )
    return parsed


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


async def find_by_idempotency_key(
    session: AsyncSession, scope: TenantScope, key: str
) -> IngestMessage | None:
    statement = scoped(select(IngestMessage), IngestMessage, scope).where(
        IngestMessage.idempotency_key == key
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def receive(
    session: AsyncSession,
    scope: TenantScope,
    *,
    format: str,
    body: bytes,
    content_type: str | None,
    api_client_id: uuid.UUID | None,
    idempotency_key: str | None,
    now: dt.datetime,
) -> IngestMessage:
    """Store the raw message. The caller commits before parsing, so nothing accepted is ever lost."""
    if format not in PARSERS:
        raise IngestError(
            "unknown_format", f"unknown format {format!r}; expected one of {', '.join(FORMATS)}"
        )
    if idempotency_key is not None and not 0 < len(idempotency_key) <= IDEMPOTENCY_KEY_LENGTH:
        raise IngestError(
            "invalid_idempotency_key", f"Idempotency-Key must be 1-{IDEMPOTENCY_KEY_LENGTH} chars"
        )
    message = IngestMessage(
        tenant_id=scope.tenant_id,
        id=uuid.uuid4(),
        format=format,
        content_type=content_type,
        size_bytes=len(body),
        sha256=body_hash(body),
        body=body,
        received_at=now,
        api_client_id=api_client_id,
        idempotency_key=idempotency_key,
        status=IngestStatus.RECEIVED,
        errors=[],
        results=[],
    )
    session.add(message)
    await session.flush()
    return message


async def process(
    session: AsyncSession,
    scope: TenantScope,
    message: IngestMessage,
    parsed: ParsedMessage,
    *,
    now: dt.datetime,
) -> list[Outcome]:
    """Apply a parsed message: shipments (CSV), then events; record per-event results on the message."""
    outcomes: list[Outcome] = []
    fatal = [issue for issue in parsed.issues if issue.fatal]
    # a rejected message (or transaction set) keeps the events its adapter still vouched for
    if parsed.shipments:
        outcomes += await register_shipments(session, scope, parsed.shipments)
    if parsed.events:
        mapping = await mapping_for(session, scope)
        stored = await store_events(
            session, scope, parsed.events, mapping=mapping, received_at=now, ingest_message_id=message.id
        )
        outcomes += stored.outcomes
    outcomes += [
        Outcome(issue.position, REJECTED, code=issue.code, reason=issue.reason)
        for issue in parsed.issues
        if not issue.fatal
    ]
    counts = {
        name: sum(1 for o in outcomes if o.outcome == name)
        for name in ("accepted", "parked", "duplicate", "updated", "rejected")
    }
    message.event_count = len(parsed.events) + counts["rejected"]
    message.accepted_count = counts["accepted"] + counts["updated"]
    message.parked_count = counts["parked"]
    message.duplicate_count = counts["duplicate"]
    message.rejected_count = counts["rejected"]
    message.errors = [_issue_json(issue) for issue in parsed.issues][:MAX_REPORTED_RESULTS]
    message.results = [outcome.as_json() for outcome in outcomes][:MAX_REPORTED_RESULTS]
    message.acknowledgment = parsed.acknowledgment
    message.acknowledgment_media_type = parsed.acknowledgment_media_type
    message.attempts += 1
    message.processed_at = now
    taken = message.accepted_count + message.parked_count + message.duplicate_count
    if taken == 0 and (fatal or message.rejected_count):
        message.status = IngestStatus.REJECTED
    elif fatal or message.rejected_count:
        message.status = IngestStatus.PARTIALLY_ACCEPTED
    else:  # everything taken, or a valid empty message
        message.status = IngestStatus.ACCEPTED
    await session.flush()
    return outcomes


def _issue_json(issue: ParseIssue) -> dict[str, Any]:
    return {"position": issue.position, "code": issue.code, "reason": issue.reason, "fatal": issue.fatal}


async def mark_failed(session: AsyncSession, scope: TenantScope, message_id: uuid.UUID, error: str) -> None:
    """Record that processing crashed (its transaction rolled back); the raw body waits for a replay."""
    message = await get_message(session, scope, message_id)
    if message is not None:
        message.status = IngestStatus.REJECTED
        message.attempts += 1
        message.errors = [
            {"position": "$", "code": "internal.processing_failed", "reason": error, "fatal": True}
        ]
        await session.flush()


async def get_message(
    session: AsyncSession, scope: TenantScope, message_id: uuid.UUID
) -> IngestMessage | None:
    statement = scoped(select(IngestMessage), IngestMessage, scope).where(IngestMessage.id == message_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def replay(
    session: AsyncSession, scope: TenantScope, message_id: uuid.UUID, *, now: dt.datetime
) -> IngestMessage:
    """Parse and process a stored message again with today's adapters and mappings.

    Events already stored stay one row each; those whose meaning a mapping fix changed are updated and
    their timelines rebuilt.
    """
    message = await get_message(session, scope, message_id)
    if message is None:
        raise IngestError("not_found", f"no ingest message {message_id}")
    parsed = parse_body(message.format, message.body, now)
    await process(session, scope, message, parsed, now=now)
    return message


# --- shipments from bulk files ------------------------------------------------------------------------


async def template_overrides(session: AsyncSession, scope: TenantScope) -> list[TemplateOverride]:
    rows = (await session.execute(scoped(select(MilestoneTemplate), MilestoneTemplate, scope))).scalars()
    return [
        TemplateOverride(
            mode=row.mode,
            service_level=row.service_level,
            account_id=row.account_id,
            steps=tuple(TemplateStep(**step) for step in row.steps),  # type: ignore[arg-type]
        )
        for row in rows
    ]


def plan_from_booking(draft: ShipmentDraft, overrides: Sequence[TemplateOverride]) -> ShipmentDraft:
    """The draft with its full planned timeline: the mode's template anchored on ETD/ETA, the booking's own
    dates first, and any booked milestone the template lacks kept too."""
    explicit = {m.code: m.planned_at for m in draft.milestones if m.planned_at is not None}
    etd = explicit.get(MilestoneCode.DEPARTED) or explicit.get(MilestoneCode.PICKED_UP)
    eta = explicit.get(MilestoneCode.ARRIVED) or explicit.get(MilestoneCode.DELIVERED)
    steps = choose_template(draft.mode, draft.service_level, draft.account_id, overrides)
    planned = plan_timeline(
        steps,
        etd=etd,
        eta=eta,
        origin_locode=draft.origin_locode,
        destination_locode=draft.destination_locode,
        explicit=explicit,
    )
    in_template = {step.code for step in steps}
    extra = [m for m in draft.milestones if m.code not in in_template]
    return replace(draft, milestones=[*planned, *extra])


async def register_shipment(
    session: AsyncSession,
    scope: TenantScope,
    draft: ShipmentDraft,
    overrides: Sequence[TemplateOverride] = (),
) -> Shipment:
    """Create a shipment with its planned timeline and adopt the parked events that carry its references."""
    shipment = await create_shipment(session, scope, plan_from_booking(draft, overrides))
    await attach_parked_events(session, scope, shipment.id, [value for _, value in draft.references])
    return shipment


async def attach_parked_events(
    session: AsyncSession, scope: TenantScope, shipment_id: uuid.UUID, reference_values: Sequence[str]
) -> int:
    """Match parked events that carry any of ``reference_values`` to the shipment; rebuild its timeline."""
    if not reference_values:
        return 0
    statement = (
        update(TrackingEvent)
        .where(
            tenant_condition(TrackingEvent, scope),
            TrackingEvent.shipment_id.is_(None),
            TrackingEvent.reference_values.overlap(list(reference_values)),
        )
        .values(shipment_id=shipment_id)
        .returning(TrackingEvent.id)
    )
    adopted = len((await session.execute(statement)).all())
    if adopted:
        await rebuild_timelines(session, scope, [shipment_id])
    return adopted


async def add_reference(
    session: AsyncSession, scope: TenantScope, shipment_id: uuid.UUID, kind: str, value: str
) -> int:
    """Give a shipment another reference; parked events that carry it join its timeline."""
    session.add(ShipmentReference(tenant_id=scope.tenant_id, shipment_id=shipment_id, kind=kind, value=value))
    await session.flush()
    return await attach_parked_events(session, scope, shipment_id, [value])


async def register_shipments(
    session: AsyncSession, scope: TenantScope, rows: Sequence[Mapping[str, Any]]
) -> list[Outcome]:
    """Shipments from a bulk file. A row whose references already name a shipment is a duplicate (a file
    sent twice creates nothing twice); an unknown account or an invalid row is rejected with its line."""
    accounts = {
        a.code: a.id for a in (await session.execute(scoped(select(Account), Account, scope))).scalars()
    }
    overrides = await template_overrides(session, scope)
    outcomes = []
    for row in rows:
        position = f"line {row.get('line', '?')}"
        account_id = accounts.get(row["account_code"])
        if account_id is None:
            outcomes.append(
                Outcome(
                    position, REJECTED, code="unknown_account", reason=f"no account {row['account_code']!r}"
                )
            )
            continue
        values = [value for _, value in row["references"]]
        existing = (
            await session.execute(
                scoped(select(ShipmentReference.shipment_id), ShipmentReference, scope)
                .where(ShipmentReference.value.in_(values))
                .limit(1)
            )
        ).scalar_one_or_none()
        if existing is not None:
            outcomes.append(Outcome(position, DUPLICATE, shipment_id=existing))
            continue
        try:
            async with session.begin_nested():
                shipment = await register_shipment(
                    session, scope, to_shipment_draft(row, account_id), overrides
                )
        except ShipmentError as error:
            outcomes.append(Outcome(position, REJECTED, code="invalid_shipment", reason=str(error)))
            continue
        outcomes.append(Outcome(position, ACCEPTED, shipment_id=shipment.id))
    return outcomes


async def list_messages(
    session: AsyncSession,
    scope: TenantScope,
    *,
    statuses: Sequence[str],
    limit: int,
    after: tuple[dt.datetime, uuid.UUID] | None,
) -> list[IngestMessage]:
    """Newest first, keyset-paginated on (received_at, id)."""
    statement = scoped(select(IngestMessage), IngestMessage, scope)
    if statuses:
        statement = statement.where(IngestMessage.status.in_(statuses))
    if after is not None:
        received_at, message_id = after
        statement = statement.where(
            (IngestMessage.received_at < received_at)
            | ((IngestMessage.received_at == received_at) & (IngestMessage.id < message_id))
        )
    statement = statement.order_by(IngestMessage.received_at.desc(), IngestMessage.id.desc()).limit(limit)
    return list((await session.execute(statement)).scalars())


async def upsert_code_mapping(
    session: AsyncSession,
    scope: TenantScope,
    *,
    system: str,
    code: str,
    carrier_code: str | None,
    milestone: str | None,
    signal: str | None,
    raw_only: bool,
    description: str,
) -> CodeMappingRow:
    """Set this tenant's meaning of one source code (for all carriers, or one). Validated like the built-in
    rows; takes effect for new messages at once and for stored ones on replay."""
    validate_row(
        {
            "milestone": milestone,
            "signal": signal,
            "raw_only": "yes" if raw_only else "",
            "description": description,
        },
        f"{system}:{code}",
    )
    if not system.strip() or not code.strip():
        raise MappingError("system and code must not be empty")
    statement = scoped(select(CodeMappingRow), CodeMappingRow, scope).where(
        CodeMappingRow.system == system, CodeMappingRow.code == code
    )
    statement = statement.where(
        CodeMappingRow.carrier_code.is_(None)
        if carrier_code is None
        else CodeMappingRow.carrier_code == carrier_code
    )
    row = (await session.execute(statement)).scalar_one_or_none()
    if row is None:
        row = CodeMappingRow(tenant_id=scope.tenant_id, system=system, code=code, carrier_code=carrier_code)
        session.add(row)
    row.milestone, row.signal, row.raw_only, row.description = milestone, signal, raw_only, description
    await session.flush()
    return row
