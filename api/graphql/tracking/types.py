from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

import strawberry

from api.graphql.relay import Node, PageInfo, to_global_id
from api.graphql.shipments.types import MilestoneCode
from domain.shipments.models import MilestoneCode as ShipmentMilestoneCode
from domain.tracking import models
from domain.tracking.canonical import Classifier

IngestStatus = strawberry.enum(
    models.IngestStatus, name="IngestStatus", description="What became of a stored ingest message."
)


@strawberry.type(description="A problem found in a message: where, a stable code, and why.")
class IngestIssue:
    position: str = strawberry.field(description="Segment, line or JSON path.")
    code: str = strawberry.field(description="Stable machine-readable code.")
    reason: str = strawberry.field(description="What is wrong, in words.")
    fatal: bool = strawberry.field(description="Whether it rejected the message (or transaction set).")


@strawberry.type(description="What happened to one event (or CSV row) of a message.")
class IngestEventResult:
    position: str = strawberry.field(description="Where in the message the event was.")
    outcome: str = strawberry.field(description="accepted, parked, duplicate, updated or rejected.")
    event_id: strawberry.ID | None = strawberry.field(
        description="The stored tracking event, if any (a `TrackingEvent` id, as on its shipment's `events`)."
    )
    shipment_id: strawberry.ID | None = strawberry.field(description="The shipment it was matched to.")
    code: str | None = strawberry.field(description="Why it was rejected (stable code).")
    reason: str | None = strawberry.field(description="Why it was rejected (words).")
    signals: list[str] = strawberry.field(description="Exception signals the event carries.")


def _result(data: dict[str, Any]) -> IngestEventResult:
    shipment = data.get("shipment_id")
    return IngestEventResult(
        position=data["position"],
        outcome=data["outcome"],
        event_id=to_global_id("TrackingEvent", uuid.UUID(data["event_id"])) if data.get("event_id") else None,
        shipment_id=to_global_id("Shipment", uuid.UUID(shipment)) if shipment else None,
        code=data.get("code"),
        reason=data.get("reason"),
        signals=list(data.get("signals", [])),
    )


EventClassifier = strawberry.enum(
    Classifier,
    name="EventClassifier",
    description="What an event says about its time: PLANNED (a plan), ESTIMATED, or ACTUAL (it happened).",
)


@strawberry.type(description="A tracking event as a source sent it, mapped to the canonical vocabulary.")
class TrackingEvent(Node):
    row: strawberry.Private[models.TrackingEvent]

    @strawberry.field(description="Who sent it: a format or carrier (dcsa, x12, epcis, aftership, api, ...).")
    def source(self) -> str:
        return self.row.source

    @strawberry.field(description="The source's own id for the event, when it has one.")
    def source_event_id(self) -> str | None:
        return self.row.source_event_id

    @strawberry.field(description="Plan, estimate or actual.")
    def classifier(self) -> EventClassifier:  # type: ignore[valid-type]
        return Classifier(self.row.classifier)

    @strawberry.field(description="The canonical milestone it maps to; null for a code kept raw only.")
    def milestone_code(self) -> MilestoneCode | None:  # type: ignore[valid-type]
        code = self.row.milestone_code
        return ShipmentMilestoneCode(code) if code is not None else None

    @strawberry.field(description="The status code exactly as the source sent it.")
    def raw_code(self) -> str:
        return self.row.raw_code

    @strawberry.field(description="The source's reason code, if any.")
    def raw_reason(self) -> str | None:
        return self.row.raw_reason

    @strawberry.field(description="Where it happened (UN/LOCODE).")
    def location_locode(self) -> str | None:
        return self.row.location_locode

    @strawberry.field(description="The place's name as the source gave it.")
    def location_name(self) -> str | None:
        return self.row.location_name

    @strawberry.field(description="When it happened (or is planned or expected to), in UTC.")
    def occurred_at(self) -> dt.datetime:
        return self.row.occurred_at

    @strawberry.field(description="The local offset from UTC at the place, in minutes, when known.")
    def utc_offset_minutes(self) -> int | None:
        return self.row.utc_offset_minutes

    @strawberry.field(description="When Milepost received it.")
    def received_at(self) -> dt.datetime:
        return self.row.received_at

    @strawberry.field(description="The carrier the source names, if any.")
    def carrier_code(self) -> str | None:
        return self.row.carrier_code

    @strawberry.field(description="Exception signals it carries (e.g. customs_hold, damage).")
    def signals(self) -> list[str]:
        return list(self.row.signals)

    @strawberry.field(description="Codes no mapping knew: stored, flagged, never applied to the timeline.")
    def unknown_codes(self) -> list[str]:
        return list(self.row.unknown_codes)

    @strawberry.field(description="Withdrawn by its source (a DCSA retraction); no longer on the timeline.")
    def retracted(self) -> bool:
        return self.row.is_retracted


def tracking_event_node(row: models.TrackingEvent) -> TrackingEvent:
    return TrackingEvent(id=to_global_id("TrackingEvent", row.id), row=row)


