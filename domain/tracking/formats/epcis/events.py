"""One EPCIS 2.0 event → one :class:`CanonicalEvent`, or the issues that make it unreadable."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from domain.shipments.models import ReferenceKind
from domain.tracking.canonical import CanonicalEvent, Classifier, ParseIssue, Place, SourceCode
from domain.tracking.formats.epcis import issues
from domain.tracking.formats.epcis.identifiers import GLN, SSCC, parse_gs1_key, reference_value
from domain.tracking.formats.epcis.schema import event_validator, format_path, parse_date_time, schema_errors
from domain.tracking.formats.epcis.vocabulary import (
    BIZ_STEP,
    BIZ_TRANSACTION_TYPE,
    DISPOSITION,
    ERROR_REASON,
    SOURCE_DESTINATION_TYPE,
    Term,
    Vocabulary,
    read_term,
)

SOURCE = "epcis"
BIZ_STEP_SYSTEM = "epcis.bizstep"
DISPOSITION_SYSTEM = "epcis.disposition"

EVENT_TYPES = frozenset(
    {"ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent"}
)
EPC_FIELDS = ("epcList", "parentID", "childEPCs", "inputEPCList", "outputEPCList")
QUANTITY_FIELDS = ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList")
COPIED_FIELDS = (
    *EPC_FIELDS,
    *QUANTITY_FIELDS,
    "persistentDisposition",
    "bizTransactionList",
    "sourceList",
    "destinationList",
    "transformationID",
    "recordTime",
)
# Business transaction types that name the shipment for the people who book it. An invoice, a receiving
# advice or a production order is not something a shipment is looked up by.
REFERENCE_KIND_BY_TRANSACTION_TYPE: Mapping[str, ReferenceKind] = {
    "po": ReferenceKind.CUSTOMER_REFERENCE,
    "poc": ReferenceKind.CUSTOMER_REFERENCE,
    "desadv": ReferenceKind.CUSTOMER_REFERENCE,
    "bol": ReferenceKind.HOUSE_BL,
}
FUTURE_TOLERANCE = dt.timedelta(days=1)
# Not part of the identity of an event: an error declaration repeats the event it retracts, so it must
# hash to the same id (the CBV event hash leaves these out for the same reason).
_NOT_HASHED = frozenset({"eventID", "recordTime", "errorDeclaration"})


def event_hash(event: Mapping[str, Any], occurred_at: dt.datetime) -> str:
    """A deterministic id for an event without ``eventID``: SHA-256 of its JSON with sorted keys.

    Simpler than the CBV 2.0 event hash (no canonical property order, no identifier normalisation); CBV
    values are hashed as bare words and the time in UTC, so the spellings we normalise hash alike.
    """
    content = {key: value for key, value in event.items() if key not in _NOT_HASHED}
    content["eventTime"] = occurred_at.astimezone(dt.UTC).isoformat()
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_offset(value: str) -> int:
    """``+02:00`` → 120, ``-05:30`` → -330 (the schema has checked the shape)."""
    hours, minutes = value[1:].split(":")
    total = int(hours) * 60 + int(minutes)
    return -total if value.startswith("-") else total


def read_event(
    raw: Any, index: int, *, prefixes: Mapping[str, str], now: dt.datetime
) -> tuple[CanonicalEvent | None, list[ParseIssue]]:
    """The canonical event for ``epcisBody.eventList[index]`` and its issues; None when it is skipped."""
    base: list[str | int] = ["epcisBody", "eventList", index]
    position = format_path(base)
    if not isinstance(raw, dict):
        return None, [ParseIssue(position, issues.SCHEMA, "an event must be a JSON object")]
    event_type = raw.get("type")
    if isinstance(event_type, str) and event_type not in EVENT_TYPES:
        reason = (
            f"event type {event_type!r} is not one of the EPCIS 2.0 event types; "
            "extension events are not read"
        )
        return None, [ParseIssue(format_path([*base, "type"]), issues.UNSUPPORTED_EVENT_TYPE, reason)]

    event = copy.deepcopy(raw)
    terms, found = _read_vocabulary(event, base, prefixes)
    vocabulary_positions = {issue.position for issue in found}
    for where, reason in schema_errors(event_validator(), event, base):
        if where not in vocabulary_positions:
            found.append(ParseIssue(where, issues.SCHEMA, reason))
    if found:
        return None, found

    # The schema has checked both fields, so they parse.
    occurred_at = _time(event["eventTime"])
    found.extend(_future(occurred_at, "eventTime", [*base, "eventTime"], now))
    declaration = event.get("errorDeclaration")
    declared_at = None
    if declaration is not None:
        declared_at = _time(declaration["declarationTime"])
        found.extend(
            _future(declared_at, "declarationTime", [*base, "errorDeclaration", "declarationTime"], now)
        )
    if found:
        return None, found

    references, reference_issues = _references(event, base)
    place, place_issues = _place(event, base)
    found.extend(reference_issues)
    found.extend(place_issues)

    biz_step = terms.get("bizStep")
    disposition = terms.get("disposition")
    detail = _detail(event, terms)
    if declaration is not None:
        detail["errorDeclaration"] = _declaration_detail(declaration, declared_at)
    event_id = event.get("eventID")
    canonical = CanonicalEvent(
        source=SOURCE,
        classifier=Classifier.ACTUAL,
        # bizStep is optional in EPCIS; without one the code is "", which no row maps (unknown, flagged).
        code=SourceCode(
            BIZ_STEP_SYSTEM,
            biz_step.value if biz_step else "",
            DISPOSITION_SYSTEM if disposition else None,
            disposition.value if disposition else None,
        ),
        occurred_at=occurred_at.astimezone(dt.UTC),
        references=references,
        position=position,
        source_event_id=event_id if isinstance(event_id, str) else event_hash(event, occurred_at),
        utc_offset_minutes=parse_offset(event["eventTimeZoneOffset"]),
        place=place,
        updated_at=declared_at.astimezone(dt.UTC) if declared_at else None,
        is_retracted=declaration is not None,
        detail=detail,
    )
    return canonical, found


def _time(value: str) -> dt.datetime:
    parsed = parse_date_time(value)
    assert parsed is not None  # the schema's date-time format uses the same parser
    return parsed


def _future(when: dt.datetime, name: str, path: Sequence[str | int], now: dt.datetime) -> list[ParseIssue]:
    if when <= now + FUTURE_TOLERANCE:
        return []
    reason = (
        f"{name} {when.isoformat()} is more than {FUTURE_TOLERANCE.days} day after now "
        f"({now.astimezone(dt.UTC).isoformat()})"
    )
    return [ParseIssue(format_path(path), issues.EVENT_IN_FUTURE, reason)]


def _read_vocabulary(
    event: dict[str, Any], base: Sequence[str | int], prefixes: Mapping[str, str]
) -> tuple[dict[str, Term], list[ParseIssue]]:
    """Check bizStep and dispositions against CBV 2.0 and write standard values as bare words in ``event``
    (as JSON-LD compaction with the standard context would), so the schema and the hash see one spelling.
    """
    terms: dict[str, Term] = {}
    found: list[ParseIssue] = []

    def read(
        container: Any, key: str | int, vocabulary: Vocabulary, path: list[str | int], strict: bool
    ) -> None:
        raw = container[key]
        if not isinstance(raw, str):
            return  # the schema reports the type
        term = read_term(raw, vocabulary, prefixes)
        if term.error is not None:
            if strict:
                found.append(ParseIssue(format_path(path), issues.VOCABULARY, term.error))
            return
        if term.standard:
            container[key] = term.value
        if path[-1] in ("bizStep", "disposition"):
            terms[str(path[-1])] = term

    for name, vocabulary in (("bizStep", BIZ_STEP), ("disposition", DISPOSITION)):
        if name in event:
            read(event, name, vocabulary, [*base, name], strict=True)
    persistent = event.get("persistentDisposition")
    if isinstance(persistent, dict):
        for name in ("set", "unset"):
            values = persistent.get(name)
            if isinstance(values, list):
                for i in range(len(values)):
                    read(values, i, DISPOSITION, [*base, "persistentDisposition", name, i], strict=True)
    # Other CBV lists are only spelled uniformly; their values are not ours to reject.
    for list_name, vocabulary in (
        ("bizTransactionList", BIZ_TRANSACTION_TYPE),
        ("sourceList", SOURCE_DESTINATION_TYPE),
        ("destinationList", SOURCE_DESTINATION_TYPE),
    ):
        items = event.get(list_name)
        if isinstance(items, list):
            for i, item in enumerate(items):
                if isinstance(item, dict) and "type" in item:
                    read(item, "type", vocabulary, [*base, list_name, i, "type"], strict=False)
    declaration = event.get("errorDeclaration")
    if isinstance(declaration, dict) and "reason" in declaration:
        read(declaration, "reason", ERROR_REASON, [*base, "errorDeclaration", "reason"], strict=False)
    return terms, found


def _identifiers(value: Any) -> list[tuple[int | None, str]]:
    if isinstance(value, str):
        return [(None, value)]
    if isinstance(value, list):
        return [(i, item) for i, item in enumerate(value) if isinstance(item, str)]
    return []


def _references(
    event: Mapping[str, Any], base: Sequence[str | int]
) -> tuple[tuple[tuple[str, str], ...], list[ParseIssue]]:
    """SSCCs (logistic units) are tracking numbers; typed business transactions are the references their
    type names. Item-level EPCs (SGTIN, GRAI ...) identify goods, not shipments, and stay in the detail."""
    references: list[tuple[str, str]] = []
    found: list[ParseIssue] = []
    for field in EPC_FIELDS:
        for i, epc in _identifiers(event.get(field)):
            key = parse_gs1_key(epc)
            if key is None or key.ai != SSCC:
                continue
            if not key.check_digit_ok:
                path = [*base, field] if i is None else [*base, field, i]
                reason = f"SSCC {key.value} in {epc!r} has a wrong check digit; not used as a reference"
                found.append(ParseIssue(format_path(path), issues.IDENTIFIER, reason))
                continue
            references.append((ReferenceKind.TRACKING_NUMBER.value, key.value))
    for transaction in event.get("bizTransactionList", ()):
        kind = REFERENCE_KIND_BY_TRANSACTION_TYPE.get(transaction.get("type", ""))
        if kind is not None:
            references.append((kind.value, reference_value(transaction["bizTransaction"])))
    return tuple(dict.fromkeys(references)), found


def _place(event: Mapping[str, Any], base: Sequence[str | int]) -> tuple[Place | None, list[ParseIssue]]:
    """The business location (the site the goods are at) or else the read point, as a facility code:
    the 13-digit GLN for an SGLN or a Digital Link, the identifier itself otherwise."""
    for field in ("bizLocation", "readPoint"):
        location = event.get(field)
        if not isinstance(location, dict):
            continue
        identifier = location["id"]
        key = parse_gs1_key(identifier)
        if key is None or key.ai != GLN:
            return Place(facility_code=identifier), []
        if not key.check_digit_ok:
            reason = f"GLN {key.value} in {identifier!r} has a wrong check digit; kept as written"
            issue = ParseIssue(format_path([*base, field, "id"]), issues.IDENTIFIER, reason)
            return Place(facility_code=identifier), [issue]
        return Place(facility_code=key.value), []
    return None, []


def _detail(event: Mapping[str, Any], terms: Mapping[str, Term]) -> dict[str, Any]:
    detail: dict[str, Any] = {"eventType": event["type"]}
    if "action" in event:
        detail["action"] = event["action"]
    for name in ("bizStep", "disposition"):
        term = terms.get(name)
        if term is not None and not term.standard:
            detail[f"{name}Extension"] = True  # the code is an extension URI, not a CBV value
    for field in ("readPoint", "bizLocation"):
        if isinstance(event.get(field), dict):
            detail[field] = event[field]["id"]
    for field in COPIED_FIELDS:
        if field in event:
            detail[field] = event[field]
    if event.get("sensorElementList"):
        detail["sensor"] = sensor_summary(event["sensorElementList"])
    return detail


def _declaration_detail(declaration: Mapping[str, Any], declared_at: dt.datetime | None) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "declarationTime": declared_at.astimezone(dt.UTC).isoformat() if declared_at else None,
    }
    if "reason" in declaration:
        detail["reason"] = declaration["reason"]
    detail["correctiveEventIDs"] = list(declaration.get("correctiveEventIDs", ()))
    return detail


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def sensor_summary(elements: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the sensor data says, small enough for an event's detail: per measured quantity the count,
    minimum and maximum, and every alarm or error condition a report flags."""
    measurements: dict[tuple[str, str, str], dict[str, Any]] = {}
    alarms: list[dict[str, Any]] = []
    reports = 0
    for element in elements:
        metadata = element.get("sensorMetadata") or {}
        for report in element["sensorReport"]:
            reports += 1
            kind, component, uom = report["type"], report.get("component", ""), report.get("uom", "")
            entry = measurements.setdefault(
                (kind, component, uom),
                {
                    "type": kind,
                    **({"component": component} if component else {}),
                    **({"uom": uom} if uom else {}),
                }
                | {"count": 0, "min": None, "max": None},
            )
            entry["count"] += 1
            for field in ("value", "minValue", "maxValue", "meanValue"):
                number = _number(report.get(field))
                if number is not None:
                    entry["min"] = number if entry["min"] is None else min(entry["min"], number)
                    entry["max"] = number if entry["max"] is None else max(entry["max"], number)
            if report.get("exception"):
                time = report.get("time") or metadata.get("time") or metadata.get("startTime")
                alarms.append({"type": kind, "exception": report["exception"], "time": time})
    return {"elements": len(elements), "reports": reports, "measurements": list(measurements.values())} | (
        {"alarms": alarms} if alarms else {}
    )
