"""Tracking aggregators: AfterShip (v4 tracking webhooks and responses) and EasyPost (tracker events).

Both deliver the whole tracking history of one parcel each time; every checkpoint / tracking detail becomes
an ACT event with the vendor's status code kept raw (``aftership.subtag``; ``easypost.status`` refined by
``easypost.status_detail``), and the vendor's delivery estimate becomes an EST event of its own code list
(``aftership.expected_delivery``, ``easypost.est_delivery_date``), each mapped to ``DELIVERED``.
Re-delivered checkpoints get the same ``source_event_id`` (the vendor's id, or a hash of what the
checkpoint says), so deduplication makes them one event.

Vendor payloads are read leniently: a checkpoint that cannot be used is skipped with a non-fatal issue,
descriptive text that is too long is cut (with an issue), and only a payload with no tracking number or no
recognisable shape is rejected.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from domain.shipments.models import ReferenceKind
from domain.tracking.canonical import CanonicalEvent, Classifier, ParsedMessage, ParseIssue, Place, SourceCode
from domain.tracking.formats.canonical_json import (
    CONTROL,
    MAX_CODE,
    MAX_EVENT_ID,
    MAX_REFERENCE,
    Timestamp,
    TimestampError,
    check_event_time,
    decode_json,
    json_type,
    parse_timestamp,
)

AFTERSHIP = "aftership"
AFTERSHIP_SUBTAG = "aftership.subtag"
AFTERSHIP_EXPECTED_DELIVERY = "aftership.expected_delivery"
EASYPOST = "easypost"
EASYPOST_STATUS = "easypost.status"
EASYPOST_STATUS_DETAIL = "easypost.status_detail"
EASYPOST_EST_DELIVERY = "easypost.est_delivery_date"

MAX_CHECKPOINTS = 1000
MAX_TEXT = 1024  # messages and descriptions: longer ones are cut, not refused
MAX_PLACE_FIELD = 256
MAX_VENDOR_CARRIER = 64  # vendor carrier names/slugs ("postnl-3s", "USPS"); our carrier table maps them


@dataclass
class _Reader:
    """Lenient field access for one vendor payload, recording what it had to skip or cut."""

    issues: list[ParseIssue] = field(default_factory=list)

    def issue(self, position: str, code: str, reason: str, *, fatal: bool = False) -> None:
        self.issues.append(ParseIssue(position, code, reason, fatal=fatal))

    def identifier(self, container: Mapping[str, Any], key: str, position: str, limit: int) -> str | None:
        """A code or id: a non-blank string within ``limit`` characters, else ``None`` with an issue."""
        value = container.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            self.issue(_path(position, key), "wrong_type", f"must be a string, got {json_type(value)}")
            return None
        text = value.strip()
        if len(text) > limit:
            self.issue(_path(position, key), "too_long", f"{len(text)} characters, more than {limit}")
            return None
        if CONTROL.search(text):
            self.issue(_path(position, key), "control_character", "contains a control character")
            return None
        return text or None

    def text(self, container: Mapping[str, Any], key: str, position: str, limit: int) -> str | None:
        """Descriptive text: kept, but cut to ``limit`` characters (with an issue) and without NULs."""
        value = container.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.issue(_path(position, key), "wrong_type", f"must be a string, got {json_type(value)}")
            return None
        text = value.replace("\x00", "").strip()
        if len(text) > limit:
            self.issue(_path(position, key), "truncated", f"{len(text)} characters, cut to {limit}")
            text = text[:limit]
        return text or None

    def time(self, container: Mapping[str, Any], key: str, position: str) -> Timestamp | None:
        value = container.get(key)
        where = _path(position, key)
        if value is None or value == "":
            self.issue(where, "missing", "is required")
            return None
        if not isinstance(value, str):
            self.issue(where, "wrong_type", f"must be a string, got {json_type(value)}")
            return None
        try:
            stamp = parse_timestamp(value.strip()[:64], allow_naive=True)
        except TimestampError as error:
            self.issue(where, "invalid_time", str(error))
            return None
        if stamp.offset_minutes is None:
            self.issue(where, "no_utc_offset", f"{value!r} has no UTC offset; taken as UTC")
        return stamp

    def within_time_window(
        self, classifier: Classifier, at: dt.datetime, position: str, now: dt.datetime
    ) -> bool:
        problem = check_event_time(classifier, at, now)
        if problem is not None:
            self.issue(position, *problem)
        return problem is None


def _path(base: str, key: str) -> str:
    return key if base == "$" else f"{base}.{key}"


def _digest(*parts: str | None) -> str:
    material = "\x1f".join(part or "" for part in parts)
    return hashlib.sha256(material.encode()).hexdigest()


def _decode(document: Any) -> tuple[dict[str, Any] | None, ParsedMessage | None]:
    value, issue = decode_json(document)
    if issue is not None:
        return None, ParsedMessage(issues=[issue])
    if not isinstance(value, dict):
        message = ParsedMessage(
            issues=[
                ParseIssue("$", "wrong_type", f"must be a JSON object, got {json_type(value)}", fatal=True)
            ]
        )
        return None, message
    return value, None


def _list(reader: _Reader, container: Mapping[str, Any], key: str, position: str) -> list[Any] | None:
    value = container.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        reader.issue(
            _path(position, key), "wrong_type", f"must be an array, got {json_type(value)}", fatal=True
        )
        return None
    if len(value) > MAX_CHECKPOINTS:
        reader.issue(
            _path(position, key), "too_many", f"{len(value)} entries, more than {MAX_CHECKPOINTS}", fatal=True
        )
        return None
    return value


# --- AfterShip ----------------------------------------------------------------------------------------------


def _aftership_tracking(document: dict[str, Any]) -> tuple[Any, str]:
    # v4 webhook: {"msg": tracking}; GET /trackings/:id (v4): {"data": {"tracking": tracking}};
    # newer API versions answer {"data": tracking}
    if "msg" in document:
        return document["msg"], "msg"
    data = document.get("data")
    if isinstance(data, dict) and "tracking" in data:
        return data["tracking"], "data.tracking"
    if isinstance(data, dict) and "tracking_number" in data:
        return data, "data"
    return None, "$"


def parse_aftership(document: Any, *, now: dt.datetime) -> ParsedMessage:
    """Parse an AfterShip tracking webhook (``{"msg": ...}``) or tracking response (``{"data": ...}``)."""
    payload, failed = _decode(document)
    if payload is None:
        assert failed is not None
        return failed
    tracking, root = _aftership_tracking(payload)
    if not isinstance(tracking, dict):
        reason = (
            'expected an AfterShip tracking: {"msg": {...}} or {"data": {"tracking": {...}}}'
            if tracking is None
            else f"the tracking must be an object, got {json_type(tracking)}"
        )
        return ParsedMessage(issues=[ParseIssue(root, "wrong_shape", reason, fatal=True)])

    reader = _Reader()
    tracking_number = reader.identifier(tracking, "tracking_number", root, MAX_REFERENCE)
    if tracking_number is None:
        if not any(issue.position == f"{root}.tracking_number" for issue in reader.issues):
            reader.issue(f"{root}.tracking_number", "missing", "is required")
        return ParsedMessage(issues=[_as_fatal(issue) for issue in reader.issues])
    slug = reader.identifier(tracking, "slug", root, MAX_VENDOR_CARRIER)
    references: list[tuple[str, str]] = [(ReferenceKind.TRACKING_NUMBER.value, tracking_number)]
    order_id = reader.identifier(tracking, "order_id", root, MAX_REFERENCE)
    if order_id is not None:
        references.append((ReferenceKind.CUSTOMER_REFERENCE.value, order_id))
    signed_by = reader.text(tracking, "signed_by", root, MAX_PLACE_FIELD)

    checkpoints = _list(reader, tracking, "checkpoints", root)
    if checkpoints is None:
        return ParsedMessage(issues=reader.issues)
    parsed = ParsedMessage()
    for index, checkpoint in enumerate(checkpoints):
        position = f"{root}.checkpoints[{index}]"
        if not isinstance(checkpoint, dict):
            reader.issue(
                position, "wrong_type", f"a checkpoint must be an object, got {json_type(checkpoint)}"
            )
            continue
        event = _aftership_checkpoint(reader, checkpoint, position, tracking_number, slug, references, now)
        if event is not None:
            if signed_by and event.code.code.startswith("Delivered_"):
                event = _with_detail(event, signed_by=signed_by)
            parsed.events.append(event)

    estimate = _aftership_expected_delivery(reader, tracking, root, tracking_number, slug, references, now)
    if estimate is not None:
        parsed.events.append(estimate)
    parsed.issues = reader.issues
    return parsed


def _aftership_checkpoint(
    reader: _Reader,
    checkpoint: Mapping[str, Any],
    position: str,
    tracking_number: str,
    slug: str | None,
    references: list[tuple[str, str]],
    now: dt.datetime,
) -> CanonicalEvent | None:
    issues_before = len(reader.issues)
    subtag = reader.identifier(checkpoint, "subtag", position, MAX_CODE)
    tag = reader.identifier(checkpoint, "tag", position, MAX_CODE)
    if len(reader.issues) > issues_before:
        return None  # a subtag or tag that is there but unreadable is not replaced by a guess
    if subtag is None:
        if tag is None:
            reader.issue(f"{position}.subtag", "missing", "a checkpoint needs a subtag (or at least a tag)")
            return None
        # old checkpoints carry only the tag; keep it raw under the subtag list, where it has no row, so it
        # is flagged as unknown instead of being guessed into a subtag
        reader.issue(f"{position}.subtag", "missing", f"no subtag; tag {tag!r} kept as the code")
        subtag = tag
    stamp = reader.time(checkpoint, "checkpoint_time", position)
    if stamp is None:
        return None
    if not reader.within_time_window(Classifier.ACTUAL, stamp.at, f"{position}.checkpoint_time", now):
        return None

    location = reader.text(checkpoint, "location", position, MAX_PLACE_FIELD)
    city = reader.text(checkpoint, "city", position, MAX_PLACE_FIELD)
    state = reader.text(checkpoint, "state", position, MAX_PLACE_FIELD)
    country = reader.identifier(checkpoint, "country_iso3", position, 3) or reader.identifier(
        checkpoint, "country_region", position, 3
    )
    postal_code = reader.text(checkpoint, "zip", position, MAX_PLACE_FIELD)
    place = None
    if any((location, city, state, country, postal_code)):
        place = Place(name=location, city=city, state=state, country=country, postal_code=postal_code)

    checkpoint_slug = reader.identifier(checkpoint, "slug", position, MAX_VENDOR_CARRIER) or slug
    event_id = reader.identifier(checkpoint, "id", position, MAX_EVENT_ID)
    if event_id is None:
        event_id = _digest(
            checkpoint_slug,
            tracking_number,
            stamp.at.isoformat(),
            subtag,
            location,
            city,
            state,
            country,
            postal_code,
        )
    detail = {
        key: value
        for key, value in (
            ("message", reader.text(checkpoint, "message", position, MAX_TEXT)),
            ("tag", tag),
            ("subtag_message", reader.text(checkpoint, "subtag_message", position, MAX_PLACE_FIELD)),
            ("slug", checkpoint_slug),
        )
        if value is not None
    }
    return CanonicalEvent(
        source=AFTERSHIP,
        classifier=Classifier.ACTUAL,
        code=SourceCode(AFTERSHIP_SUBTAG, subtag),
        occurred_at=stamp.at,
        references=tuple(references),
        position=position,
        source_event_id=event_id,
        utc_offset_minutes=stamp.offset_minutes,
        place=place,
        carrier_code=checkpoint_slug,
        detail=detail,
    )


def _aftership_expected_delivery(
    reader: _Reader,
    tracking: Mapping[str, Any],
    root: str,
    tracking_number: str,
    slug: str | None,
    references: list[tuple[str, str]],
    now: dt.datetime,
) -> CanonicalEvent | None:
    # documented formats: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS, or YYYY-MM-DDTHH:MM:SS+TIMEZONE
    value = tracking.get("expected_delivery")
    position = f"{root}.expected_delivery"
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        reader.issue(position, "wrong_type", f"must be a string, got {json_type(value)}")
        return None
    try:
        stamp = parse_timestamp(value.strip()[:64], allow_naive=True, allow_date_only=True)
    except TimestampError as error:
        reader.issue(position, "invalid_time", str(error))
        return None
    detail: dict[str, Any] = {"expected_delivery": value.strip()}
    if stamp.date_only:
        # a day, not an instant: the end of that day is what "delivered on that day" promises at the latest
        stamp = Timestamp(stamp.at + dt.timedelta(days=1, seconds=-1), None, date_only=True)
        detail["precision"] = "date"
        reader.issue(position, "no_utc_offset", f"{value!r} is a date; taken as the end of that day in UTC")
    elif stamp.offset_minutes is None:
        reader.issue(position, "no_utc_offset", f"{value!r} has no UTC offset; taken as UTC")
    if not reader.within_time_window(Classifier.ESTIMATED, stamp.at, position, now):
        return None
    return CanonicalEvent(
        source=AFTERSHIP,
        classifier=Classifier.ESTIMATED,
        code=SourceCode(AFTERSHIP_EXPECTED_DELIVERY, "expected_delivery"),
        occurred_at=stamp.at,
        references=tuple(references),
        position=position,
        source_event_id=_digest(slug, tracking_number, "expected_delivery", stamp.at.isoformat()),
        utc_offset_minutes=stamp.offset_minutes,
        carrier_code=slug,
        detail=detail,
    )


# --- EasyPost -----------------------------------------------------------------------------------------------


def parse_easypost(document: Any, *, now: dt.datetime) -> ParsedMessage:
    """Parse an EasyPost ``Event`` webhook (``tracker.created`` / ``tracker.updated``) or a bare ``Tracker``.

    Events about other objects (batches, refunds, ...) are acknowledged with a non-fatal issue and no
    events: an EasyPost endpoint receives every event type of the account.
    """
    payload, failed = _decode(document)
    if payload is None:
        assert failed is not None
        return failed
    tracker: Any = payload
    root = "$"
    if payload.get("object") == "Event":
        description = payload.get("description")
        if not (isinstance(description, str) and description.startswith("tracker.")):
            shown = repr(description) if isinstance(description, str) else f"of type {json_type(description)}"
            issue = ParseIssue(
                "description", "not_tracking", f"event {shown} is not about a tracker; ignored"
            )
            return ParsedMessage(issues=[issue])
        tracker, root = payload.get("result"), "result"
    if not isinstance(tracker, dict) or tracker.get("object") != "Tracker":
        reason = (
            f"the event result must be a Tracker object, got {json_type(tracker)}"
            if root == "result"
            else 'expected an EasyPost Event {"object": "Event", ...} or a Tracker {"object": "Tracker", ...}'
        )
        return ParsedMessage(issues=[ParseIssue(root, "wrong_shape", reason, fatal=True)])

    reader = _Reader()
    tracking_code = reader.identifier(tracker, "tracking_code", root, MAX_REFERENCE)
    if tracking_code is None:
        if not reader.issues:
            reader.issue(_path(root, "tracking_code"), "missing", "is required")
        return ParsedMessage(issues=[_as_fatal(issue) for issue in reader.issues])
    carrier = reader.identifier(tracker, "carrier", root, MAX_VENDOR_CARRIER)
    references = ((ReferenceKind.TRACKING_NUMBER.value, tracking_code),)
    tracker_detail = {
        key: value
        for key, value in (
            ("tracker_id", reader.identifier(tracker, "id", root, MAX_EVENT_ID)),
            ("shipment_id", reader.identifier(tracker, "shipment_id", root, MAX_EVENT_ID)),
        )
        if value is not None
    }
    signed_by = reader.text(tracker, "signed_by", root, MAX_PLACE_FIELD)

    details = _list(reader, tracker, "tracking_details", root)
    if details is None:
        return ParsedMessage(issues=reader.issues)
    parsed = ParsedMessage()
    for index, detail in enumerate(details):
        position = _path(root, f"tracking_details[{index}]")
        if not isinstance(detail, dict):
            reader.issue(
                position, "wrong_type", f"a tracking detail must be an object, got {json_type(detail)}"
            )
            continue
        event = _easypost_detail(
            reader, detail, position, tracking_code, carrier, references, tracker_detail, now
        )
        if event is not None:
            if signed_by and event.code.code == "delivered":
                event = _with_detail(event, signed_by=signed_by)
            parsed.events.append(event)

    if tracker.get("est_delivery_date") not in (None, ""):
        estimate = _easypost_estimate(reader, tracker, root, tracking_code, carrier, references, now)
        if estimate is not None:
            parsed.events.append(estimate)
    parsed.issues = reader.issues
    return parsed


def _easypost_detail(
    reader: _Reader,
    detail: Mapping[str, Any],
    position: str,
    tracking_code: str,
    carrier: str | None,
    references: tuple[tuple[str, str], ...],
    tracker_detail: Mapping[str, str],
    now: dt.datetime,
) -> CanonicalEvent | None:
    status = reader.identifier(detail, "status", position, MAX_CODE)
    if status is None:
        if not any(issue.position == f"{position}.status" for issue in reader.issues):
            reader.issue(f"{position}.status", "missing", "is required")
        return None
    status_detail = reader.identifier(detail, "status_detail", position, MAX_CODE)
    stamp = reader.time(detail, "datetime", position)
    if stamp is None:
        return None
    if not reader.within_time_window(Classifier.ACTUAL, stamp.at, f"{position}.datetime", now):
        return None
    place = None
    city = state = country = postal_code = None
    location = detail.get("tracking_location")
    if isinstance(location, dict):
        where = f"{position}.tracking_location"
        city = reader.text(location, "city", where, MAX_PLACE_FIELD)
        state = reader.text(location, "state", where, MAX_PLACE_FIELD)
        country = reader.identifier(location, "country", where, 3)
        postal_code = reader.text(location, "zip", where, MAX_PLACE_FIELD)
        if any((city, state, country, postal_code)):
            place = Place(city=city, state=state, country=country, postal_code=postal_code)
    elif location is not None:
        reader.issue(
            f"{position}.tracking_location", "wrong_type", f"must be an object, got {json_type(location)}"
        )
    extras = {
        key: value
        for key, value in (
            ("message", reader.text(detail, "message", position, MAX_TEXT)),
            ("description", reader.text(detail, "description", position, MAX_TEXT)),
            ("source", reader.text(detail, "source", position, MAX_PLACE_FIELD)),
            ("carrier_status_code", reader.identifier(detail, "carrier_code", position, MAX_CODE)),
        )
        if value is not None
    }
    return CanonicalEvent(
        source=EASYPOST,
        classifier=Classifier.ACTUAL,
        code=SourceCode(
            EASYPOST_STATUS,
            status,
            qualifier_system=EASYPOST_STATUS_DETAIL if status_detail else None,
            qualifier=status_detail,
        ),
        occurred_at=stamp.at,
        references=references,
        position=position,
        # EasyPost has no id per tracking detail; the same scan always hashes the same
        source_event_id=_digest(
            carrier,
            tracking_code,
            stamp.at.isoformat(),
            status,
            status_detail,
            city,
            state,
            country,
            postal_code,
        ),
        # EasyPost normalises times to UTC, so the "Z" says nothing about the local time of the scan
        utc_offset_minutes=None,
        place=place,
        carrier_code=carrier,
        detail={**extras, **tracker_detail},
    )


def _easypost_estimate(
    reader: _Reader,
    tracker: Mapping[str, Any],
    root: str,
    tracking_code: str,
    carrier: str | None,
    references: tuple[tuple[str, str], ...],
    now: dt.datetime,
) -> CanonicalEvent | None:
    position = _path(root, "est_delivery_date")
    stamp = reader.time(tracker, "est_delivery_date", root)
    if stamp is None or not reader.within_time_window(Classifier.ESTIMATED, stamp.at, position, now):
        return None
    return CanonicalEvent(
        source=EASYPOST,
        classifier=Classifier.ESTIMATED,
        code=SourceCode(EASYPOST_EST_DELIVERY, "est_delivery_date"),
        occurred_at=stamp.at,
        references=references,
        position=position,
        source_event_id=_digest(carrier, tracking_code, "est_delivery_date", stamp.at.isoformat()),
        utc_offset_minutes=None,
        carrier_code=carrier,
        detail={"est_delivery_date": str(tracker["est_delivery_date"]).strip()},
    )


def _with_detail(event: CanonicalEvent, **extra: Any) -> CanonicalEvent:
    return replace(event, detail={**event.detail, **extra})


def _as_fatal(issue: ParseIssue) -> ParseIssue:
    return ParseIssue(issue.position, issue.code, issue.reason, fatal=True)
