from __future__ import annotations

import datetime as dt
import itertools
import re
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from domain.shipments.service import PlannedMilestone, ShipmentDraft
from domain.tracking.canonical import CanonicalEvent, Classifier, ParsedMessage, ParseIssue, Place, SourceCode
from domain.tracking.formats.csv_files import (
    CsvHeader,
    CsvLayout,
    CsvRow,
    iter_csv_records,
    iter_csv_rows,
    parse_csv,
    to_shipment_draft,
)

NOW = dt.datetime(2026, 3, 3, 12, 0, tzinfo=dt.UTC)
UTC = dt.UTC

SHIPMENTS = (
    "account_code,mode,carrier_code,origin_locode,destination_locode,promised_delivery_at,declared_value,"
    "currency,priority,booking,container,tracking_number,etd,eta,planned_delivered\n"
    "ACME,ocean,MAEU,NLRTM,USNYC,2026-03-30T17:00:00-04:00,125000.50,USD,high,BK778812,"
    "MSCU1234567|MSCU7654321,,2026-03-05T10:00:00+01:00,2026-03-20T06:00:00-04:00,2026-03-30T12:00:00-04:00\n"
    "ACME,parcel,,,,,,,,,,1Z999AA10123456784,,,\n"
)

EVENTS = (
    "reference,reference_kind,code,classifier,occurred_at,locode,location_name,source_event_id,carrier_code\n"
    "MSCU1234567,container,DEPARTED,ACT,2026-03-02T14:05:00+01:00,NLRTM,Rotterdam Maasvlakte II,evt-1,MAEU\n"
    "BK778812,,x12.status:AF,EST,2026-03-20T06:00:00-04:00,,,,\n"
)


def parse(text: str | bytes) -> ParsedMessage:
    return parse_csv([text.encode() if isinstance(text, str) else text], now=NOW)


def messages(result: ParsedMessage) -> list[str]:
    return [f"{issue.position}: {issue.reason}" for issue in result.issues]


# --- shipments layout ------------------------------------------------------------------------------------


def test_shipment_rows_become_validated_plain_dicts() -> None:
    result = parse(SHIPMENTS)
    assert result.issues == []
    assert result.events == []
    assert result.shipments == [
        {
            "line": 2,
            "account_code": "ACME",
            "mode": "ocean",
            "carrier_code": "MAEU",
            "service_level": None,
            "origin_locode": "NLRTM",
            "destination_locode": "USNYC",
            "promised_delivery_at": dt.datetime(2026, 3, 30, 21, 0, tzinfo=UTC),
            "declared_value": Decimal("125000.50"),
            "declared_value_currency": "USD",
            "priority": "high",
            "references": [
                ("booking", "BK778812"),
                ("container", "MSCU1234567"),
                ("container", "MSCU7654321"),
            ],
            "etd": dt.datetime(2026, 3, 5, 9, 0, tzinfo=UTC),
            "eta": dt.datetime(2026, 3, 20, 10, 0, tzinfo=UTC),
            "milestones": [
                {"code": "DEPARTED", "planned_at": dt.datetime(2026, 3, 5, 9, 0, tzinfo=UTC)},
                {"code": "ARRIVED", "planned_at": dt.datetime(2026, 3, 20, 10, 0, tzinfo=UTC)},
                {"code": "DELIVERED", "planned_at": dt.datetime(2026, 3, 30, 16, 0, tzinfo=UTC)},
            ],
        },
        {
            "line": 3,
            "account_code": "ACME",
            "mode": "parcel",
            "carrier_code": None,
            "service_level": None,
            "origin_locode": None,
            "destination_locode": None,
            "promised_delivery_at": None,
            "declared_value": None,
            "declared_value_currency": None,
            "priority": "normal",
            "references": [("tracking_number", "1Z999AA10123456784")],
            "etd": None,
            "eta": None,
            "milestones": [],
        },
    ]


