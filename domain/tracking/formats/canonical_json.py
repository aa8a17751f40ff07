"""Our own tracking event format (``POST /ingest/events``), and the JSON and time rules all adapters share.

A message is ``{"events": [...]}``; ``schemas/events.schema.json`` documents it (JSON Schema 2020-12) and
``docs/formats/events.md`` explains it. Validation is done here, in code, so every problem is reported with
its JSON path (``events[4].occurredAt: ...``) and the checks a schema cannot express (an actual event in
the future, a time without a UTC offset) live next to the structural ones. A bad event is skipped with its
issues; a message that is not a JSON object of the expected shape is rejected as a whole (fatal issue).

The helpers at the top (:func:`decode_json`, :func:`parse_timestamp`, :func:`check_event_time`) are used
by the other adapters too, so every format decodes JSON and reads times the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from domain.shipments.models import MilestoneCode, ReferenceKind
from domain.tracking.canonical import CanonicalEvent, Classifier, ParsedMessage, ParseIssue, Place, SourceCode

SOURCE = "events"
CANONICAL_SYSTEM = "canonical"

MAX_DEPTH = 64  # nesting of JSON arrays/objects; deeper documents are rejected before they cost anything
MAX_EVENTS = 10_000
MAX_REFERENCES = 20
MAX_EVENT_ID = 128
MAX_REFERENCE = 128  # shipment_reference.value
MAX_SYSTEM = 32
MAX_CODE = 64
MAX_CARRIER_CODE = 16  # carrier.code
MAX_NAME = 256
MAX_CITY = 128
MAX_STATE = 128
MAX_POSTAL_CODE = 32
MAX_FACILITY_CODE = 32
MAX_DETAIL_CHARS = 4096  # the detail object, serialized

# An actual event may be stamped a little ahead of our clock (clock skew, a local time mislabelled);
# beyond a day it is wrong, not early.
FUTURE_TOLERANCE = dt.timedelta(days=1)
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
PLAN_HORIZON = dt.timedelta(days=730)

EVENT_FIELDS = frozenset(
    {"eventId", "references", "code", "classifier", "occurredAt", "location", "carrierCode", "detail"}
)
REQUIRED_EVENT_FIELDS = ("references", "code", "classifier", "occurredAt")
REFERENCE_FIELDS = frozenset({"kind", "value"})
LOCATION_FIELDS = {
    # JSON name: (Place attribute, maximum length); locode and country are then checked by their pattern
    "locode": ("locode", 64),
    "name": ("name", MAX_NAME),
    "city": ("city", MAX_CITY),
    "state": ("state", MAX_STATE),
    "country": ("country", 64),
    "postalCode": ("postal_code", MAX_POSTAL_CODE),
    "facilityCode": ("facility_code", MAX_FACILITY_CODE),
}

MILESTONES = frozenset(code.value for code in MilestoneCode)
CLASSIFIERS = frozenset(classifier.value for classifier in Classifier)
REFERENCE_KINDS = frozenset(kind.value for kind in ReferenceKind)
LOCODE = re.compile(r"^[A-Z]{2}[A-Z2-9]{3}$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
SYSTEM = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TIMESTAMP = re.compile(
    r"^(?P<date>(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2}))"
    r"(?:[T ](?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,9}))?)?"
    r"(?P<offset>[Zz]|[+-]\d{2}:?\d{2})?)?$"
)
# The form nearly every sender writes, which datetime.fromisoformat reads many times faster than the
# above. Each part is bounded here, as fromisoformat is more lenient (seven fraction digits, an offset of
# +01:75 or +23:00); the offset must be one of _UTC_OFFSETS, the offsets parse_timestamp accepts.
_COMMON_TIMESTAMP = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?)"
    r"(Z|[+-][0-9]{2}:[0-9]{2})"
)
_UTC_OFFSETS = {"Z": (dt.timedelta(0), 0)} | {
    f"{sign}{minutes // 60:02}:{minutes % 60:02}": (dt.timedelta(minutes=factor * minutes), factor * minutes)
    for sign, factor in (("+", 1), ("-", -1))
    for minutes in range(14 * 60 + 1)
}


# --- shared by the JSON adapters -------------------------------------------------------------------------


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages ("must be a string, got number")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _too_deep(value: Any, limit: int) -> bool:
    # iterative on purpose: a recursive walk is exactly what a hostile document is built to break
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def decode_json(
    document: Any, *, reject_duplicate_keys: bool = False, check_depth: bool = True
) -> tuple[Any, ParseIssue | None]:
    """Decode a JSON document (bytes, text, or an already decoded value) under our limits.

    Returns the value, or ``None`` and a fatal issue: not UTF-8, not JSON, ``NaN``/``Infinity``, a number
    too long to convert, a duplicate key (when asked), or nesting deeper than :data:`MAX_DEPTH`. Never
    raises ``RecursionError``, whatever the document. ``check_depth=False`` leaves the nesting to a caller
    that checks the shape of the value strictly and the depth of whatever free-form part it lets through.
    """
    if isinstance(document, bytes | bytearray | memoryview):
        try:
            document = bytes(document).decode("utf-8-sig")
        except UnicodeDecodeError as error:
            return None, ParseIssue(
                f"byte {error.start}", "not_utf8", "the document is not valid UTF-8", fatal=True
            )
    if isinstance(document, str):
        try:
            value = json.loads(
                document,
                object_pairs_hook=_no_duplicates if reject_duplicate_keys else None,
                parse_constant=_no_constants,
            )
        except json.JSONDecodeError as error:
            return None, ParseIssue(
                f"line {error.lineno} column {error.colno}", "malformed_json", error.msg, fatal=True
            )
        except _DuplicateKey as error:
            return None, ParseIssue("$", "duplicate_key", f"key {error.args[0]!r} appears twice", fatal=True)
        except RecursionError:
            return None, _too_deep_issue()
        except ValueError as error:
            return None, ParseIssue("$", "malformed_json", str(error), fatal=True)
    else:
        value = document
    if check_depth and isinstance(value, dict | list) and _too_deep(value, MAX_DEPTH):
        return None, _too_deep_issue()
    return value, None


def _too_deep_issue() -> ParseIssue:
    return ParseIssue("$", "too_deep", f"nested more than {MAX_DEPTH} levels deep", fatal=True)


class TimestampError(ValueError):
    """A time that cannot be read; the message says why, quoting the value."""


@dataclass(frozen=True, slots=True)
class Timestamp:
    at: dt.datetime  # aware, UTC
    offset_minutes: int | None  # the offset the source wrote; None when it wrote none (UTC was assumed)
    date_only: bool = False


def parse_timestamp(value: str, *, allow_date_only: bool = False, allow_naive: bool = False) -> Timestamp:
    """Read an ISO 8601 date-time (extended format) strictly.

    ``allow_naive`` accepts a time without a UTC offset and ``allow_date_only`` a bare date (midnight);
    both are then taken as UTC and reported with ``offset_minutes=None`` so the caller can flag them.
    """
    common = _common_timestamp(value)
    if common is not None:
        return Timestamp(*common)
    return _parse_timestamp_precisely(value, allow_date_only=allow_date_only, allow_naive=allow_naive)


def _parse_timestamp_precisely(value: str, *, allow_date_only: bool, allow_naive: bool) -> Timestamp:
    """:func:`parse_timestamp` without its fast branch: every form it takes, and why a time is refused."""
    match = _TIMESTAMP.match(value)
    if match is None:
        raise TimestampError(f"{value!r} is not an ISO 8601 date-time (e.g. 2026-03-01T14:30:00+01:00)")
    try:
        date = dt.date(int(match["year"]), int(match["month"]), int(match["day"]))
    except ValueError:
        raise TimestampError(f"{match['date']!r} is not a date") from None
    if match["hour"] is None:
        if not allow_date_only:
            raise TimestampError(f"{value!r} has no time and UTC offset (e.g. {value}T17:00:00+01:00)")
        return Timestamp(dt.datetime.combine(date, dt.time(), tzinfo=dt.UTC), None, date_only=True)
    fraction = (match["fraction"] or "0")[:6].ljust(6, "0")
    try:
        time = dt.time(int(match["hour"]), int(match["minute"]), int(match["second"] or 0), int(fraction))
    except ValueError:
        raise TimestampError(f"{value!r} is not a valid time of day") from None
    offset_text = match["offset"]
    if offset_text is None:
        if not allow_naive:
            raise TimestampError(f"{value!r} has no UTC offset (add Z or +01:00, for example)")
        return Timestamp(dt.datetime.combine(date, time, tzinfo=dt.UTC), None)
    if offset_text in ("Z", "z"):
        minutes = 0
    else:
        digits = offset_text[1:].replace(":", "")
        hours, mins = int(digits[:2]), int(digits[2:])
        if mins >= 60:
            raise TimestampError(f"{value!r} has an invalid UTC offset")
        minutes = (hours * 60 + mins) * (-1 if offset_text[0] == "-" else 1)
    if abs(minutes) > 14 * 60:
        raise TimestampError(f"{value!r} has a UTC offset outside -14:00..+14:00")
    local = dt.datetime.combine(date, time, tzinfo=dt.timezone(dt.timedelta(minutes=minutes)))
    try:
        at = local.astimezone(dt.UTC)
    except OverflowError:
        raise TimestampError(f"{value!r} is out of range") from None
    return Timestamp(at, minutes)


def _common_timestamp(value: str) -> tuple[dt.datetime, int] | None:
    """:func:`parse_timestamp` of the common form (:data:`_COMMON_TIMESTAMP`): the UTC instant and the offset
    in minutes; ``None`` for any other form, or an impossible date or time, which ``parse_timestamp`` then
    reads its own way to report what is wrong."""
    match = _COMMON_TIMESTAMP.fullmatch(value)
    if match is None:
        return None
    local, offset_text = match.groups()
    offset = _UTC_OFFSETS.get(offset_text)
    if offset is None:
        return None
    try:
        # read as UTC, then moved by the offset: quicker than datetime.replace and astimezone
        at = dt.datetime.fromisoformat(local + "Z") - offset[0]
    except (ValueError, OverflowError):
        return None
    return at, offset[1]


def check_event_time(classifier: Classifier, at: dt.datetime, now: dt.datetime) -> tuple[str, str] | None:
    """``(code, reason)`` when an event's time cannot be right, else ``None``.

    An actual event more than a day ahead of ``now`` has not happened; anything before 2000 or a plan or
    estimate more than two years ahead is a typo or a placeholder, not a date.
    """
    if at < EARLIEST:
        return "implausible_time", f"{_utc(at)} is before 2000-01-01"
    if classifier is Classifier.ACTUAL and at > now + FUTURE_TOLERANCE:
        return (
            "future_event",
            f"an actual event at {_utc(at)} is more than 1 day after now ({now.isoformat()})",
        )
    if at > now + PLAN_HORIZON:
        return "implausible_time", f"{_utc(at)} is more than 2 years after now ({now.isoformat()})"
    return None


def _utc(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat()


def parse_code(text: str) -> SourceCode | str:
    """A canonical milestone (``DELIVERED``) or a mapping code (``x12.status:X1``); a reason when neither."""
    if ":" not in text:
        if text in MILESTONES:
            return SourceCode(CANONICAL_SYSTEM, text)
        return f"{text!r} is neither a canonical milestone nor a 'system:code' mapping code"
    system, _, code = text.partition(":")
    if not SYSTEM.match(system) or len(system) > MAX_SYSTEM:
        return f"{system!r} is not a code system name (lower case, dotted, at most {MAX_SYSTEM} characters)"
    if not code.strip() or code != code.strip() or CONTROL.search(code):
        return f"{text!r} has an empty code or one with surrounding spaces or control characters"
    if len(code) > MAX_CODE:
        return f"the code after {system + ':'!r} has {len(code)} characters, more than {MAX_CODE}"
    if system == CANONICAL_SYSTEM and code not in MILESTONES:
        return f"{code!r} is not a canonical milestone"
    return SourceCode(system, code)


# --- the canonical event format -----------------------------------------------------------------------------


class _Event:
    """Validation of one event object; collects every problem instead of stopping at the first."""

    def __init__(self, item: Mapping[str, Any], position: str) -> None:
        self.item = item
        self.position = position
        self.issues: list[ParseIssue] = []

    def fail(self, path: str, code: str, reason: str) -> None:
        self.issues.append(ParseIssue(f"{self.position}.{path}", code, reason))

    def text(self, value: Any, path: str, limit: int, *, identifier: bool = True) -> str | None:
        """A non-blank string of at most ``limit`` characters (identifiers: no control characters)."""
        if not isinstance(value, str):
            self.fail(path, "wrong_type", f"must be a string, got {json_type(value)}")
            return None
        stripped = value.strip()
        if not stripped:
            self.fail(path, "empty", "must not be empty")
            return None
        if len(stripped) > limit:
            self.fail(path, "too_long", f"{len(stripped)} characters, more than {limit}")
            return None
        if (CONTROL if identifier else _NUL).search(stripped):
            self.fail(path, "control_character", "contains a control character")
            return None
        return stripped


_NUL = re.compile("\x00")


def _has_nul(value: Any) -> bool:
    # PostgreSQL text and jsonb cannot hold U+0000
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _event(item: Any, position: str, now: dt.datetime) -> tuple[CanonicalEvent | None, list[ParseIssue]]:
    if not isinstance(item, dict):
        issue = ParseIssue(position, "wrong_type", f"an event must be an object, got {json_type(item)}")
        return None, [issue]
    check = _Event(item, position)
    for name in sorted(set(item) - EVENT_FIELDS):
        check.fail(name, "unknown_field", f"unknown field; an event has {', '.join(sorted(EVENT_FIELDS))}")
    for name in REQUIRED_EVENT_FIELDS:
        if item.get(name) is None:
            check.fail(name, "missing", "is required")

    event_id = None
    if item.get("eventId") is not None:
        event_id = check.text(item["eventId"], "eventId", MAX_EVENT_ID)

    references = _references(check, item.get("references"))

    code: SourceCode | None = None
    if item.get("code") is not None:
        code_text = check.text(item["code"], "code", MAX_SYSTEM + 1 + MAX_CODE)
        if code_text is not None:
            parsed = parse_code(code_text)
            if isinstance(parsed, str):
                check.fail("code", "unknown_code", parsed)
            else:
                code = parsed

    classifier: Classifier | None = None
    if item.get("classifier") is not None:
        raw = item["classifier"]
        if isinstance(raw, str) and raw in CLASSIFIERS:
            classifier = Classifier(raw)
        else:
            shown = repr(raw) if isinstance(raw, str) else f"a JSON {json_type(raw)}"
            check.fail("classifier", "unknown_classifier", f"{shown} is not one of PLN, EST, ACT")

    stamp: Timestamp | None = None
    if item.get("occurredAt") is not None:
        text = check.text(item["occurredAt"], "occurredAt", 40)
        if text is not None:
            try:
                stamp = parse_timestamp(text)
            except TimestampError as error:
                check.fail("occurredAt", "invalid_time", str(error))
    if stamp is not None and classifier is not None:
        problem = check_event_time(classifier, stamp.at, now)
        if problem is not None:
            check.fail("occurredAt", *problem)

    place = _location(check, item.get("location"))

    carrier_code = None
    if item.get("carrierCode") is not None:
        carrier_code = check.text(item["carrierCode"], "carrierCode", MAX_CARRIER_CODE)

    detail: dict[str, Any] = {}
    if item.get("detail") is not None:
        raw_detail = item["detail"]
        if not isinstance(raw_detail, dict):
            check.fail("detail", "wrong_type", f"must be an object, got {json_type(raw_detail)}")
        else:
            serialized = json.dumps(raw_detail, ensure_ascii=False)
            if len(serialized) > MAX_DETAIL_CHARS:
                check.fail(
                    "detail",
                    "too_long",
                    f"{len(serialized)} characters as JSON, more than {MAX_DETAIL_CHARS}",
                )
            elif _has_nul(raw_detail):
                check.fail("detail", "control_character", "contains a NUL character")
            else:
                detail = raw_detail

    if check.issues or code is None or classifier is None or stamp is None or not references:
        return None, check.issues
    event = CanonicalEvent(
        source=SOURCE,
        classifier=classifier,
        code=code,
        occurred_at=stamp.at,
        references=references,
        position=position,
        source_event_id=event_id,
        utc_offset_minutes=stamp.offset_minutes,
        place=place,
        carrier_code=carrier_code,
        detail=detail,
    )
    return event, []


def _references(check: _Event, value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        check.fail("references", "wrong_type", f"must be an array, got {json_type(value)}")
        return ()
    if not value:
        check.fail("references", "empty", "needs at least one reference")
        return ()
    if len(value) > MAX_REFERENCES:
        check.fail("references", "too_many", f"{len(value)} references, more than {MAX_REFERENCES}")
        return ()
    pairs: list[tuple[str, str]] = []
    for index, reference in enumerate(value):
        path = f"references[{index}]"
        if not isinstance(reference, dict):
            check.fail(path, "wrong_type", f"must be an object, got {json_type(reference)}")
            continue
        for name in sorted(set(reference) - REFERENCE_FIELDS):
            check.fail(f"{path}.{name}", "unknown_field", "unknown field; a reference has kind and value")
        kind = reference.get("kind")
        if kind is None:
            check.fail(f"{path}.kind", "missing", "is required")
        elif not isinstance(kind, str) or kind not in REFERENCE_KINDS:
            shown = repr(kind) if isinstance(kind, str) else f"a JSON {json_type(kind)}"
            check.fail(f"{path}.kind", "unknown_kind", f"{shown} is not one of {', '.join(ReferenceKind)}")
            kind = None
        if reference.get("value") is None:
            check.fail(f"{path}.value", "missing", "is required")
            continue
        text = check.text(reference["value"], f"{path}.value", MAX_REFERENCE)
        if kind is not None and text is not None and (kind, text) not in pairs:
            pairs.append((kind, text))
    return tuple(pairs)


def _location(check: _Event, value: Any) -> Place | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        check.fail("location", "wrong_type", f"must be an object, got {json_type(value)}")
        return None
    fields: dict[str, str] = {}
    for name in sorted(set(value) - set(LOCATION_FIELDS)):
        check.fail(
            f"location.{name}", "unknown_field", f"unknown field; a location has {', '.join(LOCATION_FIELDS)}"
        )
    for name, (attribute, limit) in LOCATION_FIELDS.items():
        if value.get(name) is None:
            continue
        text = check.text(value[name], f"location.{name}", limit, identifier=name in ("locode", "country"))
        if text is None:
            continue
        if name == "locode" and not LOCODE.match(text):
            check.fail("location.locode", "invalid_locode", f"{text!r} is not a UN/LOCODE (e.g. NLRTM)")
        elif name == "country" and not COUNTRY.match(text):
            check.fail("location.country", "invalid_country", f"{text!r} is not an ISO 3166-1 alpha-2 code")
        else:
            fields[attribute] = text
    return Place(**fields) if fields else None


def parse_events(document: Any, *, now: dt.datetime) -> ParsedMessage:
    """Parse a canonical event batch (bytes, text or decoded JSON) into canonical events.

    Every problem is reported with its JSON path; an event with any problem is skipped, the others are
    kept. The message is rejected (fatal issue) when it is not JSON, not ``{"events": [...]}``, has
    unknown top-level fields or more than :data:`MAX_EVENTS` events.

    A message with nothing wrong in it (nearly all of them) is read by a fast path that only accepts or
    gives up; when it gives up, the message is read again by :func:`_parse_events_precisely`, which finds
    and reports every problem. The answer is the same either way (the tests compare the two paths).
    """
    value, issue = decode_json(document, reject_duplicate_keys=True, check_depth=False)
    if issue is not None:
        return ParsedMessage(issues=[issue])
    try:
        return _plain_events(value, now)
    except _Unusual:
        return _parse_events_precisely(document, now)


def _parse_events_precisely(document: Any, now: dt.datetime) -> ParsedMessage:
    """:func:`parse_events` without its fast path: every problem found, each with its JSON path."""
    value, issue = decode_json(document, reject_duplicate_keys=True)
    if issue is not None:
        return ParsedMessage(issues=[issue])
    if not isinstance(value, dict):
        return _fatal(
            "$", "wrong_type", f'a message is an object {{"events": [...]}}, got {json_type(value)}'
        )
    unknown = sorted(set(value) - {"events"})
    if unknown:
        return _fatal(unknown[0], "unknown_field", 'unknown field; a message has only "events"')
    events = value.get("events")
    if events is None:
        return _fatal("events", "missing", "is required")
    if not isinstance(events, list):
        return _fatal("events", "wrong_type", f"must be an array, got {json_type(events)}")
    if len(events) > MAX_EVENTS:
        return _fatal("events", "too_many", f"{len(events)} events, more than {MAX_EVENTS} in one message")
    parsed = ParsedMessage()
    for index, item in enumerate(events):
        event, issues = _event(item, f"events[{index}]", now)
        parsed.issues.extend(issues)
        if event is not None:
            parsed.events.append(event)
    return parsed


def _fatal(position: str, code: str, reason: str) -> ParsedMessage:
    return ParsedMessage(issues=[ParseIssue(position, code, reason, fatal=True)])


# --- the fast path for valid messages ---------------------------------------------------------------------


class _Unusual(Exception):
    """Raised by the fast path at the first thing it does not see as plainly valid."""


_CLASSIFIER_VALUES = {classifier.value: classifier for classifier in Classifier}
_LOCATION_NAMES = frozenset(LOCATION_FIELDS)
_DETAIL_DEPTH = MAX_DEPTH - 3  # a detail object is at depth 4: {"events": [{"detail": {...}}]}


def _plain_events(value: Any, now: dt.datetime) -> ParsedMessage:
    """The events of a decoded message in which nothing is wrong; raises :class:`_Unusual` otherwise.

    The rules of :func:`_event` and its helpers, written as direct checks that accept the exact types
    JSON decodes to and give up at the first doubt. The shape is checked exactly, so only ``detail``, the
    one free-form part, needs its nesting checked (:func:`parse_events` left that out of the decoding).
    """
    if type(value) is not dict or value.keys() != {"events"}:
        raise _Unusual
    items = value["events"]
    if type(items) is not list or len(items) > MAX_EVENTS:
        raise _Unusual
    return ParsedMessage(
        events=[_plain_event(item, f"events[{index}]", now) for index, item in enumerate(items)]
    )


def _plain_event(item: Any, position: str, now: dt.datetime) -> CanonicalEvent:
    if type(item) is not dict or not item.keys() <= EVENT_FIELDS:
        raise _Unusual
    raw_code = item.get("code")
    raw_classifier = item.get("classifier")
    raw_time = item.get("occurredAt")
    if type(raw_code) is not str or type(raw_classifier) is not str or type(raw_time) is not str:
        raise _Unusual
    classifier = _CLASSIFIER_VALUES.get(raw_classifier)
    if classifier is None:
        raise _Unusual
    # a time of the common form has nothing _plain_text would strip or refuse
    at, offset_minutes = _common_timestamp(raw_time) or _plain_timestamp(raw_time)
    if check_event_time(classifier, at, now) is not None:
        raise _Unusual
    event_id = item.get("eventId")
    location = item.get("location")
    carrier_code = item.get("carrierCode")
    return CanonicalEvent(
        source=SOURCE,
        classifier=classifier,
        code=_plain_code(raw_code),
        occurred_at=at,
        references=_plain_references(item.get("references")),
        position=position,
        source_event_id=None if event_id is None else _plain_text(event_id, MAX_EVENT_ID),
        utc_offset_minutes=offset_minutes,
        place=None if location is None else _plain_place(location),
        carrier_code=None if carrier_code is None else _plain_text(carrier_code, MAX_CARRIER_CODE),
        detail=_plain_detail(item.get("detail")),
    )


@lru_cache(maxsize=1024)
def _plain_code(text: str) -> SourceCode:
    # a batch repeats a handful of codes; remembered only when valid (an exception is not cached)
    code = parse_code(_plain_text(text, MAX_SYSTEM + 1 + MAX_CODE))
    if isinstance(code, str):
        raise _Unusual
    return code


def _plain_timestamp(value: str) -> tuple[dt.datetime, int | None]:
    try:
        stamp = parse_timestamp(_plain_text(value, 40))
    except TimestampError:
        raise _Unusual from None
    return stamp.at, stamp.offset_minutes


def _plain_text(value: Any, limit: int, *, identifier: bool = True) -> str:
    # _Event.text; str.isprintable() is false for every control character, and much faster than CONTROL
    if type(value) is not str:
        raise _Unusual
    text = value.strip()
    if not text or len(text) > limit:
        raise _Unusual
    if identifier:
        if not text.isprintable() and CONTROL.search(text):
            raise _Unusual
    elif "\x00" in text:
        raise _Unusual
    return text


def _plain_references(value: Any) -> tuple[tuple[str, str], ...]:
    if type(value) is not list or not 0 < len(value) <= MAX_REFERENCES:
        raise _Unusual
    pairs: list[tuple[str, str]] = []
    for reference in value:
        if type(reference) is not dict or reference.keys() != REFERENCE_FIELDS:
            raise _Unusual
        kind = reference["kind"]
        if type(kind) is not str or kind not in REFERENCE_KINDS:
            raise _Unusual
        pair = (kind, _plain_text(reference["value"], MAX_REFERENCE))
        if pair not in pairs:
            pairs.append(pair)
    return tuple(pairs)


def _plain_place(value: Any) -> Place | None:
    if type(value) is not dict:
        raise _Unusual
    try:
        return _plain_place_fields(tuple(value.items()))
    except TypeError:  # an unhashable value (an array or object), so not a string
        raise _Unusual from None


@lru_cache(maxsize=1024)
def _plain_place_fields(fields: tuple[tuple[Any, Any], ...]) -> Place | None:
    # a batch repeats its places; only valid ones are remembered, and their values are all strings or null,
    # which no other decoded JSON value equals
    place: dict[str, str] = {}
    for name, raw in fields:
        if name not in _LOCATION_NAMES:
            raise _Unusual
        if raw is None:
            continue
        attribute, limit = LOCATION_FIELDS[name]
        if name == "locode" or name == "country":
            text = _plain_text(raw, limit)
            if not (LOCODE if name == "locode" else COUNTRY).match(text):
                raise _Unusual
        else:
            text = _plain_text(raw, limit, identifier=False)
        place[attribute] = text
    return Place(**place) if place else None


def _plain_detail(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise _Unusual
    try:
        serialized = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):  # not JSON, circular, or very deep: the precise path says
        raise _Unusual from None
    # a NUL is serialized as \u0000; so is a backslash before "u0000" in a string, which then takes the
    # precise path for nothing
    if len(serialized) > MAX_DETAIL_CHARS or "\\u0000" in serialized:
        raise _Unusual
    # the one free-form part of an event, so the one whose nesting is checked; it nests no deeper than it has
    # brackets, so most details need no walk
    if serialized.count("{") + serialized.count("[") > _DETAIL_DEPTH and _too_deep(value, _DETAIL_DEPTH):
        raise _Unusual
    return value
