"""X12 tokenizer and envelope reader: bytes in, transaction sets out, one at a time.

We tokenize X12 ourselves rather than use a Python X12 library: those we looked at do not handle the
transport sets (214, 210) well — pyx12, the most complete, is built around the HIPAA healthcare maps — and
what we need from the syntax is small: the delimiters the ISA declares, segments, and the ISA/GS/ST
envelopes with their counts and control numbers checked.

:class:`SegmentReader` is a generator over segments, so a large interchange never becomes one big list;
:class:`InterchangeReader` walks the envelopes and yields each transaction set (ST..SE) as soon as its SE
arrives, keeping only small per-set summaries (:class:`SetSummary`) that the 997 is later built from.

Positions in every issue are ``segment N (TAG) element NN``, N counting the message's segments from 1 (the
ISA). Errors are judged at the level they occur: a bad transaction set rejects that set, a bad functional
group that group, a bad interchange everything in it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from domain.tracking.canonical import ParseIssue

ISA_LENGTH = 106  # with its segment terminator
ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1)  # ISA01..ISA16
REPETITION_SINCE = "00402"  # ISA11 is the repetition separator from version 00402 on
SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{1,2}")
UTF8_BOM = b"\xef\xbb\xbf"
_SNIPPET = 24


def _snippet(text: str) -> str:
    return repr(text[:_SNIPPET] + ("…" if len(text) > _SNIPPET else ""))


class X12SyntaxError(Exception):
    """The text cannot be read as X12 from here on (no ISA, broken ISA, wrong delimiters)."""

    def __init__(self, issue: ParseIssue) -> None:
        super().__init__(issue.reason)
        self.issue = issue


@dataclass(frozen=True, slots=True)
class Delimiters:
    element: str
    component: str
    segment: str
    repetition: str | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    number: int  # 1-based ordinal in the message (the first ISA is 1)
    tag: str
    elements: tuple[str, ...]  # elements[0] is element 01

    def get(self, index: int) -> str:
        """Element ``index`` as X12 numbers them (from 1); empty when absent."""
        if 1 <= index <= len(self.elements):
            return self.elements[index - 1]
        return ""

    def position(self, element: int | None = None) -> str:
        where = (
            f"segment {self.number} ({self.tag})"
            if SEGMENT_ID.fullmatch(self.tag)
            else f"segment {self.number}"
        )
        return where if element is None else f"{where} element {element:02d}"


def decode(body: bytes) -> tuple[str, ParseIssue | None]:
    """UTF-8 (BOM tolerated); anything else is read as latin-1 so every byte survives, with an issue."""
    if body.startswith(UTF8_BOM):
        body = body[len(UTF8_BOM) :]
    try:
        return body.decode("utf-8"), None
    except UnicodeDecodeError as error:
        issue = ParseIssue(
            position=f"byte {error.start}",
            code="x12.encoding_fallback",
            reason=f"the message is not valid UTF-8 (byte {error.start}); it was read as latin-1",
        )
        return body.decode("latin-1"), issue


def _is_delimiter_character(char: str) -> bool:
    return not char.isalnum() and char != " "


def read_isa(text: str, start: int, number: int) -> tuple[Segment, Delimiters]:
    """The ISA at ``text[start:]``: its fields and the delimiters it declares, or an X12SyntaxError."""

    def fail(code: str, reason: str, element: int | None = None) -> X12SyntaxError:
        position = f"segment {number} (ISA)" + ("" if element is None else f" element {element:02d}")
        return X12SyntaxError(ParseIssue(position=position, code=code, reason=reason, fatal=True))

    if not text.startswith("ISA", start):
        found = text[start : start + _SNIPPET + 1]
        raise fail("x12.isa_missing", f"an X12 interchange starts with ISA; found {_snippet(found)}")
    window = text[start : start + ISA_LENGTH + 64]
    if len(window) < 4:
        raise fail("x12.isa_truncated", "the message ends inside the ISA")
    separator = window[3]
    if not _is_delimiter_character(separator):
        raise fail(
            "x12.bad_delimiters",
            f"the element separator (ISA character 4) is {separator!r}; it must be a punctuation character",
        )
    offsets = [3]
    while len(offsets) < len(ISA_WIDTHS):
        found_at = window.find(separator, offsets[-1] + 1)
        if found_at < 0:
            raise fail(
                "x12.bad_delimiters",
                f"the ISA has {len(offsets)} element separators {separator!r}, it needs "
                f"{len(ISA_WIDTHS)}: wrong element separator or truncated ISA",
            )
        offsets.append(found_at)
    isa16 = offsets[-1] + 1
    length = isa16 + 2
    for index, width in enumerate(ISA_WIDTHS[:-1]):
        actual = offsets[index + 1] - offsets[index] - 1
        if actual != width:
            raise fail(
                "x12.isa_length",
                f"ISA{index + 1:02d} has {actual} characters, it must have {width} (the ISA is fixed-width, "
                f"{ISA_LENGTH} characters with its terminator; this one has {length})",
                index + 1,
            )
    if len(window) < length:
        raise fail("x12.isa_truncated", "the message ends inside the ISA (no segment terminator after ISA16)")
    component, terminator = window[isa16], window[isa16 + 1]
    fields = [*window[4 : isa16 - 1].split(separator), component]
    version = fields[11]
    repetition = fields[10] if version.isdigit() and version >= REPETITION_SINCE else None
    if repetition is not None and repetition.isalnum():
        repetition = None  # a pre-00402 habit ("U"); the reader flags it, nothing else depends on it
    if not _is_delimiter_character(component):
        raise fail(
            "x12.bad_delimiters",
            f"the component separator ISA16 is {component!r}; it must be a punctuation character",
            16,
        )
    if not _is_delimiter_character(terminator) or terminator in (separator, component):
        raise fail(
            "x12.bad_delimiters",
            f"the segment terminator (the character after ISA16) is {terminator!r}; it must be a "
            f"punctuation or line-end character distinct from the element separator {separator!r} and the "
            f"component separator {component!r}",
        )
    if repetition is not None and (
        not _is_delimiter_character(repetition) or repetition in (separator, component, terminator)
    ):
        raise fail(
            "x12.bad_delimiters",
            f"ISA11 is {repetition!r}: from version {REPETITION_SINCE} on it is the repetition separator "
            "and must be a punctuation character distinct from the other delimiters",
            11,
        )
    return Segment(number, "ISA", tuple(fields)), Delimiters(separator, component, terminator, repetition)


class SegmentReader:
    """Segments of one message, lazily; interchanges may follow each other, each with its own delimiters.

    Tolerated on the way: a UTF-8 byte-order mark, whitespace before the ISA, line breaks after (or inside)
    segments when they are not themselves a delimiter, indentation before a segment, and a final segment
    without its terminator.
    """

    def __init__(self, body: bytes) -> None:
        self.text, issue = decode(body)
        self.issues: list[ParseIssue] = [] if issue is None else [issue]
        self.delimiters: Delimiters | None = None

    def __iter__(self) -> Iterator[Segment]:
        text = self.text
        position = len(text) - len(text.lstrip())
        if position == len(text):
            raise X12SyntaxError(
                ParseIssue(position="segment 1", code="x12.empty", reason="the message is empty", fatal=True)
            )
        number = 0
        while position < len(text):
            isa, delimiters = read_isa(text, position, number + 1)
            number += 1
            self.delimiters = delimiters
            version = isa.get(12)
            if version.isdigit() and version >= REPETITION_SINCE and delimiters.repetition is None:
                self.issues.append(
                    ParseIssue(
                        position=isa.position(11),
                        code="x12.repetition_separator_invalid",
                        reason=f"ISA11 is {isa.get(11)!r}: from version {REPETITION_SINCE} on it is the "
                        "repetition separator; repeated elements are read as single values",
                    )
                )
            yield isa
            position += ISA_LENGTH
            terminator = delimiters.segment
            used = {delimiters.element, delimiters.component, terminator, delimiters.repetition}
            line_breaks = [c for c in "\r\n" if c not in used]
            padding = "".join(c for c in " \t\r\n" if c not in used)
            if text.find(terminator, position) < 0 and not _lone_trailer(
                text[position:], delimiters, line_breaks
            ):
                hint = "; the segments end with line breaks instead" if "\n" in text[position:] else ""
                raise X12SyntaxError(
                    ParseIssue(
                        position=f"segment {number} (ISA)",
                        code="x12.bad_delimiters",
                        reason=f"the segment terminator {terminator!r} declared by the ISA (the character "
                        f"after ISA16) never occurs after it{hint}",
                        fatal=True,
                    )
                )
            next_interchange = None
            while position < len(text):
                end = text.find(terminator, position)
                stop = len(text) if end < 0 else end
                raw = text[position:stop]
                for char in line_breaks:
                    raw = raw.replace(char, "")
                raw = raw.lstrip(padding)
                if raw.startswith("ISA") and (len(raw) == 3 or _is_delimiter_character(raw[3])):
                    next_interchange = text.find("ISA", position, stop)
                    break
                position = stop + 1
                if raw:
                    number += 1
                    tag, *elements = raw.split(delimiters.element)
                    yield Segment(number, tag, tuple(elements))
            if next_interchange is None:
                return
            position = next_interchange


def _lone_trailer(rest: str, delimiters: Delimiters, line_breaks: list[str]) -> bool:
    """Whether what follows the ISA is nothing, or one unterminated segment (``IEA*1*...``)."""
    rest = rest.strip()
    for char in line_breaks:
        rest = rest.replace(char, "")
    return not rest or (delimiters.element in rest and "\n" not in rest and len(rest) < 64)


# --- envelopes -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentNote:
    """One AK3 (segment in error) line of a 997, with its optional AK4 (element in error)."""

    tag: str
    position_in_set: int  # ST is 1
    segment_code: str  # X12 element 720: 1 unrecognized, 2 unexpected, 3 missing, 8 has element errors
    element: int | None = None
    element_reference: str | None = None  # the data element dictionary number, e.g. 373 for a date
    element_code: str | None = None  # X12 element 723: 1 missing, 2 conditional missing, 7 code, 8 date ...
    bad_value: str | None = None


@dataclass
class SetSummary:
    """What the 997 needs to say about one transaction set; the rest of the set is not kept."""

    set_id: str
    control_number: str
    start: int  # segment number of its ST
    codes: list[str] = field(default_factory=list)  # X12 element 718 (AK5 error codes)
    notes: list[SegmentNote] = field(default_factory=list)
    rejected: bool = False
    complete: bool = False

    def reject(self, code: str) -> None:
        self.rejected = True
        if code not in self.codes:
            self.codes.append(code)


@dataclass
class GroupSummary:
    functional_id: str  # GS01
    sender: str  # GS02
    receiver: str  # GS03
    control_number: str  # GS06
    version: str  # GS08
    start: int
    sets: list[SetSummary] = field(default_factory=list)
    declared_sets: int | None = None  # GE01
    codes: list[str] = field(default_factory=list)  # X12 element 716 (AK9 error codes)
    rejected: bool = False
    closed: bool = False

    def reject(self, code: str | None = None) -> None:
        self.rejected = True
        if code is not None and code not in self.codes:
            self.codes.append(code)


@dataclass
class InterchangeSummary:
    isa: Segment
    delimiters: Delimiters
    groups: list[GroupSummary] = field(default_factory=list)
    rejected: bool = False
    closed: bool = False

    @property
    def control_number(self) -> str:
        return self.isa.get(13)

    @property
    def sender(self) -> str:
        return self.isa.get(6).strip()


@dataclass
class TransactionSet:
    """One ST..SE, complete, with the envelopes around it."""

    segments: list[Segment]
    summary: SetSummary
    group: GroupSummary
    interchange: InterchangeSummary

    @property
    def set_id(self) -> str:
        return self.summary.set_id

    @property
    def control_number(self) -> str:
        return self.summary.control_number

    def note(
        self,
        segment: Segment,
        segment_code: str,
        element: int | None = None,
        element_reference: str | None = None,
        element_code: str | None = None,
        bad_value: str | None = None,
    ) -> SegmentNote:
        return SegmentNote(
            tag=segment.tag,
            position_in_set=segment.number - self.summary.start + 1,
            segment_code=segment_code,
            element=element,
            element_reference=element_reference,
            element_code=element_code,
            bad_value=bad_value,
        )


def same_control_number(a: str, b: str) -> bool:
    a, b = a.strip(), b.strip()
    if a.isdigit() and b.isdigit():
        return int(a) == int(b)
    return a == b


def _count(value: str) -> int | None:
    value = value.strip()
    return int(value) if value.isdigit() else None


@dataclass
class Envelope:
    """Everything the reader learned about the envelopes, and the issues it found, in message order."""

    interchanges: list[InterchangeSummary] = field(default_factory=list)
    issues: list[ParseIssue] = field(default_factory=list)


class InterchangeReader:
    """Walks the ISA/GS/ST envelopes of a message, checking counts and control numbers on the way.

    Iterate :meth:`transaction_sets`; afterwards :attr:`envelope` holds the summaries and every envelope
    issue. Issues a consumer adds to ``envelope.issues`` while iterating stay in message order.
    """

    def __init__(self, body: bytes) -> None:
        self._segments = SegmentReader(body)
        self.envelope = Envelope(issues=self._segments.issues)
        self._interchange: InterchangeSummary | None = None
        self._group: GroupSummary | None = None
        self._set: TransactionSet | None = None
        self._last: Segment | None = None
        self._trailing_reported = False
        self._stray_reported: object | None = None  # the group or interchange a stray was reported for

    def _issue(self, position: str, code: str, reason: str, *, fatal: bool = True) -> None:
        self.envelope.issues.append(ParseIssue(position=position, code=code, reason=reason, fatal=fatal))

    def transaction_sets(self) -> Iterator[TransactionSet]:
        try:
            for segment in self._segments:
                yield from self._take(segment)
                self._last = segment
        except X12SyntaxError as error:
            # the error names the cause; the trailers that never came are not worth an issue each
            self.envelope.issues.append(error.issue)
            self._close_all("", quiet=True)
            return
        self._close_all("the message ends there")

    def _last_position(self) -> str:
        return "its first segment" if self._last is None else self._last.position()

    def _take(self, segment: Segment) -> Iterator[TransactionSet]:
        tag = segment.tag
        if tag == "ISA":
            self._close_all(f"a new interchange starts at segment {segment.number} (ISA)")
            delimiters = self._segments.delimiters
            assert delimiters is not None
            self._interchange = InterchangeSummary(isa=segment, delimiters=delimiters)
            self.envelope.interchanges.append(self._interchange)
            self._trailing_reported = False
            return
        if self._interchange is None or self._interchange.closed:
            if not self._trailing_reported:
                self._trailing_reported = True
                self._issue(
                    segment.position(),
                    "x12.trailing_data",
                    f"{segment.position()} follows the IEA and is ignored, with anything after it",
                    fatal=False,
                )
            return
        if not SEGMENT_ID.fullmatch(tag):
            self._invalid_segment(segment)
            return
        if tag == "GS":
            self._close_set(f"{segment.position()} starts a new functional group")
            self._close_group(f"{segment.position()} starts a new functional group")
            self._open_group(segment)
        elif tag == "ST":
            self._close_set(f"{segment.position()} starts another transaction set")
            self._open_set(segment)
        elif tag == "SE":
            if self._set is None:
                self._stray(segment)
            else:
                yield self._end_set(segment)
        elif tag == "GE":
            self._close_set(f"{segment.position()} ends the functional group")
            if self._group is None:
                self._stray(segment)
            else:
                self._end_group(segment)
        elif tag == "IEA":
            self._close_set(f"{segment.position()} ends the interchange")
            self._close_group(f"{segment.position()} ends the interchange")
            self._end_interchange(segment)
        elif self._set is not None:
            self._set.segments.append(segment)
        else:
            self._stray(segment)

    # -- opening and closing ---------------------------------------------------------------------

    def _open_group(self, segment: Segment) -> None:
        assert self._interchange is not None
        self._group = GroupSummary(
            functional_id=segment.get(1),
            sender=segment.get(2),
            receiver=segment.get(3),
            control_number=segment.get(6),
            version=segment.get(8),
            start=segment.number,
        )
        self._interchange.groups.append(self._group)

    def _open_set(self, segment: Segment) -> None:
        if self._group is None:
            self._stray(segment)
            return
        assert self._interchange is not None
        summary = SetSummary(set_id=segment.get(1), control_number=segment.get(2), start=segment.number)
        if any(same_control_number(s.control_number, summary.control_number) for s in self._group.sets):
            summary.reject("23")
            self._issue(
                segment.position(2),
                "x12.st_duplicate_control",
                f"transaction set control number {summary.control_number!r} is used twice in functional "
                f"group {self._group.control_number}; the second set is rejected",
            )
        self._group.sets.append(summary)
        if not re.fullmatch(r"\d{3}", summary.set_id):
            summary.reject("6")
            self._issue(
                segment.position(1),
                "x12.st_invalid",
                f"ST01 {summary.set_id!r} is not a transaction set identifier",
            )
        if not summary.control_number.strip():
            summary.reject("7")
            self._issue(
                segment.position(2), "x12.st_invalid", "ST02 (transaction set control number) is empty"
            )
        self._set = TransactionSet([segment], summary, self._group, self._interchange)

    def _end_set(self, segment: Segment) -> TransactionSet:
        transaction_set = self._set
        assert transaction_set is not None
        self._set = None
        transaction_set.segments.append(segment)
        summary = transaction_set.summary
        summary.complete = True
        counted = len(transaction_set.segments)
        declared = _count(segment.get(1))
        if declared != counted:
            summary.reject("4")
            self._issue(
                segment.position(1),
                "x12.se_count_mismatch",
                f"SE01 says {segment.get(1)!r} segments; transaction set {summary.control_number} has "
                f"{counted} (ST to SE inclusive); the set is rejected",
            )
        if not same_control_number(segment.get(2), summary.control_number):
            summary.reject("3")
            self._issue(
                segment.position(2),
                "x12.se_control_mismatch",
                f"SE02 {segment.get(2)!r} does not match ST02 {summary.control_number!r}; "
                "the set is rejected",
            )
        return transaction_set

    def _end_group(self, segment: Segment) -> None:
        group = self._group
        assert group is not None
        self._group = None
        group.closed = True
        group.declared_sets = _count(segment.get(1))
        if group.declared_sets != len(group.sets):
            group.reject("5")
            self._issue(
                segment.position(1),
                "x12.ge_count_mismatch",
                f"GE01 says {segment.get(1)!r} transaction sets; functional group {group.control_number} has "
                f"{len(group.sets)}; the group is rejected",
            )
        if not same_control_number(segment.get(2), group.control_number):
            group.reject("4")
            self._issue(
                segment.position(2),
                "x12.ge_control_mismatch",
                f"GE02 {segment.get(2)!r} does not match GS06 {group.control_number!r}; "
                "the group is rejected",
            )

    def _end_interchange(self, segment: Segment) -> None:
        interchange = self._interchange
        assert interchange is not None
        interchange.closed = True
        declared = _count(segment.get(1))
        if declared != len(interchange.groups):
            interchange.rejected = True
            self._issue(
                segment.position(1),
                "x12.iea_count_mismatch",
                f"IEA01 says {segment.get(1)!r} functional groups; interchange "
                f"{interchange.control_number} has {len(interchange.groups)}; the interchange is rejected",
            )
        if not same_control_number(segment.get(2), interchange.control_number):
            interchange.rejected = True
            self._issue(
                segment.position(2),
                "x12.iea_control_mismatch",
                f"IEA02 {segment.get(2)!r} does not match ISA13 {interchange.control_number!r}; "
                "the interchange is rejected",
            )

    def _close_set(self, cause: str, *, quiet: bool = False) -> None:
        if self._set is None:
            return
        summary = self._set.summary
        last = self._set.segments[-1]
        self._set = None
        summary.reject("2")
        if quiet:
            return
        self._issue(
            last.position(),
            "x12.se_missing",
            f"transaction set {summary.control_number} (ST at segment {summary.start}) has no SE trailer "
            f"after {last.position()}: {cause}; the set is rejected",
        )

    def _close_group(self, cause: str, *, quiet: bool = False) -> None:
        if self._group is None:
            return
        group = self._group
        self._group = None
        group.reject("3")
        if quiet:
            return
        self._issue(
            self._last_position(),
            "x12.ge_missing",
            f"functional group {group.control_number} (GS at segment {group.start}) has no GE trailer after "
            f"{self._last_position()}: {cause}; the group is rejected",
        )

    def _close_all(self, cause: str, *, quiet: bool = False) -> None:
        self._close_set(cause, quiet=quiet)
        self._close_group(cause, quiet=quiet)
        interchange = self._interchange
        if interchange is None or interchange.closed:
            return
        interchange.closed = True
        interchange.rejected = True
        if quiet:
            return
        self._issue(
            self._last_position(),
            "x12.iea_missing",
            f"interchange {interchange.control_number} (ISA at segment {interchange.isa.number}) has no IEA "
            f"trailer after {self._last_position()}: {cause}; the interchange is rejected",
        )

    # -- segments out of place -------------------------------------------------------------------

    def _stray(self, segment: Segment) -> None:
        owner: object
        if self._group is not None:
            self._group.reject()
            owner, level = self._group, f"functional group {self._group.control_number}"
        else:
            assert self._interchange is not None
            self._interchange.rejected = True
            owner, level = self._interchange, f"interchange {self._interchange.control_number}"
        if self._stray_reported is owner:
            return  # the rest of a stray set would repeat the same news
        self._stray_reported = owner
        where = "a transaction set" if segment.tag not in ("ST", "GE") else "a functional group"
        self._issue(
            segment.position(),
            "x12.unexpected_segment",
            f"{segment.position()} is outside {where}; the {level} is rejected",
        )

    def _invalid_segment(self, segment: Segment) -> None:
        delimiters = self._segments.delimiters
        assert delimiters is not None
        reason = (
            f"segment {segment.number} does not start with a segment ID followed by the element separator "
            f"{delimiters.element!r} (found {_snippet(segment.tag)}): corrupted data or wrong delimiters"
        )
        position = f"segment {segment.number}"
        if self._set is not None:
            self._set.segments.append(segment)
            summary = self._set.summary
            if not any(issue_code == "5" for issue_code in summary.codes):
                # one issue per set is enough to reject it; garbage would otherwise make thousands
                summary.reject("5")
                summary.notes.append(
                    SegmentNote(tag="", position_in_set=segment.number - summary.start + 1, segment_code="1")
                )
                self._issue(position, "x12.segment_invalid", reason + "; the set is rejected")
            return
        # outside a transaction set nothing after an unreadable segment can be trusted: stop reading
        assert self._interchange is not None
        self._interchange.rejected = True
        raise X12SyntaxError(
            ParseIssue(position, "x12.segment_invalid", reason + "; reading stops here", fatal=True)
        )
