"""The canonical tracking event every format adapter produces, and what a parse reports.

Adapters (``domain/tracking/formats/<format>.py``) are pure: bytes (or decoded JSON) in, a
:class:`ParsedMessage` out — no database, no clock of their own (``now`` is passed in). They keep every
source code raw in :class:`SourceCode`; turning codes into milestones and exception signals is the job of
the mapping tables (``domain/tracking/mapping.py``), which tenants may override per carrier.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Classifier(StrEnum):
    """What an event says about its time: a plan, an estimate, or something that happened."""

    PLANNED = "PLN"
    ESTIMATED = "EST"
    ACTUAL = "ACT"


class Signal(StrEnum):
    """Exception signals an event can carry besides (or instead of) a milestone."""

    DELAY = "DELAY"
    CUSTOMS_HOLD = "CUSTOMS_HOLD"
    DOCUMENTS_MISSING = "DOCUMENTS_MISSING"
    DAMAGE = "DAMAGE"
    LOSS = "LOSS"
    DELIVERY_FAILED = "DELIVERY_FAILED"
    ADDRESS_ISSUE = "ADDRESS_ISSUE"
    REFUSED = "REFUSED"
    RETURN_TO_SENDER = "RETURN_TO_SENDER"
    ROUTE_CHANGE = "ROUTE_CHANGE"
    CARRIER_ISSUE = "CARRIER_ISSUE"
    WEATHER = "WEATHER"
    PORT_CONGESTION = "PORT_CONGESTION"
    STRIKE = "STRIKE"
    EXTERNAL = "EXTERNAL"
    DATA_QUALITY = "DATA_QUALITY"


@dataclass(frozen=True, slots=True)
class SourceCode:
    """A status as the source wrote it, in the source's own code lists.

    ``system`` names the primary code list (``x12.status``, ``dcsa.transport``, ``epcis.bizstep``,
    ``aftership.subtag``, ``easypost.status`` ...); ``qualifier`` is an optional second code from the list
    ``qualifier_system`` that refines it (X12 AT7 reason ``x12.reason``, EPCIS ``epcis.disposition``,
    EasyPost ``easypost.status_detail``, DCSA delay reason ``smdg.delay``). Each list has a mapping file
    ``domain/tracking/mappings/<system>.csv``.
    """

    system: str
    code: str
    qualifier_system: str | None = None
    qualifier: str | None = None


@dataclass(frozen=True, slots=True)
class Place:
    locode: str | None = None
    name: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None
    postal_code: str | None = None
    facility_code: str | None = None


@dataclass(frozen=True, slots=True)
class CanonicalEvent:
    source: str  # the format: events, dcsa, x12, epcis, aftership, easypost, csv
    classifier: Classifier
    code: SourceCode
    occurred_at: dt.datetime  # aware, UTC
    references: tuple[tuple[str, str], ...]  # (ReferenceKind value, reference) pairs
    position: str  # where in the message this event came from, for errors and evidence
    source_event_id: str | None = None
    utc_offset_minutes: int | None = None  # the local offset the source gave, if any
    place: Place | None = None
    carrier_code: str | None = None
    updated_at: dt.datetime | None = None  # DCSA eventUpdatedDateTime: a later one replaces an earlier
    is_retracted: bool = False
    detail: Mapping[str, Any] = field(default_factory=dict)  # JSON-able extras: weight, vessel, voyage...


@dataclass(frozen=True, slots=True)
class ParseIssue:
    """Something wrong in a message: where (segment/line/JSON path), a stable code, and why."""

    position: str
    code: str
    reason: str
    fatal: bool = False  # True: the whole message (or transaction set) is rejected, not just one event


@dataclass
class ParsedMessage:
    events: list[CanonicalEvent] = field(default_factory=list)
    issues: list[ParseIssue] = field(default_factory=list)
    acknowledgment: bytes | None = None  # e.g. the X12 997 to answer with
    acknowledgment_media_type: str | None = None
    shipments: list[Mapping[str, Any]] = field(default_factory=list)  # bulk shipment rows (CSV)

    @property
    def rejected(self) -> bool:
        return any(issue.fatal for issue in self.issues)