def test_a_shipment_row_becomes_a_shipment_draft() -> None:
    row = parse(SHIPMENTS).shipments[0]
    account_id = uuid.UUID("8d6f1c1e-8f43-4d0c-9f53-3b0a6f2d1a10")
    assert to_shipment_draft(row, account_id) == ShipmentDraft(
        account_id=account_id,
        mode="ocean",
        references=[("booking", "BK778812"), ("container", "MSCU1234567"), ("container", "MSCU7654321")],
        carrier_code="MAEU",
        origin_locode="NLRTM",
        destination_locode="USNYC",
        promised_delivery_at=dt.datetime(2026, 3, 30, 21, 0, tzinfo=UTC),
        declared_value=Decimal("125000.50"),
        declared_value_currency="USD",
        priority="high",
        milestones=[
            PlannedMilestone("DEPARTED", dt.datetime(2026, 3, 5, 9, 0, tzinfo=UTC)),
            PlannedMilestone("ARRIVED", dt.datetime(2026, 3, 20, 10, 0, tzinfo=UTC)),
            PlannedMilestone("DELIVERED", dt.datetime(2026, 3, 30, 16, 0, tzinfo=UTC)),
        ],
        plan_source="csv",
    )


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            "ACME,ocean,2026-02-30,,,BK1,,",
            ["line 2, column promised_delivery_at: '2026-02-30' is not a date"],
        ),
        (
            "ACME,ocean,2026-03-30,,,BK1,,",
            [
                "line 2, column promised_delivery_at: '2026-03-30' has no time and UTC offset (e.g. 2026-03-30T17:00:00+01:00)"
            ],
        ),
        (
            "ACME,ocean,2026-03-30T17:00:00,,,BK1,,",
            [
                "line 2, column promised_delivery_at: '2026-03-30T17:00:00' has no UTC offset (add Z or +01:00, for example)"
            ],
        ),
        ("ACME,boat,,,,BK1,,", ["line 2, column mode: 'boat' is not one of ocean, air, road, parcel, rail"]),
        (",ocean,,,,BK1,,", ["line 2, column account_code: is required"]),
        ("ACME,,,,,BK1,,", ["line 2, column mode: is required"]),
        (
            "ACME,ocean,,1250,,BK1,,",
            ["line 2, column currency: is required when declared_value is given"],
        ),
        (
            "ACME,ocean,,,EUR,BK1,,",
            ["line 2, column declared_value: is required when currency is given"],
        ),
        (
            'ACME,ocean,,"1.250,00",EUR,BK1,,',
            [
                "line 2, column declared_value: '1.250,00' is not an amount: digits with '.' for decimals, at most 2 (e.g. 1250.00)"
            ],
        ),
        (
            "ACME,ocean,,-5,EUR,BK1,,",
            [
                "line 2, column declared_value: '-5' is not an amount: digits with '.' for decimals, at most 2 (e.g. 1250.00)"
            ],
        ),
        ("ACME,ocean,,5,EURO,BK1,,", ["line 2, column currency: 'EURO' is not an ISO 4217 code (e.g. EUR)"]),
        (
            "ACME,ocean,,,,,,",
            [
                "line 2: a shipment needs at least one reference (booking, house_bl, master_bl, container, "
                "tracking_number, pro, air_waybill, customer_reference)"
            ],
        ),
        (
            "ACME,ocean,,,,BK1||BK2,,",
            ["line 2, column booking: 'BK1||BK2' has an empty reference between '|' separators"],
        ),
        (
            "ACME,ocean,,,,BK1,NL RTM,",
            ["line 2, column origin_locode: 'NL RTM' is not a UN/LOCODE (e.g. NLRTM)"],
        ),
        (
            "ACME,ocean,,,,BK1,,urgent",
            ["line 2, column priority: 'urgent' is not one of low, normal, high, critical"],
        ),
    ],
)
def test_a_bad_shipment_row_is_reported_precisely(row: str, expected: list[str]) -> None:
    header = "account_code,mode,promised_delivery_at,declared_value,currency,booking,origin_locode,priority\n"
    result = parse(header + row + "\nACME,ocean,,,,BK9,,\n")
    assert messages(result) == expected
    assert [shipment["line"] for shipment in result.shipments] == [3]
    assert not result.rejected


def test_values_are_normalised() -> None:
    result = parse(
        "Account_Code,MODE,Origin_LOCODE,currency,declared_value,priority\n ACME , Ocean ,nlrtm,eur,10,HIGH\n"
    )
    assert messages(result) == [
        "line 2: a shipment needs at least one reference (booking, house_bl, master_bl, container, tracking_number, pro, air_waybill, customer_reference)"
    ]
    result = parse(
        "account_code,mode,origin_locode,currency,declared_value,priority,pro\n ACME , Ocean ,nlrtm,eur,10,HIGH, P1 | P2 \n"
    )
    assert result.issues == []
    [row] = result.shipments
    assert (
        row["mode"],
        row["origin_locode"],
        row["declared_value_currency"],
        row["priority"],
        row["references"],
    ) == (
        "ocean",
        "NLRTM",
        "EUR",
        "high",
        [("pro", "P1"), ("pro", "P2")],
    )


