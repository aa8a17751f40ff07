"""DCSA Track & Trace adapter: a 2.2 event array, a 3.0.0-Beta-1 array or a 3.0.0 ``{"events": [...]}``
document in, canonical events out. Pure: no database, no I/O, the clock is ``now``.

The shape is detected per event, so one document may mix them. Each event is checked against what its
version requires and against our own semantic rules, which JSON Schema lets through: no date before
2000-01-01, no creation/update date and no actual (ACT) event more than a day after ``now``, type codes from
the DCSA code lists, well-formed UN/LOCODEs, retractions that name their event. A bad event becomes issues
(positioned like ``events[3].eventDateTime``) and is skipped; the good ones are kept. A document that is
not JSON, nests deeper than 64 levels, or holds no event list is rejected as a whole (a fatal issue).

Issue codes: ``not_json``, ``too_deep``, ``not_an_event_list`` (fatal); ``not_an_object``,
``unknown_shape``, ``missing_field``, ``wrong_type``, ``invalid_value``, ``invalid_datetime``,
``date_too_early``, ``date_in_future``, ``actual_in_future``, ``unknown_event_type``,
``unknown_classifier``, ``unsupported_classifier``, ``unknown_type_code``, ``invalid_locode``,
``retraction_without_id``, ``incomplete_event`` (per event).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Any

from domain.tracking.canonical import CanonicalEvent, Classifier, ParsedMessage, ParseIssue, SourceCode
from domain.tracking.formats.canonical_json import json_type as json_kind
from domain.tracking.formats.dcsa.reader import EventReader
from domain.tracking.formats.dcsa.shapes import (
    DELAY_SYSTEM,
    V22,
    V300,
    V300_BETA1,
    Draft,
    detect_shape,
    read_v22,
    read_v300,
    read_v300_beta1,
)
from domain.tracking.formats.dcsa.versions import LatestVersions, latest_versions

__all__ = ["MAX_DEPTH", "SOURCE", "LatestVersions", "latest_versions", "parse_dcsa"]

SOURCE = "dcsa"
MAX_DEPTH = 64
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
FUTURE_TOLERANCE = dt.timedelta(days=1)  # clocks drift and time zones get mislabelled; a day is generous
RETRACTION_CODE = SourceCode("dcsa.retraction", "RETRACTED")  # stands in when a retraction names no type

_READERS = {V22: read_v22, V300_BETA1: read_v300_beta1, V300: read_v300}
# a JSON string (skipped whole, so brackets inside it do not count) or a bracket
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_FAILED = object()


def _fatal(message: ParsedMessage, position: str, code: str, reason: str) -> None:
    message.issues.append(ParseIssue(position, code, reason, fatal=True))


def _text_too_deep(raw: bytes) -> bool:
    # counted before json.loads, whose recursion would otherwise fail on hostile nesting
    depth = 0
    for match in _TOKENS.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


def _value_too_deep(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a number")
    return value


def _decode(document: bytes | Any, message: ParsedMessage) -> Any:
    if isinstance(document, str):
        document = document.encode("utf-8")
    if isinstance(document, bytes | bytearray | memoryview):
        raw = bytes(document)
        if _text_too_deep(raw):
            _fatal(message, "$", "too_deep", f"the document nests deeper than {MAX_DEPTH} levels")
            return _FAILED
        try:
            return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
        except json.JSONDecodeError as error:
            _fatal(message, f"line {error.lineno} column {error.colno}", "not_json", f"not JSON: {error.msg}")
        except ValueError as error:  # undecodable bytes, NaN, huge numbers
            _fatal(message, "$", "not_json", f"not JSON: {error}")
        return _FAILED
    if isinstance(document, dict | list) and _value_too_deep(document):
        _fatal(message, "$", "too_deep", f"the document nests deeper than {MAX_DEPTH} levels")
        return _FAILED
    return document


def _event_list(document: Any, message: ParsedMessage) -> list[Any] | None:
    if isinstance(document, list):
        return document
    if isinstance(document, dict) and "events" in document:
        if isinstance(document["events"], list):
            return document["events"]
        _fatal(message, "events", "not_an_event_list", "events must be an array of events")
        return None
    _fatal(
        message,
        "$",
        "not_an_event_list",
        'expected an array of events (2.2, 3.0.0-Beta-1) or an object with "events" (3.0.0)',
    )
    return None


def _check_dates(reader: EventReader, draft: Draft, now: dt.datetime) -> None:
    horizon = now + FUTURE_TOLERANCE
    if draft.updated is not None:
        name = draft.updated_where.rsplit(".", 1)[-1]
        stamp = draft.updated.utc.isoformat()
        if draft.updated.utc < EARLIEST:
            reader.issue(draft.updated_where, "date_too_early", f"{name} {stamp} is before 2000-01-01")
        elif draft.updated.utc > horizon:
            reader.issue(
                draft.updated_where,
                "date_in_future",
                f"{name} {stamp} is more than a day after now ({now.astimezone(dt.UTC).isoformat()})",
            )
    if draft.occurred is not None and not draft.is_retracted:
        stamp = draft.occurred.utc.isoformat()
        if draft.occurred.utc < EARLIEST:
            reader.issue(
                draft.occurred_where, "date_too_early", f"eventDateTime {stamp} is before 2000-01-01"
            )
        elif draft.classifier is Classifier.ACTUAL and draft.occurred.utc > horizon:
            reader.issue(
                draft.occurred_where,
                "actual_in_future",
                f"an actual (ACT) event at {stamp} is more than a day after now "
                f"({now.astimezone(dt.UTC).isoformat()}); only PLN and EST may be in the future",
            )


def _event(reader: EventReader, draft: Draft, now: dt.datetime) -> CanonicalEvent | None:
    if draft.is_retracted:
        # DCSA 3.0: in a retraction, any data other than the eventID is irrelevant
        wanted = {reader.path(where) for where in draft.retraction_wheres}
        reader.issues = [
            issue
            for issue in reader.issues
            if issue.position in wanted or issue.code == "retraction_without_id"
        ]
    _check_dates(reader, draft, now)
    if reader.issues:
        return None
    delay = draft.delay_reasons[0] if draft.delay_reasons else None
    code = (
        SourceCode(draft.system, draft.type_code, DELAY_SYSTEM if delay else None, delay)
        if draft.system is not None and draft.type_code is not None
        else None
    )
    classifier = draft.classifier
    occurred = draft.occurred
    if draft.is_retracted:
        code = code or RETRACTION_CODE
        classifier = classifier or Classifier.ACTUAL
    if code is None or classifier is None or (occurred is None and not draft.is_retracted):
        reader.issue("", "incomplete_event", "the event lacks a classifier, type code or eventDateTime")
        return None
    detail = {"dcsa_version": draft.version, "event_type": draft.event_type} | draft.detail
    if len(draft.delay_reasons) > 1:
        detail["delay_reason_codes"] = draft.delay_reasons
    updated_at = draft.updated.utc if draft.updated is not None else None
    return CanonicalEvent(
        source=SOURCE,
        classifier=classifier,
        code=code,
        occurred_at=occurred.utc if occurred is not None else (updated_at or now.astimezone(dt.UTC)),
        references=tuple(dict.fromkeys(draft.references)),
        position=reader.position,
        source_event_id=draft.event_id,
        utc_offset_minutes=occurred.offset_minutes if occurred is not None else None,
        place=draft.place,
        carrier_code=draft.carrier_code,
        updated_at=updated_at,
        is_retracted=draft.is_retracted,
        detail={key: value for key, value in detail.items() if value is not None},
    )


def _parse_event(
    item: Any, position: str, now: dt.datetime, issues: list[ParseIssue]
) -> CanonicalEvent | None:
    reader = EventReader(position)
    if not isinstance(item, dict):
        issues.append(
            ParseIssue(position, "not_an_object", f"an event must be an object, got {json_kind(item)}")
        )
        return None
    shape = detect_shape(item)
    if shape is None:
        issues.append(
            ParseIssue(
                position,
                "unknown_shape",
                "neither a 2.2 event (eventType...), a 3.0.0-Beta-1 event (metadata/payload) "
                "nor a 3.0.0 event (eventClassification...)",
            )
        )
        return None
    event = _event(reader, _READERS[shape](reader, item), now)
    issues.extend(reader.issues)
    return event


def parse_dcsa(document: bytes | Any, *, now: dt.datetime) -> ParsedMessage:
    """Canonical events from a DCSA T&T document (raw bytes/text, or JSON already decoded)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    message = ParsedMessage()
    decoded = _decode(document, message)
    if decoded is _FAILED:
        return message
    events = _event_list(decoded, message)
    if events is None:
        return message
    for index, item in enumerate(events):
        event = _parse_event(item, f"events[{index}]", now, message.issues)
        if event is not None:
            message.events.append(event)
    return message
