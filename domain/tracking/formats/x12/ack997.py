"""The 997 Functional Acknowledgment we answer an inbound interchange with.

One 997 transaction set per functional group received (groups of 997s are never acknowledged): AK1 names
the group, then per transaction set an AK2, the AK3/AK4 notes of the segments and elements in error, and
an AK5 — A accepted, E accepted with errors noted, R rejected, with the X12 718 error codes (2 trailer
missing, 3 control numbers differ, 4 segment count wrong, 5 segments in error, 23 duplicate control
number ...). AK9 closes the group: A, E, P (partially accepted) or R, the counts and the 716 codes (3 GE
missing, 4 control numbers differ, 5 set count wrong).

The envelope goes back the way it came: sender and receiver swapped, the inbound delimiters, version and
usage indicator, our own control numbers. An interchange-level error (IEA missing or wrong) would properly
be answered with a TA1; we have none, so every group of such an interchange is acknowledged as rejected.
"""

from __future__ import annotations

import datetime as dt
from itertools import groupby

from domain.tracking.formats.x12.tokenizer import (
    Delimiters,
    Envelope,
    GroupSummary,
    InterchangeSummary,
    SegmentNote,
    SetSummary,
)

MEDIA_TYPE = "application/edi-x12"
ACKNOWLEDGMENT_GROUP = "FA"
MAX_CONTROL_NUMBER = 999_999_999
MAX_CODES = 5  # AK5 and AK9 carry at most five error codes
MAX_BAD_VALUE = 99


def set_status(summary: SetSummary) -> tuple[str, list[str]]:
    """AK501 and the AK502.. codes of one transaction set."""
    if summary.rejected:
        return "R", summary.codes or ["5"]
    if summary.notes:
        return "E", ["5"]
    return "A", []


def group_status(group: GroupSummary, interchange: InterchangeSummary) -> tuple[str, int]:
    """AK901 and AK904 (the number of accepted sets) of one functional group."""
    received = len(group.sets)
    accepted = sum(1 for summary in group.sets if not summary.rejected)
    if group.rejected or interchange.rejected or (received and not accepted):
        return "R", 0
    if accepted < received:
        return "P", accepted
    if any(summary.notes for summary in group.sets):
        return "E", accepted
    return "A", accepted


def _control(value: str, default: int) -> int:
    value = value.strip()
    return int(value) if value.isdigit() and 0 < int(value) <= MAX_CONTROL_NUMBER else default


class _Writer:
    def __init__(self, delimiters: Delimiters) -> None:
        self.delimiters = delimiters
        self.segments: list[str] = []

    def clean(self, value: str) -> str:
        for char in (self.delimiters.element, self.delimiters.segment, self.delimiters.component):
            value = value.replace(char, "")
        if self.delimiters.repetition:
            value = value.replace(self.delimiters.repetition, "")
        return value

    def add(self, tag: str, *elements: str) -> None:
        values = [self.clean(value) for value in elements]
        while values and not values[-1]:
            values.pop()  # X12 leaves trailing empty elements out
        self.segments.append(self.delimiters.element.join([tag, *values]))


def _notes(writer: _Writer, notes: list[SegmentNote]) -> None:
    ordered = sorted(notes, key=lambda note: note.position_in_set)
    for (tag, position), same_segment in groupby(ordered, key=lambda n: (n.tag, n.position_in_set)):
        if not tag:
            continue  # an unreadable segment has no ID to name; the AK5 says enough
        notes_here = list(same_segment)
        elements = [note for note in notes_here if note.element is not None]
        segment_code = "8" if elements else notes_here[0].segment_code
        writer.add("AK3", tag, str(position), "", segment_code)
        for note in elements:
            writer.add(
                "AK4",
                str(note.element),
                note.element_reference or "",
                note.element_code or "",
                (note.bad_value or "")[:MAX_BAD_VALUE],
            )


def _group_acknowledgment(
    writer: _Writer, group: GroupSummary, interchange: InterchangeSummary, control_number: str
) -> None:
    start = len(writer.segments)
    writer.add("ST", "997", control_number)
    ak1 = [group.functional_id, group.control_number]
    if group.version >= "005010":
        ak1.append(group.version)  # AK103 exists from 005010 on
    writer.add("AK1", *ak1)
    for summary in group.sets:
        writer.add("AK2", summary.set_id, summary.control_number)
        _notes(writer, summary.notes)
        status, codes = set_status(summary)
        writer.add("AK5", status, *codes[:MAX_CODES])
    status, accepted = group_status(group, interchange)
    received = len(group.sets)
    declared = group.declared_sets if group.declared_sets is not None else received
    writer.add("AK9", status, str(declared), str(received), str(accepted), *group.codes[:MAX_CODES])
    writer.add("SE", str(len(writer.segments) - start + 1), control_number)


def _interchange_acknowledgment(
    interchange: InterchangeSummary, groups: list[GroupSummary], now: dt.datetime, icn: int, gcn: int
) -> str:
    delimiters = interchange.delimiters
    writer = _Writer(delimiters)
    isa = interchange.isa
    version = isa.get(12)
    isa_fields = [
        "00",
        " " * 10,
        "00",
        " " * 10,
        isa.get(7).ljust(2)[:2],
        isa.get(8).ljust(15)[:15],
        isa.get(5).ljust(2)[:2],
        isa.get(6).ljust(15)[:15],
        now.strftime("%y%m%d"),
        now.strftime("%H%M"),
        delimiters.repetition or "U",
        version,
        f"{icn:09d}",
        "0",
        isa.get(15) or "P",
        delimiters.component,
    ]
    writer.segments.append(delimiters.element.join(["ISA", *isa_fields]))
    first = groups[0]
    writer.add(
        "GS",
        ACKNOWLEDGMENT_GROUP,
        first.receiver,
        first.sender,
        now.strftime("%Y%m%d"),
        now.strftime("%H%M"),
        str(gcn),
        "X",
        first.version or "004010",
    )
    for number, group in enumerate(groups, start=1):
        _group_acknowledgment(writer, group, interchange, f"{number:04d}")
    writer.add("GE", str(len(groups)), str(gcn))
    writer.add("IEA", "1", f"{icn:09d}")
    return "".join(segment + delimiters.segment for segment in writer.segments)


def build_997(
    envelope: Envelope,
    *,
    now: dt.datetime,
    interchange_control_number: int | None = None,
    group_control_number: int | None = None,
) -> bytes | None:
    """The 997 for what :class:`~.tokenizer.InterchangeReader` read, or None when there is nothing to answer.

    Our control numbers come from the caller (they are a sequence per trading partner); without them the
    inbound ISA13 and GS06 are echoed. A message with several interchanges gets one 997 interchange each,
    numbered on from the given control numbers.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(dt.UTC)
    parts: list[str] = []
    for interchange in envelope.interchanges:
        groups = [group for group in interchange.groups if group.functional_id != ACKNOWLEDGMENT_GROUP]
        if not groups:
            continue
        offset = len(parts)
        icn = (
            interchange_control_number + offset
            if interchange_control_number is not None
            else _control(interchange.control_number, 1)
        )
        gcn = (
            group_control_number + offset
            if group_control_number is not None
            else _control(groups[0].control_number, 1)
        )
        for number, name in ((icn, "interchange"), (gcn, "group")):
            if not 0 < number <= MAX_CONTROL_NUMBER:
                raise ValueError(f"{name} control number {number} is outside 1..{MAX_CONTROL_NUMBER}")
        parts.append(_interchange_acknowledgment(interchange, groups, now, icn, gcn))
    return "".join(parts).encode("utf-8") if parts else None
