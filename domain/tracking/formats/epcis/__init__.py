"""GS1 EPCIS 2.0 JSON / JSON-LD capture documents → canonical tracking events.

What is checked, in order:

1. The message is UTF-8 JSON nesting at most 64 levels (``epcis.json``, ``epcis.too_deep``), is an
   ``EPCISDocument`` (``epcis.not_document``) of schema version 2.x (``epcis.version``) whose envelope
   passes the EPCIS 2.0 JSON Schema (``epcis.schema``). Any failure here rejects the whole message.
2. Each event on its own: bizStep and dispositions against CBV 2.0 (``epcis.vocabulary``), the JSON Schema
   (``epcis.schema``), eventTime not beyond ``now`` + 1 day (``epcis.event_in_future``). A bad event is
   skipped and reported at its position (``epcisBody.eventList[2].eventTime``); the others are kept. A
   document none of whose events can be read is rejected (``epcis.no_valid_event``).

Every event is an actual (``ACT``): EPCIS records what happened. Its code is the bizStep (``epcis.bizstep``)
refined by the disposition (``epcis.disposition``), as bare CBV words or extension URIs. An event with an
``errorDeclaration`` retracts the event with the same id (``is_retracted``, ``updated_at`` = the declaration
time); when both are in one document only the retraction is kept. Events without ``eventID`` get a hash of
their content as id, which the declaration of the same event shares.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from domain.tracking.canonical import CanonicalEvent, ParsedMessage, ParseIssue
from domain.tracking.formats.epcis import issues
from domain.tracking.formats.epcis.decode import MAX_DEPTH, DecodeError, decode, value_depth
from domain.tracking.formats.epcis.events import read_event
from domain.tracking.formats.epcis.schema import document_validator, schema_errors
from domain.tracking.formats.epcis.vocabulary import document_prefixes, has_standard_context

__all__ = ["MAX_DEPTH", "issues", "parse_epcis"]

ROOT = "$"  # the position of an issue about the whole document
_VERSION_2 = re.compile(r"^2(\.\d+)*$")


def parse_epcis(document: bytes | Any, *, now: dt.datetime) -> ParsedMessage:
    """Parse an EPCIS 2.0 capture document: raw bytes (or text), or JSON already decoded."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    message = ParsedMessage()
    data = _load(document, message)
    if message.rejected:
        return message
    event_list = data["epcisBody"]["eventList"]

    if not has_standard_context(data["@context"]):
        message.issues.append(
            ParseIssue(
                "@context",
                issues.CONTEXT,
                "@context does not name the EPCIS 2.0 context "
                "(https://ref.gs1.org/standards/epcis/epcis-context.jsonld); standard meanings are assumed",
            )
        )
    prefixes = document_prefixes(data["@context"])

    kept: list[CanonicalEvent | None] = []
    slot_by_id: dict[str, int] = {}
    unreadable = 0
    for index, raw in enumerate(event_list):
        event, event_issues = read_event(raw, index, prefixes=prefixes, now=now)
        message.issues.extend(event_issues)
        if event is None:
            unreadable += 1
            continue
        assert event.source_event_id is not None
        slot = slot_by_id.get(event.source_event_id)
        if slot is None:
            slot_by_id[event.source_event_id] = len(kept)
            kept.append(event)
            continue
        earlier = kept[slot]
        assert earlier is not None
        if event.is_retracted and not earlier.is_retracted:
            # The declaration replaces the event it retracts, where the declaration stands.
            kept[slot] = None
            slot_by_id[event.source_event_id] = len(kept)
            kept.append(_with_detail(event, retractsPosition=earlier.position))
        elif earlier.is_retracted and not event.is_retracted:
            kept[slot] = _with_detail(earlier, retractsPosition=event.position)
        else:
            message.issues.append(
                ParseIssue(
                    event.position,
                    issues.DUPLICATE_EVENT,
                    f"event {event.source_event_id} already appears at {earlier.position}; "
                    "this one is skipped",
                )
            )
    message.events = _note_corrections([event for event in kept if event is not None])

    if event_list and unreadable == len(event_list):
        message.issues.append(
            ParseIssue(
                "epcisBody.eventList",
                issues.NO_VALID_EVENT,
                f"none of the {len(event_list)} events could be read; the document is rejected",
                fatal=True,
            )
        )
    return message


def _fatal(message: ParsedMessage, position: str, code: str, reason: str) -> None:
    message.issues.append(ParseIssue(position, code, reason, fatal=True))


def _load(document: bytes | Any, message: ParsedMessage) -> Any:
    """The decoded document, after the checks that reject a message whole (recorded in ``message``)."""
    if isinstance(document, bytes | bytearray | memoryview | str):
        try:
            data = decode(document)
        except DecodeError as error:
            _fatal(message, ROOT, error.code, error.reason)
            return None
    else:
        data = document
        depth = value_depth(data)
        if depth > MAX_DEPTH:
            _fatal(message, ROOT, issues.TOO_DEEP, f"JSON nests more than {MAX_DEPTH} levels deep")
            return None
    if not isinstance(data, dict):
        _fatal(message, ROOT, issues.NOT_DOCUMENT, "expected a JSON object of type 'EPCISDocument'")
        return None
    if data.get("type") != "EPCISDocument":
        _fatal(
            message,
            "type" if "type" in data else ROOT,
            issues.NOT_DOCUMENT,
            f"type is {data.get('type')!r}; only an EPCISDocument (capture) is accepted",
        )
        return None

    # The envelope here; the events one by one, so that one bad event does not reject the others.
    envelope = dict(data)
    body = data.get("epcisBody")
    if isinstance(body, dict) and isinstance(body.get("eventList"), list):
        envelope["epcisBody"] = {**body, "eventList": []}
    for position, reason in schema_errors(document_validator(), envelope, []):
        _fatal(message, position or ROOT, issues.SCHEMA, reason)
    if message.rejected:
        return None
    version = data["schemaVersion"]
    if not _VERSION_2.match(version):
        _fatal(message, "schemaVersion", issues.VERSION, f"schemaVersion {version!r} is not EPCIS 2.x")
        return None
    return data


def _with_detail(event: CanonicalEvent, **extra: Any) -> CanonicalEvent:
    return dataclasses.replace(event, detail={**event.detail, **extra})


def _note_corrections(events: list[CanonicalEvent]) -> list[CanonicalEvent]:
    """Mark the corrective events a declaration names, when they are in the same document."""
    corrects: dict[str, str] = {}
    for event in events:
        if event.is_retracted:
            for corrective in event.detail["errorDeclaration"]["correctiveEventIDs"]:
                assert event.source_event_id is not None
                corrects[corrective] = event.source_event_id
    return [
        _with_detail(event, correctsEventID=corrects[event.source_event_id])
        if event.source_event_id in corrects and not event.is_retracted
        else event
        for event in events
    ]
