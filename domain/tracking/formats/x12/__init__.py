"""ANSI X12 adapter: 214 shipment status messages in, canonical events and a 997 out.

Pure: bytes and ``now`` in, a :class:`~domain.tracking.canonical.ParsedMessage` out. We tokenize X12
ourselves (``tokenizer``) because the Python X12 libraries do not handle the transport sets 214 and 210
well; the envelope is read as a stream of transaction sets so a large file never becomes one structure.

- 214 sets become events, one per AT7 (``ts214``);
- 210 freight invoices produce no events and no error here; finance reads them with
  :func:`~domain.tracking.formats.x12.ts210.read_invoices`;
- any other transaction set is rejected as unsupported.

Errors count at the level they occur: the events of a set are kept unless that set, its functional group
or its interchange was rejected. Every message that names a readable interchange is answered with a 997
(``ack997``) in ``ParsedMessage.acknowledgment``.
"""

from __future__ import annotations

import datetime as dt

from domain.tracking.canonical import CanonicalEvent, ParsedMessage, ParseIssue
from domain.tracking.formats.x12.ack997 import MEDIA_TYPE, build_997
from domain.tracking.formats.x12.tokenizer import (
    GroupSummary,
    InterchangeReader,
    InterchangeSummary,
    SegmentNote,
    SetSummary,
)
from domain.tracking.formats.x12.ts210 import parse_210
from domain.tracking.formats.x12.ts214 import parse_214

__all__ = ["MEDIA_TYPE", "build_997", "parse_x12"]


def parse_x12(
    body: bytes,
    *,
    now: dt.datetime,
    interchange_control_number: int | None = None,
    group_control_number: int | None = None,
) -> ParsedMessage:
    """Parse an X12 message; the control numbers are those of our 997 (see :func:`build_997`)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    reader = InterchangeReader(body)
    issues = reader.envelope.issues
    # per set only its summaries and events are kept, never its segments
    read: list[tuple[SetSummary, GroupSummary, InterchangeSummary, list[CanonicalEvent]]] = []
    for transaction_set in reader.transaction_sets():
        events: list[CanonicalEvent] = []
        notes: list[SegmentNote]
        set_issues: list[ParseIssue]
        if transaction_set.set_id == "214":
            parsed_214 = parse_214(transaction_set, now=now)
            events, set_issues, notes, fatal = (
                parsed_214.events,
                parsed_214.issues,
                parsed_214.notes,
                parsed_214.fatal,
            )
        elif transaction_set.set_id == "210":
            parsed_210 = parse_210(transaction_set)
            set_issues, notes, fatal = parsed_210.issues, parsed_210.notes, parsed_210.fatal
        else:
            first = transaction_set.segments[0]
            set_issues = [
                ParseIssue(
                    position=first.position(1),
                    code="x12.unsupported_transaction_set",
                    reason=f"transaction set {transaction_set.set_id!r} ({transaction_set.control_number}) "
                    "is not supported (we read 214 shipment status and 210 freight invoices); "
                    "the set is rejected",
                    fatal=True,
                )
            ]
            notes, fatal = [], False
            transaction_set.summary.reject("1")
        issues.extend(set_issues)
        transaction_set.summary.notes.extend(notes)
        if fatal:
            transaction_set.summary.reject("5")
        read.append((transaction_set.summary, transaction_set.group, transaction_set.interchange, events))

    message = ParsedMessage(issues=issues)
    message.events = [
        event
        for summary, group, interchange, events in read
        if not (summary.rejected or group.rejected or interchange.rejected)
        for event in events
    ]
    message.acknowledgment = build_997(
        reader.envelope,
        now=now,
        interchange_control_number=interchange_control_number,
        group_control_number=group_control_number,
    )
    if message.acknowledgment is not None:
        message.acknowledgment_media_type = MEDIA_TYPE
    return message