def test_etd_that_disagrees_with_the_planned_departure_is_refused() -> None:
    result = parse(
        "account_code,mode,booking,etd,planned_departed\n"
        "ACME,ocean,BK1,2026-03-05T10:00:00Z,2026-03-06T10:00:00Z\n"
        "ACME,ocean,BK2,2026-03-05T10:00:00Z,2026-03-05T11:00:00+01:00\n"
    )
    assert messages(result) == ["line 2, column etd: disagrees with planned_departed"]
    assert [row["milestones"] for row in result.shipments] == [
        [{"code": "DEPARTED", "planned_at": dt.datetime(2026, 3, 5, 10, 0, tzinfo=UTC)}]
    ]


# --- events layout -----------------------------------------------------------------------------------------


def test_event_rows_become_canonical_events() -> None:
    result = parse(EVENTS)
    assert result.issues == []
    assert result.events == [
        CanonicalEvent(
            source="csv",
            classifier=Classifier.ACTUAL,
            code=SourceCode("canonical", "DEPARTED"),
            occurred_at=dt.datetime(2026, 3, 2, 13, 5, tzinfo=UTC),
            references=(("container", "MSCU1234567"),),
            position="line 2",
            source_event_id="evt-1",
            utc_offset_minutes=60,
            place=Place(locode="NLRTM", name="Rotterdam Maasvlakte II"),
            carrier_code="MAEU",
        ),
        CanonicalEvent(
            source="csv",
            classifier=Classifier.ESTIMATED,
            code=SourceCode("x12.status", "AF"),
            occurred_at=dt.datetime(2026, 3, 20, 10, 0, tzinfo=UTC),
            references=(("any", "BK778812"),),
            position="line 3",
            utc_offset_minutes=-240,
        ),
    ]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("BK1,delivered,act,2026-03-02T10:00:00Z", []),
        (
            "BK1,ARRIVAL,ACT,2026-03-02T10:00:00Z",
            [
                "line 2, column code: 'ARRIVAL' is neither a canonical milestone nor a 'system:code' mapping code"
            ],
        ),
        (
            "BK1,DELIVERED,ACTUAL,2026-03-02T10:00:00Z",
            ["line 2, column classifier: 'ACTUAL' is not one of PLN, EST, ACT"],
        ),
        (
            "BK1,DELIVERED,ACT,2026-03-05T10:00:00Z",
            [
                "line 2, column occurred_at: an actual event at 2026-03-05T10:00:00+00:00 is more than 1 day "
                "after now (2026-03-03T12:00:00+00:00)"
            ],
        ),
        ("BK1,DELIVERED,EST,2026-03-05T10:00:00Z", []),
        (
            "BK1,DELIVERED,ACT,2026-02-29T10:00:00Z",
            ["line 2, column occurred_at: '2026-02-29' is not a date"],
        ),
        (
            ",,,",
            [
                "line 2, column reference: is required",
                "line 2, column code: is required",
                "line 2, column classifier: is required",
                "line 2, column occurred_at: is required",
            ],
        ),
    ],
)
def test_a_bad_event_row_is_reported_precisely(row: str, expected: list[str]) -> None:
    result = parse("reference,code,classifier,occurred_at\n" + row + "\n")
    assert messages(result) == expected
    assert len(result.events) == (0 if expected else 1)


def test_event_reference_kind_and_locode_are_checked() -> None:
    result = parse(
        "reference,reference_kind,code,classifier,occurred_at,locode\n"
        "BK1,vin,DELIVERED,ACT,2026-03-02T10:00:00Z,\n"
        "BK1,booking,DELIVERED,ACT,2026-03-02T10:00:00Z,rotterdam\n"
        "BK1,Booking,DELIVERED,ACT,2026-03-02T10:00:00Z,nlrtm\n"
    )
    assert messages(result) == [
        "line 2, column reference_kind: 'vin' is not one of booking, house_bl, master_bl, container, "
        "tracking_number, pro, air_waybill, customer_reference",
        "line 3, column locode: 'rotterdam' is not a UN/LOCODE (e.g. NLRTM)",
    ]
    [event] = result.events
    assert (event.references, event.place) == ((("booking", "BK1"),), Place(locode="NLRTM"))


# --- reading the file --------------------------------------------------------------------------------------