@strawberry.type(description="A message as received on an ingest endpoint or by `milepost import`.")
class IngestMessage(Node):
    row: strawberry.Private[models.IngestMessage]

    @strawberry.field(description="The format it was sent as.")
    def format(self) -> str:
        return self.row.format

    @strawberry.field(description="Accepted, partially accepted, rejected or just received.")
    def status(self) -> IngestStatus:  # type: ignore[valid-type]
        return models.IngestStatus(self.row.status)

    @strawberry.field(description="When it arrived.")
    def received_at(self) -> dt.datetime:
        return self.row.received_at

    @strawberry.field(description="When it was last processed.")
    def processed_at(self) -> dt.datetime | None:
        return self.row.processed_at

    @strawberry.field(description="Size of the raw body in bytes.")
    def size_bytes(self) -> int:
        return self.row.size_bytes

    @strawberry.field(description="SHA-256 of the raw body (hex).")
    def sha256(self) -> str:
        return self.row.sha256

    @strawberry.field(description="How often it was processed (1 + replays).")
    def attempts(self) -> int:
        return self.row.attempts

    @strawberry.field(description="Events (and rows) the message held.")
    def event_count(self) -> int:
        return self.row.event_count

    @strawberry.field(description="Events stored and matched to a shipment.")
    def accepted_count(self) -> int:
        return self.row.accepted_count

    @strawberry.field(description="Events stored but waiting for their shipment.")
    def parked_count(self) -> int:
        return self.row.parked_count

    @strawberry.field(description="Events already known.")
    def duplicate_count(self) -> int:
        return self.row.duplicate_count

    @strawberry.field(description="Events refused, each with its reason in `results`.")
    def rejected_count(self) -> int:
        return self.row.rejected_count

    @strawberry.field(description="Problems found while parsing.")
    def issues(self) -> list[IngestIssue]:
        return [IngestIssue(**issue) for issue in self.row.errors]

    @strawberry.field(description="Per-event outcomes, in message order (at most `first`).")
    def results(self, first: int = 100) -> list[IngestEventResult]:
        return [_result(data) for data in self.row.results[: max(0, min(first, 10_000))]]

    @strawberry.field(description="The X12 997 we answered with, if any.")
    def acknowledgment(self) -> str | None:
        ack = self.row.acknowledgment
        return ack.decode("utf-8", "replace") if ack is not None else None


def ingest_message_node(row: models.IngestMessage) -> IngestMessage:
    return IngestMessage(id=to_global_id("IngestMessage", row.id), row=row)


@strawberry.type(description="An ingest message in a connection.")
class IngestMessageEdge:
    cursor: str = strawberry.field(description="Opaque position; pass as `after`.")
    node: IngestMessage = strawberry.field(description="The message.")


@strawberry.type(description="Ingest messages, newest first.")
class IngestMessageConnection:
    edges: list[IngestMessageEdge] = strawberry.field(description="This page's messages.")
    page_info: PageInfo = strawberry.field(description="Pagination state.")


@strawberry.type(description="A tenant's meaning for one source code.")
class CodeMapping:
    system: str = strawberry.field(description="The code list, e.g. x12.status or dcsa.transport.")
    code: str = strawberry.field(description="The code as the source writes it.")
    carrier_code: str | None = strawberry.field(description="Only for this carrier; null for all.")
    milestone: str | None = strawberry.field(description="Canonical milestone it advances.")
    signal: str | None = strawberry.field(description="Exception signal it carries.")
    raw_only: bool = strawberry.field(description="Kept raw on purpose: neither milestone nor signal.")
    description: str = strawberry.field(description="What the code means.")


@strawberry.input(description="A tenant's meaning for one source code; replaces an earlier one.")
class CodeMappingInput:
    system: str = strawberry.field(description="The code list, e.g. x12.status.")
    code: str = strawberry.field(description="The code as the source writes it.")
    carrier_code: str | None = strawberry.field(default=None, description="Only for this carrier.")
    milestone: str | None = strawberry.field(default=None, description="Canonical milestone to advance.")
    signal: str | None = strawberry.field(default=None, description="Exception signal to raise.")
    raw_only: bool = strawberry.field(default=False, description="Keep raw: neither milestone nor signal.")
    description: str = strawberry.field(default="", description="What the code means.")


@strawberry.type(description="The message was processed again.")
class ReplayIngestMessageSuccess:
    ingest_message: IngestMessage = strawberry.field(description="The message with its new results.")


@strawberry.type(description="No such object exists for you.")
class NotFoundError:
    message: str = strawberry.field(description="What was not found.")


@strawberry.type(description="An argument was refused; `field` names it.")
class InvalidInputError:
    field: str = strawberry.field(description="The offending input field.")
    message: str = strawberry.field(description="Why it was refused.")


@strawberry.type(description="The mapping was saved.")
class UpsertCodeMappingSuccess:
    mapping: CodeMapping = strawberry.field(description="The saved mapping.")


ReplayIngestMessagePayload = Annotated[
    ReplayIngestMessageSuccess | NotFoundError,
    strawberry.union("ReplayIngestMessagePayload", description="The replayed message, or why not."),
]
UpsertCodeMappingPayload = Annotated[
    UpsertCodeMappingSuccess | InvalidInputError,
    strawberry.union("UpsertCodeMappingPayload", description="The saved mapping, or why not."),
]
