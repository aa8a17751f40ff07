"""X12 214 (Transportation Carrier Shipment Status Message) → canonical events, one per AT7.

Codes are kept raw: ``SourceCode("x12.status", AT7-01 or AT7-03, "x12.reason", AT7-02 or AT7-04)``; the
mapping tables turn them into milestones and signals. Only the classifier is decided here, because X12
carries plan/estimate/actual in the status code itself:

- EST for the estimate codes of element 1650 — ``AG`` Estimated Delivery, ``B6`` Estimated to Arrive at
  Carrier Terminal, ``C1`` Estimated to Depart Terminal Location, ``X2`` Estimated Date and/or Time of
  Arrival at Consignee's Location — and for ``AC`` Estimated Delivery Appointment (element 1652);
- PLN for the other appointment codes (AT7-03, element 1652: an appointment is a time agreed in advance),
  except ``X9``/``XA`` ("appointment secured on this date"), whose date is when the appointment was made:
  that happened, so ACT;
- ACT for every other status.

Time (AT7-05 date, AT7-06 time, AT7-07 time code):

- UT/GM and the numeric codes ``01``..``29`` are fixed UTC offsets; the standard and daylight codes (ES/ED,
  CS/CD, MS/MD, PS/PD, AS/AD, HS/HD, NS/ND, TS/TD) are fixed offsets too, whatever the date;
- the generic codes (ET, CT, MT, PT, AT, HT, NT, TT) follow daylight saving on the event's date: they
  resolve to an IANA zone (ET → America/New_York ...), or to the zone of the event's state/province when
  that zone has the same standard offset (MT in Arizona stays on standard time, CT in Saskatchewan too);
- LT (local time), or no time code at all, is local to the event's place (MS1): US states and Canadian
  provinces resolve to the zone most of their people live in (a small table below); elsewhere, or without a
  place, the time is taken as UTC with ``utc_offset_minutes=None`` and an ``x12.time_zone_unknown`` issue.

``occurred_at`` is UTC; ``utc_offset_minutes`` is the offset that applied, so ``occurred_at + offset`` is
the wall time the source wrote. A wall time that a daylight-saving change skips or repeats is flagged.
Actual events dated more than a day after ``now`` are dropped (``x12.event_in_future``); estimates and
appointments are about the future by nature and are kept.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from domain.shipments.models import ReferenceKind
from domain.tracking.canonical import CanonicalEvent, Classifier, ParseIssue, Place, SourceCode
from domain.tracking.formats.x12.tokenizer import Segment, SegmentNote, TransactionSet

SOURCE = "x12"
STATUS_SYSTEM = "x12.status"
REASON_SYSTEM = "x12.reason"
FUTURE_TOLERANCE = dt.timedelta(days=1)

ESTIMATED_STATUS_CODES = frozenset({"AG", "B6", "C1", "X2"})  # element 1650
ESTIMATED_APPOINTMENT_CODES = frozenset({"AC"})  # element 1652
ACTUAL_APPOINTMENT_CODES = frozenset({"X9", "XA"})  # the date the appointment was secured

# L11-02 / N9-01 reference qualifiers (element 128) that name a shipment reference we match on
REFERENCE_KINDS: dict[str, ReferenceKind] = {
    "BM": ReferenceKind.HOUSE_BL,  # Bill of Lading Number
    "MB": ReferenceKind.MASTER_BL,  # Master Bill of Lading
    "OB": ReferenceKind.MASTER_BL,  # Ocean Bill of Lading (issued by the ocean carrier)
    "BN": ReferenceKind.BOOKING,  # Booking Number
    "CN": ReferenceKind.PRO,  # Carrier's Reference Number (PRO/Invoice)
    "PO": ReferenceKind.CUSTOMER_REFERENCE,  # Purchase Order Number
    "CR": ReferenceKind.CUSTOMER_REFERENCE,  # Customer Reference Number
    "SI": ReferenceKind.CUSTOMER_REFERENCE,  # Shipper's Identifying Number for Shipment (SID)
    "97": ReferenceKind.TRACKING_NUMBER,  # Package Number
    "2I": ReferenceKind.TRACKING_NUMBER,  # Tracking Number
    "AW": ReferenceKind.AIR_WAYBILL,  # Air Waybill Number
}

WEIGHT_UNITS = {"K": "KG", "L": "LB"}  # element 188

# element 623: codes that state a fixed offset from UTC, in minutes
FIXED_OFFSETS: dict[str, int] = {
    "UT": 0,
    "GM": 0,
    "ES": -300,
    "ED": -240,
    "CS": -360,
    "CD": -300,
    "MS": -420,
    "MD": -360,
    "PS": -480,
    "PD": -420,
    "AS": -540,
    "AD": -480,
    "HS": -600,
    "HD": -540,
    "NS": -210,
    "ND": -150,
    "TS": -240,
    "TD": -180,
    **{f"{n:02d}": n * 60 for n in range(1, 13)},  # "Equivalent to ISO P01".."P12"
    **{f"{n:02d}": -(25 - n) * 60 for n in range(13, 25)},  # "Equivalent to ISO M12".."M01"
    "25": -150,  # M2:30
    "26": -210,  # M3:30
    "27": 330,  # P5:30
    "28": 570,  # P9:30
    "29": 630,  # P10:30
}
# element 623: codes naming a zone whose offset follows daylight saving on the date
GENERIC_ZONES: dict[str, str] = {
    "ET": "America/New_York",
    "CT": "America/Chicago",
    "MT": "America/Denver",
    "PT": "America/Los_Angeles",
    "AT": "America/Anchorage",
    "HT": "Pacific/Honolulu",
    "NT": "America/St_Johns",
    "TT": "America/Halifax",
}
LOCAL_TIME_CODES = frozenset({"", "LT"})

# The zone most people of each US state / Canadian province live in. States that span two zones (parts
# of TX, FL, ON, BC ...) get the majority's; a carrier that sends LT from the minority part is off by an
# hour, which is why LT is the time code we like least.
STATE_ZONES: dict[str, str] = {
    # United States
    "AL": "America/Chicago",
    "AK": "America/Anchorage",
    "AZ": "America/Phoenix",
    "AR": "America/Chicago",
    "CA": "America/Los_Angeles",
    "CO": "America/Denver",
    "CT": "America/New_York",
    "DE": "America/New_York",
    "DC": "America/New_York",
    "FL": "America/New_York",
    "GA": "America/New_York",
    "HI": "Pacific/Honolulu",
    "ID": "America/Boise",
    "IL": "America/Chicago",
    "IN": "America/Indiana/Indianapolis",
    "IA": "America/Chicago",
    "KS": "America/Chicago",
    "KY": "America/New_York",
    "LA": "America/Chicago",
    "ME": "America/New_York",
    "MD": "America/New_York",
    "MA": "America/New_York",
    "MI": "America/Detroit",
    "MN": "America/Chicago",
    "MS": "America/Chicago",
    "MO": "America/Chicago",
    "MT": "America/Denver",
    "NE": "America/Chicago",
    "NV": "America/Los_Angeles",
    "NH": "America/New_York",
    "NJ": "America/New_York",
    "NM": "America/Denver",
    "NY": "America/New_York",
    "NC": "America/New_York",
    "ND": "America/Chicago",
    "OH": "America/New_York",
    "OK": "America/Chicago",
    "OR": "America/Los_Angeles",
    "PA": "America/New_York",
    "RI": "America/New_York",
    "SC": "America/New_York",
    "SD": "America/Chicago",
    "TN": "America/Chicago",
    "TX": "America/Chicago",
    "UT": "America/Denver",
    "VT": "America/New_York",
    "VA": "America/New_York",
    "WA": "America/Los_Angeles",
    "WV": "America/New_York",
    "WI": "America/Chicago",
    "WY": "America/Denver",
    "PR": "America/Puerto_Rico",
    "VI": "America/St_Thomas",
    "GU": "Pacific/Guam",
    "AS": "Pacific/Pago_Pago",
    "MP": "Pacific/Saipan",
    # Canada
    "AB": "America/Edmonton",
    "BC": "America/Vancouver",
    "MB": "America/Winnipeg",
    "NB": "America/Moncton",
    "NL": "America/St_Johns",
    "NS": "America/Halifax",
    "NT": "America/Yellowknife",
    "NU": "America/Iqaluit",
    "ON": "America/Toronto",
    "PE": "America/Halifax",
    "QC": "America/Toronto",
    "SK": "America/Regina",
    "YT": "America/Whitehorse",
}
CANADIAN_PROVINCES = frozenset({"AB", "BC", "MB", "NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "SK", "YT"})
COUNTRIES = {"US": "US", "USA": "US", "CA": "CA", "CAN": "CA"}

_TIME = re.compile(r"(\d{2})(\d{2})(\d{2})?(\d{1,2})?")


@dataclass
class Parsed214:
    events: list[CanonicalEvent] = field(default_factory=list)
    issues: list[ParseIssue] = field(default_factory=list)
    notes: list[SegmentNote] = field(default_factory=list)
    fatal: bool = False


@dataclass
class _Status:
    at7: Segment
    index: int  # 1-based within its LX loop
    ms1: Segment | None = None
    ms2: Segment | None = None
    carton_references: list[tuple[str, str]] | None = None


@dataclass
class _Loop:
    lx: Segment | None
    ordinal: int
    statuses: list[_Status] = field(default_factory=list)
    references: list[tuple[str, str]] = field(default_factory=list)
    weight: dict[str, str] | None = None
    carton_references: list[tuple[str, str]] | None = None  # set once a CD3 opens a carton sub-loop

    @property
    def number(self) -> str:
        value = self.lx.get(1).strip() if self.lx is not None else ""
        return value or str(self.ordinal)


@dataclass
class _Header:
    b10: Segment | None = None
    references: list[tuple[str, str]] = field(default_factory=list)
    destination: dict[str, Any] | None = None


def parse_214(transaction_set: TransactionSet, *, now: dt.datetime) -> Parsed214:
    """The events of one 214 transaction set, with the issues (and 997 notes) it raised."""
    result = Parsed214()
    header = _Header()
    loops: list[_Loop] = []
    party: dict[str, Any] | None = None
    for segment in transaction_set.segments[1:-1]:
        tag = segment.tag
        loop = loops[-1] if loops else None
        if tag == "B10" and header.b10 is None:
            header.b10 = segment
        elif tag == "LX":
            loops.append(_Loop(lx=segment, ordinal=len(loops) + 1))
            party = None
        elif tag == "AT7":
            if loop is None:  # an AT7 outside an LX loop: read it as if the LX were there
                loop = _Loop(lx=None, ordinal=1)
                loops.append(loop)
            status = _Status(at7=segment, index=len(loop.statuses) + 1)
            if loop.carton_references is not None:
                status.carton_references = loop.carton_references
            loop.statuses.append(status)
        elif tag == "MS1" and loop is not None and loop.statuses:
            loop.statuses[-1].ms1 = segment
        elif tag == "MS2" and loop is not None and loop.statuses:
            loop.statuses[-1].ms2 = segment
        elif tag == "L11":
            reference = (segment.get(2).strip(), segment.get(1).strip())
            if not reference[1]:
                continue
            if loop is None:
                header.references.append(reference)
            elif loop.carton_references is not None:
                loop.carton_references.append(reference)
            else:
                loop.references.append(reference)
        elif tag == "AT8" and loop is not None:
            loop.weight = _weight(segment)
        elif tag == "CD3" and loop is not None:
            loop.carton_references = []
        elif tag == "N1" and loop is None:
            entity = segment.get(1).strip()  # ST ship to, CN consignee, SF ship from ...
            party = {"name": segment.get(2).strip()}
            if entity == "ST" or (entity == "CN" and header.destination is None):
                header.destination = party
        elif tag == "N3" and party is not None:
            party.setdefault("address", []).extend(v.strip() for v in segment.elements[:2] if v.strip())
        elif tag == "N4" and party is not None:
            for key, index in (("city", 1), ("state", 2), ("postal_code", 3), ("country", 4)):
                if segment.get(index).strip():
                    party[key] = segment.get(index).strip()

    if header.b10 is None:
        result.fatal = True
        result.notes.append(SegmentNote(tag="B10", position_in_set=2, segment_code="3"))
        result.issues.append(
            ParseIssue(
                position=transaction_set.segments[0].position(),
                code="x12.b10_missing",
                reason=f"transaction set {transaction_set.control_number} has no B10 (shipment "
                "identification): its events could not be matched to a shipment; the set is rejected",
                fatal=True,
            )
        )
        return result
    if not any(loop.statuses for loop in loops):
        result.issues.append(
            ParseIssue(
                position=transaction_set.segments[0].position(),
                code="x12.no_status",
                reason=f"transaction set {transaction_set.control_number} has no AT7 (shipment status)",
            )
        )
    context = _Context(transaction_set, header, now, result)
    for loop in loops:
        for status in loop.statuses:
            event = context.event(loop, status)
            if event is not None:
                result.events.append(event)
    return result


def _weight(segment: Segment) -> dict[str, str] | None:
    value = segment.get(3).strip()
    if not value:
        return None
    weight = {"value": value}
    unit = segment.get(2).strip()
    if unit:
        weight["unit"] = WEIGHT_UNITS.get(unit, unit)
    if segment.get(1).strip():
        weight["qualifier"] = segment.get(1).strip()
    if segment.get(4).strip():
        weight["pieces"] = segment.get(4).strip()
    return weight


def _references(pairs: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[list[str]]]:
    """Mapped (kind, value) references and the rest as raw (qualifier, value) pairs."""
    mapped: list[tuple[str, str]] = []
    other: list[list[str]] = []
    for qualifier, value in pairs:
        kind = REFERENCE_KINDS.get(qualifier)
        if kind is not None:
            if (kind.value, value) not in mapped:
                mapped.append((kind.value, value))
        elif [qualifier, value] not in other:
            other.append([qualifier, value])
    return mapped, other


def _place(ms1: Segment | None) -> Place | None:
    if ms1 is None:
        return None
    city, state, country = (ms1.get(i).strip() or None for i in (1, 2, 3))
    if city is None and state is None and country is None:
        return None
    return Place(city=city, state=state, country=country)


def zone_for_place(place: Place | None) -> str | None:
    """The IANA zone of a US state or Canadian province, when the place names one."""
    if place is None or place.state is None:
        return None
    state = place.state.upper()
    country = COUNTRIES.get((place.country or "").upper()) if place.country else None
    if place.country and country is None:
        return None  # another country: we keep no zone table for it
    if country == "CA" and state not in CANADIAN_PROVINCES:
        return None
    if country == "US" and state in CANADIAN_PROVINCES:
        return None
    return STATE_ZONES.get(state)


def _standard_offset(zone: ZoneInfo) -> dt.timedelta | None:
    return dt.datetime(2021, 1, 15, 12, tzinfo=zone).utcoffset()  # northern winter: no daylight saving


def _date(value: str) -> dt.date | None:
    if not re.fullmatch(r"\d{8}", value):
        return None
    try:
        return dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


def _time(value: str) -> dt.time | None:
    match = _TIME.fullmatch(value)
    if match is None or len(value) not in (4, 6, 7, 8):
        return None
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    fraction = match[4] or ""
    try:
        return dt.time(hour, minute, second, int(fraction.ljust(6, "0")) if fraction else 0)
    except ValueError:
        return None


@dataclass
class _Context:
    transaction_set: TransactionSet
    header: _Header
    now: dt.datetime
    result: Parsed214

    def issue(self, segment: Segment, element: int | None, code: str, reason: str) -> None:
        self.result.issues.append(ParseIssue(position=segment.position(element), code=code, reason=reason))

    def note(
        self, segment: Segment, element: int, reference: str, error: str, value: str | None = None
    ) -> None:
        self.result.notes.append(self.transaction_set.note(segment, "8", element, reference, error, value))

    def event(self, loop: _Loop, status: _Status) -> CanonicalEvent | None:
        at7 = status.at7
        code = self._code(at7)
        if code is None:
            return None
        status_code, reason, element = code
        when = self._when(at7, _place(status.ms1))
        if when is None:
            return None
        occurred_at, offset, detail = when
        if element == 1:
            classifier = Classifier.ESTIMATED if status_code in ESTIMATED_STATUS_CODES else Classifier.ACTUAL
        elif status_code in ESTIMATED_APPOINTMENT_CODES:
            classifier = Classifier.ESTIMATED
        elif status_code in ACTUAL_APPOINTMENT_CODES:
            classifier = Classifier.ACTUAL
        else:
            classifier = Classifier.PLANNED
        if classifier is Classifier.ACTUAL and occurred_at > self.now + FUTURE_TOLERANCE:
            self.issue(
                at7,
                5,
                "x12.event_in_future",
                f"status {status_code} happened at {occurred_at.isoformat()}, more than a day after now "
                f"({self.now.astimezone(dt.UTC).isoformat()}); the event is dropped",
            )
            return None
        b10 = self.header.b10
        assert b10 is not None
        shipment_id, carrier_reference = b10.get(2).strip(), b10.get(1).strip()
        pairs: list[tuple[str, str]] = []
        if shipment_id:
            pairs.append(("2I", shipment_id))
        if carrier_reference and carrier_reference != shipment_id:
            pairs.append(("CN", carrier_reference))
        pairs += self.header.references + loop.references + (status.carton_references or [])
        references, other_references = _references(pairs)
        detail["status_element"] = f"AT70{element}"
        detail["lx"] = loop.number
        if loop.weight is not None:
            detail["weight"] = dict(loop.weight)
        if self.header.destination is not None:
            detail["destination"] = {
                key: list(value) if isinstance(value, list) else value
                for key, value in self.header.destination.items()
                if value
            }
        if other_references:
            detail["other_references"] = other_references
        if status.ms2 is not None and status.ms2.get(2).strip():
            detail["equipment"] = {
                k: v
                for k, v in (
                    ("owner", status.ms2.get(1).strip()),
                    ("number", status.ms2.get(2).strip()),
                    ("type", status.ms2.get(3).strip()),
                )
                if v
            }
        interchange, group = self.transaction_set.interchange, self.transaction_set.group
        # Where in which interchange this status sat. Not the event's identity: a carrier resending the same
        # status in a new interchange must deduplicate, so the dedup key comes from the content instead.
        detail["x12_position_id"] = ":".join(
            (
                interchange.sender,
                interchange.control_number,
                group.control_number,
                self.transaction_set.control_number,
                loop.number,
                str(status.index),
            )
        )
        return CanonicalEvent(
            source=SOURCE,
            classifier=classifier,
            code=SourceCode(STATUS_SYSTEM, status_code, REASON_SYSTEM, reason),
            occurred_at=occurred_at,
            references=tuple(references),
            position=at7.position(),
            utc_offset_minutes=offset,
            place=_place(status.ms1),
            carrier_code=b10.get(3).strip() or None,
            detail=detail,
        )

    def _code(self, at7: Segment) -> tuple[str, str | None, int] | None:
        """(status, reason, 1 or 3) per the AT7 syntax rules, or None when the status cannot be known."""
        status, status_reason = at7.get(1).strip(), at7.get(2).strip()
        appointment, appointment_reason = at7.get(3).strip(), at7.get(4).strip()
        if status and appointment:
            self.note(at7, 3, "1652", "10", appointment)
            self.issue(
                at7,
                3,
                "x12.at7_status_conflict",
                f"AT7 has both a shipment status ({status}) and an appointment status ({appointment}); "
                "exactly one is allowed, the event is dropped",
            )
            return None
        if not status and not appointment:
            self.note(at7, 1, "1650", "2")
            self.issue(
                at7,
                1,
                "x12.at7_status_missing",
                "AT7 has neither a shipment status (AT7-01) nor an appointment status (AT7-03); the event is "
                "dropped",
            )
            return None
        if status:
            if not status_reason:
                self.note(at7, 2, "1651", "2")
                self.issue(
                    at7, 2, "x12.at7_reason_missing", f"AT7-01 {status} comes without its reason AT7-02"
                )
            return status, status_reason or None, 1
        if not appointment_reason:
            self.note(at7, 4, "1651", "2")
            self.issue(
                at7, 4, "x12.at7_reason_missing", f"AT7-03 {appointment} comes without its reason AT7-04"
            )
        return appointment, appointment_reason or None, 3

    def _when(
        self, at7: Segment, place: Place | None
    ) -> tuple[dt.datetime, int | None, dict[str, Any]] | None:
        date_value, time_value, time_code = (at7.get(i).strip() for i in (5, 6, 7))
        detail: dict[str, Any] = {}
        if not date_value:
            self.note(at7, 5, "373", "1")
            self.issue(at7, 5, "x12.at7_date_missing", "AT7 has no date (AT7-05); the event is dropped")
            return None
        date = _date(date_value)
        if date is None:
            self.note(at7, 5, "373", "8", date_value)
            self.issue(
                at7, 5, "x12.invalid_date", f"{date_value!r} is not a date (CCYYMMDD); the event is dropped"
            )
            return None
        time = dt.time(0)
        if time_value:
            parsed = _time(time_value)
            if parsed is None:
                self.note(at7, 6, "337", "9", time_value)
                self.issue(
                    at7,
                    6,
                    "x12.invalid_time",
                    f"{time_value!r} is not a time (HHMM[SS]); the event is dropped",
                )
                return None
            time = parsed
        else:
            detail["time_precision"] = "date"
            if time_code:
                self.note(at7, 6, "337", "2")
                self.issue(
                    at7,
                    6,
                    "x12.at7_time_missing",
                    f"AT7 has a time code ({time_code}) but no time (AT7-06); the time is taken as 00:00",
                )
        wall = dt.datetime.combine(date, time)
        if time_code:
            detail["time_code"] = time_code
        if time_code in FIXED_OFFSETS:
            offset = FIXED_OFFSETS[time_code]
            occurred_at = wall.replace(tzinfo=dt.timezone(dt.timedelta(minutes=offset))).astimezone(dt.UTC)
            return occurred_at, offset, detail
        place_zone = zone_for_place(place)
        zone_name: str | None
        if time_code in GENERIC_ZONES:
            zone_name = GENERIC_ZONES[time_code]
            if place_zone is not None and _standard_offset(ZoneInfo(place_zone)) == _standard_offset(
                ZoneInfo(zone_name)
            ):
                zone_name = place_zone
        else:
            if time_code not in LOCAL_TIME_CODES:
                self.note(at7, 7, "623", "7", time_code)
                self.issue(
                    at7,
                    7,
                    "x12.time_code_unknown",
                    f"{time_code!r} is not an X12 time code; the time is read as local to the event's place",
                )
            zone_name = place_zone
        if zone_name is None:
            where = "no place (MS1)" if place is None else "a place outside the US and Canada or no state"
            self.issue(
                at7,
                7,
                "x12.time_zone_unknown",
                f"the time is local ({time_code or 'no time code'}) and the event has {where} to find its "
                "time zone; it is taken as UTC",
            )
            return wall.replace(tzinfo=dt.UTC), None, detail
        zone = ZoneInfo(zone_name)
        detail["time_zone"] = zone_name
        local = wall.replace(tzinfo=zone)  # fold=0: the earlier of two, the offset before a gap
        utc_offset = local.utcoffset()
        assert utc_offset is not None
        if wall.replace(tzinfo=zone, fold=1).utcoffset() != utc_offset:
            if local.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None) == wall:
                code, reason = (
                    "x12.local_time_ambiguous",
                    "happens twice (clocks go back); the first is taken",
                )
            else:
                code, reason = "x12.local_time_nonexistent", "does not exist (clocks go forward)"
            self.issue(at7, 6, code, f"{wall.isoformat()} in {zone_name} {reason}")
        return local.astimezone(dt.UTC), int(utc_offset.total_seconds() // 60), detail