def test_bom_crlf_semicolons_and_quoted_fields() -> None:
    text = (
        "\ufeffreference;code;classifier;occurred_at;location_name\r\n"
        '"BK1";DEPARTED;ACT;2026-03-02T10:00:00Z;"Quay ""North""; berth 7"\r\n'
        'BK2;ARRIVED;EST;2026-03-09T10:00:00Z;"Terminal\r\nSouth"\r\n'
        "BK3;DISCHARGED;EST;2026-03-09T12:00:00Z;\r\n"
    )
    result = parse(text)
    assert result.issues == []
    assert [(e.references, e.position, e.place and e.place.name) for e in result.events] == [
        ((("any", "BK1"),), "line 2", 'Quay "North"; berth 7'),
        ((("any", "BK2"),), "line 3", "Terminal\r\nSouth"),
        ((("any", "BK3"),), "line 5", None),
    ]


def test_chunks_may_split_lines_and_characters_anywhere() -> None:
    data = (
        "reference,code,classifier,occurred_at,location_name\n"
        "BK1,DEPARTED,ACT,2026-03-02T10:00:00Z,Göteborg Skandiahamnen\n"
    ).encode()
    whole = parse_csv([data], now=NOW)
    assert parse_csv([data[i : i + 1] for i in range(len(data))], now=NOW) == whole
    assert parse_csv([data.decode()[:40], data.decode()[40:]], now=NOW) == whole
    assert whole.events[0].place == Place(name="Göteborg Skandiahamnen")


def test_the_header_is_recognised() -> None:
    items = list(
        iter_csv_rows(
            [b"\n\nreference;code;classifier;occurred_at\nBK1;DELIVERED;ACT;2026-03-02T10:00:00Z\n"]
        )
    )
    assert items == [
        CsvHeader(CsvLayout.EVENTS, ("reference", "code", "classifier", "occurred_at"), ";"),
        CsvRow(
            4,
            {
                "reference": "BK1",
                "code": "DELIVERED",
                "classifier": "ACT",
                "occurred_at": "2026-03-02T10:00:00Z",
            },
        ),
    ]


def test_blank_lines_are_skipped_and_line_numbers_stay_physical() -> None:
    result = parse(
        "reference,code,classifier,occurred_at\n\nBK1,DELIVERED,ACT,2026-02-30T10:00:00Z\n\n\nBK2,DELIVERED,ACT,bad\n"
    )
    assert [issue.position for issue in result.issues] == [
        "line 3, column occurred_at",
        "line 6, column occurred_at",
    ]


@pytest.mark.parametrize(
    ("text", "issue"),
    [
        (
            "reference,code,occurred_at\n",
            ParseIssue(
                "line 1", "missing_column", "the events layout needs column(s) classifier", fatal=True
            ),
        ),
        (
            "account_code,booking\n",
            ParseIssue("line 1", "missing_column", "the shipments layout needs column(s) mode", fatal=True),
        ),
        (
            "account_code,mode,promised_delivry_at\n",
            ParseIssue(
                "line 1",
                "unknown_column",
                "column(s) promised_delivry_at are not part of the shipments layout",
                fatal=True,
            ),
        ),
        (
            "account_code,mode,planned_teleported\n",
            ParseIssue(
                "line 1",
                "unknown_column",
                "column(s) planned_teleported are not part of the shipments layout",
                fatal=True,
            ),
        ),
        (
            "reference,code,classifier,occurred_at,Code\n",
            ParseIssue("line 1", "duplicate_column", "column(s) code appear more than once", fatal=True),
        ),
        ("reference,,code\n", ParseIssue("line 1", "unnamed_column", "column 2 has no name", fatal=True)),
        (
            "name,city\n",
            ParseIssue(
                "line 1",
                "unknown_layout",
                "the header matches neither layout: a shipments file has account_code and mode, "
                "an events file has reference, code, classifier and occurred_at",
                fatal=True,
            ),
        ),
        (
            ",".join(f"c{i}" for i in range(101)) + "\n",
            ParseIssue("line 1", "too_many_columns", "101 columns, more than 100", fatal=True),
        ),
        (
            'reference,"code\n',
            ParseIssue(
                "line 1", "malformed_row", "cannot be split into fields: unexpected end of data", fatal=True
            ),
        ),
    ],
)
def test_a_header_that_cannot_be_used_rejects_the_file(text: str, issue: ParseIssue) -> None:
    result = parse(text + "BK1,DELIVERED,ACT,2026-03-02T10:00:00Z\n")
    assert result == ParsedMessage(issues=[issue])
    assert result.rejected


@pytest.mark.parametrize("text", ["", "\n\r\n  \n"])
def test_an_empty_file_is_rejected(text: str) -> None:
    assert parse(text) == ParsedMessage(
        issues=[ParseIssue("line 1", "empty_file", "the file is empty: no header", fatal=True)]
    )
    assert parse_csv([], now=NOW) == parse(text)


