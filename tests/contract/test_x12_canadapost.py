"""Conformance: our X12 adapter against material written elsewhere (see /work/shared/fixtures/SOURCES.md).

- a real Canada Post 214 (19 transaction sets) and the reference parser's output for it (jf-tech/omniparser);
- five UPS 210 invoices whose totals must reconcile.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from domain.tracking.canonical import CanonicalEvent, Classifier
from domain.tracking.formats.x12 import parse_x12
from domain.tracking.formats.x12.ts210 import read_invoices

FIXTURES = Path(__file__).parents[1] / "fixtures" / "x12"
CANADA_POST_214 = FIXTURES / "214_canadapost_omniparser.edi"
REFERENCE = json.loads(
    (FIXTURES / "214_canadapost_omniparser.expected-parse.json").read_text(encoding="utf-8")
)
UPS_210 = FIXTURES / "210_ups_omniparser.edi"
NOW = dt.datetime(2019, 11, 4, tzinfo=dt.UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def events() -> list[CanonicalEvent]:
    message = parse_x12(CANADA_POST_214.read_bytes(), now=NOW)
    assert message.issues == []
    return message.events


def test_one_event_per_transaction_set(events: list[CanonicalEvent]) -> None:
    assert len(REFERENCE) == 19
    assert len(events) == 19
    assert {event.classifier for event in events} == {Classifier.ACTUAL}
    assert {event.carrier_code for event in events} == {"CPCC"}


@pytest.mark.parametrize("index", range(19))
def test_each_set_matches_the_reference_parser(events: list[CanonicalEvent], index: int) -> None:
    record: dict[str, Any] = REFERENCE[index]
    raw = json.loads(record["RawRecord"])
    expected = record["TransformedRecord"]
    (expected_event,) = expected["events"]
    event = events[index]

    assert event.references[0] == ("tracking_number", expected["tracking_number"])
    assert (event.code.code, event.code.qualifier) == (
        raw["AT7"]["shipmentStatusCode"],
        raw["AT7"]["shipmentStatusReasonCode"],
    )

    # the reference gives local wall time (with its offset when the 214 had a time code)
    reference_time = dt.datetime.fromisoformat(expected_event["date"])
    assert event.utc_offset_minutes is not None
    local = event.occurred_at + dt.timedelta(minutes=event.utc_offset_minutes)
    assert local.replace(tzinfo=None) == reference_time.replace(tzinfo=None)
    if reference_time.tzinfo is not None:
        assert event.occurred_at == reference_time
        assert dt.timedelta(minutes=event.utc_offset_minutes) == reference_time.utcoffset()

    location = expected_event["location"]
    assert event.place is not None
    assert (event.place.city, event.place.state, event.place.country) == (
        location["city"],
        location["state"],
        location["country"],
    )
    weight = event.detail["weight"]
    assert (Decimal(weight["value"]), weight["unit"]) == (Decimal(expected["weight"]), expected["weight_uom"])
    destination = event.detail["destination"]
    assert (
        destination["city"],
        destination["state"],
        destination["postal_code"],
        destination["country"],
    ) == (
        expected["dest"]["city"],
        expected["dest"]["state"],
        expected["dest"]["zip"],
        expected["dest"]["country"],
    )


def test_utc_instants_across_the_2019_11_03_dst_change(events: list[CanonicalEvent]) -> None:
    """Daylight saving ended at 02:00 local on 2019-11-03 in the US and Canada (not in Saskatchewan).

    MT on 11-02 is MDT (-6), on 11-03 MST (-7); PT on 11-02 is PDT (-7); ET on 11-03 is EST (-5); CS is
    Central Standard (-6) whatever the date; no time code means local time at the place (Ontario: EST).
    """
    assert [(event.code.code, event.occurred_at, event.utc_offset_minutes) for event in events] == [
        ("XB", utc(2019, 11, 3, 20, 34), -300),  # 15:34, no code, WRENCH ON
        ("AH", utc(2019, 11, 2, 23, 25), -420),  # 16:25 PT (PDT)
        ("CA", utc(2019, 11, 3, 0, 52), -420),  # 17:52 PT (PDT) on 11-02
        ("D1", utc(2019, 11, 2, 22, 48), -360),  # 16:48 MT (MDT)
        ("AF", utc(2019, 11, 3, 21, 9), -360),  # 15:09 CS
        ("AF", utc(2019, 11, 3, 21, 9), -360),
        ("XB", utc(2019, 11, 3, 17, 31), -360),  # 11:31 CS
        ("AF", utc(2019, 11, 3, 21, 9), -360),
        ("AF", utc(2019, 11, 3, 18, 25), -420),  # 11:25 MT (MST, after the change)
        ("XB", utc(2019, 11, 3, 15, 53), -420),  # 08:53 MT (MST)
        ("AF", utc(2019, 11, 3, 15, 37), -420),
        ("AP", utc(2019, 11, 3, 15, 15), -420),
        ("AF", utc(2019, 11, 2, 22, 55), -420),  # 15:55 PT (PDT)
        ("AP", utc(2019, 11, 3, 13, 33), -360),  # 07:33 CS
        ("XB", utc(2019, 11, 3, 16, 4), -420),
        ("AF", utc(2019, 11, 3, 21, 9), -360),
        ("AP", utc(2019, 11, 3, 12, 31), -360),  # 06:31 CS
        ("XB", utc(2019, 11, 3, 22, 28), -300),  # 17:28 ET (EST)
        ("XB", utc(2019, 11, 3, 21, 18), -300),
    ]


def test_every_set_is_acknowledged_as_accepted() -> None:
    message = parse_x12(
        CANADA_POST_214.read_bytes(), now=NOW, interchange_control_number=9, group_control_number=9
    )
    assert message.acknowledgment is not None
    segments = message.acknowledgment.decode().split("\n")
    assert segments[0] == (
        "ISA*00*          *00*          *ZZ*00602679321    *02*CPC            *191104*0000*U*00401*000000009*0*P*>"
    )
    assert segments[1] == "GS*FA*00602679321*CPC*20191104*0000*9*X*004010"
    assert segments[3] == "AK1*QM*000001644"
    assert segments[-5:] == ["AK9*A*19*19*19", "SE*42*0001", "GE*1*9", "IEA*1*000000009", ""]
    assert segments.count("AK5*A") == 19


def test_the_ups_210_tokenizes_and_its_totals_reconcile() -> None:
    invoices, issues = read_invoices(UPS_210.read_bytes())
    # the sample's first invoice miscounts its own segments (SE01 46, actual 48): we say so
    assert [(issue.code, issue.position) for issue in issues] == [
        ("x12.se_count_mismatch", "segment 50 (SE) element 01")
    ]
    assert len(invoices) == 5
    for invoice in invoices:
        charges = sum((line.charge for line in invoice.charges if line.charge is not None), Decimal("0.00"))
        assert invoice.net_amount_due == charges == invoice.total_charge, invoice.invoice_number
