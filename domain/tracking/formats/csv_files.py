"""Bulk CSV files: one row per shipment (the *shipments* layout) or one row per event (the *events* layout).

``docs/formats/csv.md`` documents both. The layout is recognised from the header. Files are read as a
stream, row by row (:func:`iter_csv_records` is a generator), so a large file is never held in memory; a
bad row is reported with its line and column and skipped, the good rows are kept. Only a file whose header
cannot be used (missing or unknown columns, neither layout) is rejected as a whole.

Accepted: UTF-8 with or without BOM, LF or CRLF line ends, ``,`` or ``;`` as delimiter (recognised from the
header line), fields quoted with ``"`` (``""`` inside quotes is a quote).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import itertools
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from domain.shipments.models import MilestoneCode, Mode, Priority, ReferenceKind
from domain.shipments.service import PlannedMilestone, ShipmentDraft
from domain.tracking.canonical import CanonicalEvent, Classifier, ParsedMessage, ParseIssue, Place, SourceCode
from domain.tracking.formats.canonical_json import (
    CONTROL,
    LOCODE,
    MAX_CARRIER_CODE,
    MAX_EVENT_ID,
    MAX_NAME,
    MAX_REFERENCE,
    MILESTONES,
    TimestampError,
    check_event_time,
    parse_code,
    parse_timestamp,
)

SOURCE = "csv"
MAX_FIELD = 1024
MAX_COLUMNS = 100
MAX_LINE_BYTES = 4 * MAX_COLUMNS * MAX_FIELD  # a physical line longer than any valid row could be
MAX_REPORTED_ISSUES = 1000
MAX_ACCOUNT_CODE = 64  # account.code
MAX_SERVICE_LEVEL = 16  # shipment.service_level
ANY_REFERENCE_KIND = "any"  # an events row without reference_kind: match the value against every kind
REFERENCE_SEPARATOR = "|"


class CsvLayout(StrEnum):
    SHIPMENTS = "shipments"
    EVENTS = "events"


REFERENCE_COLUMNS = {kind.value: kind for kind in ReferenceKind}
PLANNED_COLUMNS = {f"planned_{code.value.lower()}": code for code in MilestoneCode}
SHIPMENT_COLUMNS = frozenset(
    {
        "account_code",
        "mode",
        "carrier_code",
        "service_level",
        "origin_locode",
        "destination_locode",
        "promised_delivery_at",
        "declared_value",
        "currency",
        "priority",
        "etd",
        "eta",
        *REFERENCE_COLUMNS,
        *PLANNED_COLUMNS,
    }
)
SHIPMENT_REQUIRED = ("account_code", "mode")
EVENT_COLUMNS = frozenset(
    {
        "reference",
        "reference_kind",
        "code",
        "classifier",
        "occurred_at",
        "locode",
        "location_name",
        "source_event_id",
        "carrier_code",
    }
)
EVENT_REQUIRED = ("reference", "code", "classifier", "occurred_at")
_LAYOUTS = {
    CsvLayout.SHIPMENTS: (SHIPMENT_COLUMNS, SHIPMENT_REQUIRED),
    CsvLayout.EVENTS: (EVENT_COLUMNS, EVENT_REQUIRED),
}
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_FREE_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_AMOUNT = re.compile(r"^\d{1,12}(\.\d{1,2})?$")  # shipment.declared_value is NUMERIC(14, 2)

ShipmentRow = dict[str, Any]


@dataclass(frozen=True, slots=True)
class CsvHeader:
    layout: CsvLayout
    columns: tuple[str, ...]
    delimiter: str


@dataclass(frozen=True, slots=True)
class CsvRow:
    line: int  # the physical line the row starts on (the header is line 1 unless blank lines precede it)
    values: Mapping[str, str]  # column -> stripped text; every header column is present


class _Stop(Exception):
    """A problem after which the rest of the stream cannot be read reliably."""

    def __init__(self, issue: ParseIssue) -> None:
        super().__init__(issue.reason)
        self.issue = issue


def _physical_lines(stream: Iterable[bytes | str], bad_lines: set[int]) -> Iterator[str]:
    """Decoded lines with their line ends, split on LF only (CR LF is left to the csv module).

    Each line is decoded on its own, so an invalid UTF-8 byte spoils only its line: the line number goes
    to ``bad_lines`` and the row that contains it is reported, the rest of the file is still read.
    """
    buffer = bytearray()
    number = 0
    first = True

    def decode(raw: bytes) -> str:
        nonlocal number, first
        number += 1
        if first:
            first = False
            raw = raw.removeprefix(codecs.BOM_UTF8)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            bad_lines.add(number)
            return raw.decode("utf-8", errors="replace")

    for chunk in stream:
        buffer += chunk.encode("utf-8") if isinstance(chunk, str) else chunk
        start = 0
        while (end := buffer.find(b"\n", start)) != -1:
            yield decode(bytes(buffer[start : end + 1]))
            start = end + 1
        del buffer[:start]
        if len(buffer) > MAX_LINE_BYTES:
            raise _Stop(
                ParseIssue(
                    f"line {number + 1}",
                    "line_too_long",
                    f"a line longer than {MAX_LINE_BYTES} bytes; the rest of the file is not read",
                    fatal=True,
                )
            )
    if buffer:
        yield decode(bytes(buffer))


def _sniff_delimiter(header_line: str) -> str:
    counts = {",": 0, ";": 0}
    quoted = False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    return ";" if counts[";"] > counts[","] else ","


def _header(names: list[str], line: int, delimiter: str) -> CsvHeader | ParseIssue:
    def fatal(code: str, reason: str) -> ParseIssue:
        return ParseIssue(f"line {line}", code, reason, fatal=True)

    if len(names) > MAX_COLUMNS:
        return fatal("too_many_columns", f"{len(names)} columns, more than {MAX_COLUMNS}")
    columns = [name.strip().lower() for name in names]
    for index, name in enumerate(columns, start=1):
        if not name:
            return fatal("unnamed_column", f"column {index} has no name")
        if len(name) > MAX_FIELD:
            return fatal("too_long", f"the name of column {index} is longer than {MAX_FIELD} characters")
    duplicates = sorted({name for name in columns if columns.count(name) > 1})
    if duplicates:
        return fatal("duplicate_column", f"column(s) {', '.join(duplicates)} appear more than once")
    present = set(columns)
    if "account_code" in present or "mode" in present:
        layout = CsvLayout.SHIPMENTS
    elif present & {"code", "classifier", "occurred_at", "reference"}:
        layout = CsvLayout.EVENTS
    else:
        return fatal(
            "unknown_layout",
            "the header matches neither layout: a shipments file has account_code and mode, "
            "an events file has reference, code, classifier and occurred_at",
        )
    allowed, required = _LAYOUTS[layout]
    unknown = [name for name in columns if name not in allowed]
    if unknown:
        return fatal("unknown_column", f"column(s) {', '.join(unknown)} are not part of the {layout} layout")
    missing = [name for name in required if name not in present]
    if missing:
        return fatal("missing_column", f"the {layout} layout needs column(s) {', '.join(missing)}")
    return CsvHeader(layout, tuple(columns), delimiter)


def iter_csv_rows(stream: Iterable[bytes | str]) -> Iterator[CsvHeader | CsvRow | ParseIssue]:
    """The header, then each data row, of a CSV stream; issues for rows that cannot be split into fields.

    Yields one :class:`CsvHeader` first (or a fatal issue, then stops), then :class:`CsvRow` and
    :class:`ParseIssue` items in file order. Blank lines are skipped. ``stream`` is any iterable of byte
    or text chunks (an open binary file, an upload's chunks); chunks may split lines anywhere.
    """
    bad_lines: set[int] = set()
    lines = _physical_lines(stream, bad_lines)
    skipped = 0
    try:
        for first_line in lines:
            if first_line.strip():
                break
            skipped += 1
        else:
            yield ParseIssue("line 1", "empty_file", "the file is empty: no header", fatal=True)
            return
        delimiter = _sniff_delimiter(first_line)
        reader = csv.reader(itertools.chain([first_line], lines), delimiter=delimiter, strict=True)
        header: CsvHeader | None = None
        consumed = 0  # reader.line_num after the previous record
        while True:
            start = skipped + consumed + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                consumed = reader.line_num
                issue = ParseIssue(f"line {start}", "malformed_row", f"cannot be split into fields: {error}")
                if header is None:
                    yield ParseIssue(issue.position, issue.code, issue.reason, fatal=True)
                    return
                yield issue
                continue
            consumed = reader.line_num
            end = skipped + consumed
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if any(line in bad_lines for line in range(start, end + 1)):
                issue = ParseIssue(f"line {start}", "not_utf8", "is not valid UTF-8")
                if header is None:
                    yield ParseIssue(issue.position, issue.code, issue.reason, fatal=True)
                    return
                yield issue
                continue
            if header is None:
                checked = _header(fields, start, delimiter)
                if isinstance(checked, ParseIssue):
                    yield checked
                    return
                header = checked
                yield header
                continue
            row_issues = _row_shape(fields, header, start)
            if row_issues:
                yield from row_issues
                continue
            yield CsvRow(start, dict(zip(header.columns, (value.strip() for value in fields), strict=True)))
    except _Stop as stop:
        yield stop.issue


def _row_shape(fields: list[str], header: CsvHeader, line: int) -> list[ParseIssue]:
    if len(fields) > MAX_COLUMNS:
        return [
            ParseIssue(f"line {line}", "too_many_columns", f"{len(fields)} fields, more than {MAX_COLUMNS}")
        ]
    if len(fields) != len(header.columns):
        return [
            ParseIssue(
                f"line {line}",
                "wrong_column_count",
                f"{len(fields)} fields, the header has {len(header.columns)}",
            )
        ]
    return [
        ParseIssue(
            f"line {line}, column {column}", "too_long", f"{len(value)} characters, more than {MAX_FIELD}"
        )
        for column, value in zip(header.columns, fields, strict=True)
        if len(value) > MAX_FIELD
    ]


class _Row:
    """Validation of one data row; collects every problem of the row."""

    def __init__(self, row: CsvRow) -> None:
        self.row = row
        self.issues: list[ParseIssue] = []

    def fail(self, column: str, code: str, reason: str) -> None:
        self.issues.append(ParseIssue(f"line {self.row.line}, column {column}", code, reason))

    def get(self, column: str) -> str | None:
        return self.row.values.get(column) or None

    def text(self, column: str, limit: int, *, required: bool = False, free_text: bool = False) -> str | None:
        """A value of at most ``limit`` characters; codes and ids have no control characters, free text
        (names) may span lines but holds no other control character."""
        value = self.get(column)
        if value is None:
            if required:
                self.fail(column, "missing", "is required")
            return None
        if len(value) > limit:
            self.fail(column, "too_long", f"{len(value)} characters, more than {limit}")
            return None
        if (_FREE_TEXT_CONTROL if free_text else CONTROL).search(value):
            self.fail(column, "control_character", "contains a control character")
            return None
        return value

    def choice(self, column: str, options: Iterable[str], *, required: bool = False) -> str | None:
        """One of ``options``, matched ignoring case, returned as the option is spelled."""
        value = self.text(column, MAX_FIELD, required=required)
        if value is None:
            return None
        allowed = {option.lower(): option for option in options}
        if value.lower() not in allowed:
            self.fail(column, "unknown_value", f"{value!r} is not one of {', '.join(allowed.values())}")
            return None
        return allowed[value.lower()]

    def locode(self, column: str) -> str | None:
        value = self.text(column, MAX_FIELD)
        if value is None:
            return None
        if not LOCODE.match(value.upper()):
            self.fail(column, "invalid_locode", f"{value!r} is not a UN/LOCODE (e.g. NLRTM)")
            return None
        return value.upper()

    def time(self, column: str, *, required: bool = False) -> tuple[dt.datetime, int] | None:
        value = self.text(column, MAX_FIELD, required=required)
        if value is None:
            return None
        try:
            stamp = parse_timestamp(value)
        except TimestampError as error:
            self.fail(column, "invalid_time", str(error))
            return None
        assert stamp.offset_minutes is not None
        return stamp.at, stamp.offset_minutes


def _shipment(row: CsvRow) -> tuple[ShipmentRow | None, list[ParseIssue]]:
    check = _Row(row)
    account_code = check.text("account_code", MAX_ACCOUNT_CODE, required=True)
    mode = check.choice("mode", (mode.value for mode in Mode), required=True)
    carrier_code = check.text("carrier_code", MAX_CARRIER_CODE)
    service_level = check.text("service_level", MAX_SERVICE_LEVEL)
    origin = check.locode("origin_locode")
    destination = check.locode("destination_locode")
    promised = check.time("promised_delivery_at")
    priority = check.choice("priority", (priority.value for priority in Priority)) or Priority.NORMAL.value

    value_text = check.get("declared_value")
    currency_text = check.get("currency")
    declared_value: Decimal | None = None
    currency: str | None = None
    if value_text is not None:
        if _AMOUNT.match(value_text):
            declared_value = Decimal(value_text)
        else:
            check.fail(
                "declared_value",
                "invalid_amount",
                f"{value_text!r} is not an amount: digits with '.' for decimals, at most 2 (e.g. 1250.00)",
            )
    if currency_text is not None:
        if _CURRENCY.match(currency_text.upper()):
            currency = currency_text.upper()
        else:
            check.fail(
                "currency", "invalid_currency", f"{currency_text!r} is not an ISO 4217 code (e.g. EUR)"
            )
    if value_text is not None and currency_text is None:
        check.fail("currency", "missing", "is required when declared_value is given")
    if currency_text is not None and value_text is None:
        check.fail("declared_value", "missing", "is required when currency is given")

    references: list[tuple[str, str]] = []
    for column, kind in REFERENCE_COLUMNS.items():
        value = check.get(column)
        if value is None:
            continue
        for part in value.split(REFERENCE_SEPARATOR):
            reference = part.strip()
            if not reference:
                check.fail(column, "empty", f"{value!r} has an empty reference between '|' separators")
            elif len(reference) > MAX_REFERENCE:
                check.fail(
                    column,
                    "too_long",
                    f"a reference of {len(reference)} characters, more than {MAX_REFERENCE}",
                )
            elif CONTROL.search(reference):
                check.fail(column, "control_character", "contains a control character")
            elif (kind.value, reference) not in references:
                references.append((kind.value, reference))
    if not references and not any(check.get(column) for column in REFERENCE_COLUMNS):
        check.issues.append(
            ParseIssue(
                f"line {row.line}",
                "no_reference",
                f"a shipment needs at least one reference ({', '.join(REFERENCE_COLUMNS)})",
            )
        )

    etd = check.time("etd")
    eta = check.time("eta")
    planned: dict[MilestoneCode, dt.datetime] = {}
    for column, code in PLANNED_COLUMNS.items():
        stamp = check.time(column)
        if stamp is not None:
            planned[code] = stamp[0]
    for column, code, stamp in (("etd", MilestoneCode.DEPARTED, etd), ("eta", MilestoneCode.ARRIVED, eta)):
        if stamp is None:
            continue
        if code in planned and planned[code] != stamp[0]:
            check.fail(column, "conflict", f"disagrees with planned_{code.value.lower()}")
        planned.setdefault(code, stamp[0])

    if check.issues:
        return None, check.issues
    shipment: ShipmentRow = {
        "line": row.line,
        "account_code": account_code,
        "mode": mode,
        "carrier_code": carrier_code,
        "service_level": service_level,
        "origin_locode": origin,
        "destination_locode": destination,
        "promised_delivery_at": promised[0] if promised else None,
        "declared_value": declared_value,
        "declared_value_currency": currency,
        "priority": priority,
        "references": references,
        "etd": etd[0] if etd else None,
        "eta": eta[0] if eta else None,
        # in timeline order, which is the order of MilestoneCode
        "milestones": [
            {"code": code.value, "planned_at": planned[code]} for code in MilestoneCode if code in planned
        ],
    }
    return shipment, []


def to_shipment_draft(row: Mapping[str, Any], account_id: uuid.UUID) -> ShipmentDraft:
    """The draft ``create_shipment`` takes, once the importer has resolved ``account_code`` to an account."""
    return ShipmentDraft(
        account_id=account_id,
        mode=row["mode"],
        references=list(row["references"]),
        carrier_code=row["carrier_code"],
        service_level=row["service_level"],
        origin_locode=row["origin_locode"],
        destination_locode=row["destination_locode"],
        promised_delivery_at=row["promised_delivery_at"],
        declared_value=row["declared_value"],
        declared_value_currency=row["declared_value_currency"],
        priority=row["priority"],
        milestones=[PlannedMilestone(code=m["code"], planned_at=m["planned_at"]) for m in row["milestones"]],
        plan_source=SOURCE,
    )


def _event(row: CsvRow, now: dt.datetime) -> tuple[CanonicalEvent | None, list[ParseIssue]]:
    check = _Row(row)
    reference = check.text("reference", MAX_REFERENCE, required=True)
    kind = check.choice("reference_kind", REFERENCE_COLUMNS) or ANY_REFERENCE_KIND

    code: SourceCode | None = None
    code_text = check.text("code", MAX_FIELD, required=True)
    if code_text is not None:
        # canonical milestones are accepted in any case; "system:code" is kept exactly as written
        parsed = parse_code(code_text.upper() if code_text.upper() in MILESTONES else code_text)
        if isinstance(parsed, str):
            check.fail("code", "unknown_code", parsed)
        else:
            code = parsed

    classifier_text = check.choice("classifier", Classifier, required=True)
    classifier = Classifier(classifier_text) if classifier_text else None
    stamp = check.time("occurred_at", required=True)
    if stamp is not None and classifier is not None:
        problem = check_event_time(classifier, stamp[0], now)
        if problem is not None:
            check.fail("occurred_at", *problem)
    locode = check.locode("locode")
    location_name = check.text("location_name", MAX_NAME, free_text=True)
    event_id = check.text("source_event_id", MAX_EVENT_ID)
    carrier_code = check.text("carrier_code", MAX_CARRIER_CODE)

    if check.issues or reference is None or code is None or classifier is None or stamp is None:
        return None, check.issues
    place = Place(locode=locode, name=location_name) if locode or location_name else None
    event = CanonicalEvent(
        source=SOURCE,
        classifier=classifier,
        code=code,
        occurred_at=stamp[0],
        references=((kind, reference),),
        position=f"line {row.line}",
        source_event_id=event_id,
        utc_offset_minutes=stamp[1],
        place=place,
        carrier_code=carrier_code,
    )
    return event, []


def iter_csv_records(
    stream: Iterable[bytes | str], *, now: dt.datetime
) -> Iterator[CsvHeader | CanonicalEvent | ShipmentRow | ParseIssue]:
    """The header, then validated records (events or shipment rows) and issues, one row at a time."""
    layout: CsvLayout | None = None
    for item in iter_csv_rows(stream):
        if isinstance(item, CsvHeader):
            layout = item.layout
            yield item
        elif isinstance(item, ParseIssue):
            yield item
        else:
            record: CanonicalEvent | ShipmentRow | None
            record, issues = _shipment(item) if layout is CsvLayout.SHIPMENTS else _event(item, now)
            yield from issues
            if record is not None:
                yield record


def parse_csv(stream: Iterable[bytes | str], *, now: dt.datetime) -> ParsedMessage:
    """Parse a whole CSV file into events or shipment rows (collected; see :func:`iter_csv_records`).

    At most :data:`MAX_REPORTED_ISSUES` issues are listed; one more issue counts the rest.
    """
    parsed = ParsedMessage()
    unreported = 0
    for item in iter_csv_records(stream, now=now):
        if isinstance(item, ParseIssue):
            if len(parsed.issues) < MAX_REPORTED_ISSUES or item.fatal:
                parsed.issues.append(item)
            else:
                unreported += 1
        elif isinstance(item, CanonicalEvent):
            parsed.events.append(item)
        elif isinstance(item, dict):
            parsed.shipments.append(item)
    if unreported:
        parsed.issues.append(ParseIssue("file", "more_issues", f"{unreported} more issues not listed"))
    return parsed