def test_rows_with_the_wrong_shape_are_skipped() -> None:
    header = "reference,code,classifier,occurred_at\n"
    good = "BK1,DELIVERED,ACT,2026-03-02T10:00:00Z\n"
    result = parse(
        header
        + "BK1,DELIVERED,ACT\n"
        + "BK1,DELIVERED,ACT,2026-03-02T10:00:00Z,extra\n"
        + ",".join(["x"] * 101)
        + "\n"
        + "BK1,DELIVERED,ACT,"
        + "9" * 1025
        + "\n"
        + 'BK1,"DELIV"ERED,ACT,2026-03-02T10:00:00Z\n'
        + good
    )
    assert messages(result) == [
        "line 2: 3 fields, the header has 4",
        "line 3: 5 fields, the header has 4",
        "line 4: 101 fields, more than 100",
        "line 5, column occurred_at: 1025 characters, more than 1024",
        "line 6: cannot be split into fields: ',' expected after '\"'",
    ]
    assert [event.position for event in result.events] == ["line 7"]


def test_an_unterminated_quote_is_reported_where_it_starts() -> None:
    result = parse(
        'reference,code,classifier,occurred_at\nBK1,DELIVERED,ACT,2026-03-02T10:00:00Z\nBK2,"DELIVERED,ACT,x\nBK3,DELIVERED,ACT,2026-03-02T10:00:00Z\n'
    )
    assert messages(result) == ["line 3: cannot be split into fields: unexpected end of data"]
    assert [event.position for event in result.events] == ["line 2"]


def test_an_invalid_utf8_line_spoils_only_its_row() -> None:
    data = b"reference,code,classifier,occurred_at,location_name\nBK1,DELIVERED,ACT,2026-03-02T10:00:00Z,G\xf6teborg\nBK2,DELIVERED,ACT,2026-03-02T10:00:00Z,Gothenburg\n"
    result = parse(data)
    assert messages(result) == ["line 2: is not valid UTF-8"]
    assert [event.position for event in result.events] == ["line 3"]


def test_an_overlong_line_stops_the_reading() -> None:
    result = parse(
        "reference,code,classifier,occurred_at\nBK1,DELIVERED,ACT,2026-03-02T10:00:00Z\n" + "x" * 500_000
    )
    assert [event.position for event in result.events] == ["line 2"]
    assert result.issues == [
        ParseIssue(
            "line 3",
            "line_too_long",
            "a line longer than 409600 bytes; the rest of the file is not read",
            fatal=True,
        )
    ]


def test_rows_are_read_as_a_stream() -> None:
    def endless() -> Iterator[bytes]:
        yield b"reference,code,classifier,occurred_at\n"
        for number in itertools.count():
            yield f"BK{number},DELIVERED,ACT,2026-03-02T10:00:00Z\n".encode()

    first = list(itertools.islice(iter_csv_records(endless(), now=NOW), 4))
    assert isinstance(first[0], CsvHeader)
    assert [item.references for item in first[1:] if isinstance(item, CanonicalEvent)] == [
        (("any", "BK0"),),
        (("any", "BK1"),),
        (("any", "BK2"),),
    ]


def test_only_the_first_thousand_issues_are_listed() -> None:
    rows = "".join(f"BK{n},DELIVERED,ACT,not-a-time\n" for n in range(1005))
    result = parse("reference,code,classifier,occurred_at\nBK,DELIVERED,ACT,2026-03-02T10:00:00Z\n" + rows)
    assert len(result.events) == 1
    assert len(result.issues) == 1001
    assert result.issues[-1] == ParseIssue("file", "more_issues", "5 more issues not listed")
    assert result.issues[999].position == "line 1002, column occurred_at"


def test_the_documented_examples_parse_as_documented() -> None:
    text = (Path(__file__).parents[3] / "docs" / "formats" / "csv.md").read_text()
    shipments, events = re.findall(r"```csv\n(.*?)```", text, flags=re.DOTALL)
    result = parse(shipments)
    assert [row["line"] for row in result.shipments] == [2]
    assert [issue.position for issue in result.issues] == ["line 3"]
    result = parse(events)
    assert result.issues == []
    assert [(e.code.system, e.code.code, e.classifier.value) for e in result.events] == [
        ("canonical", "DEPARTED", "ACT"),
        ("canonical", "ARRIVED", "EST"),
        ("x12.status", "AF", "ACT"),
    ]
