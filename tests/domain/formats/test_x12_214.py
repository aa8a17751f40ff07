from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from domain.shipments.models import MilestoneCode
from domain.tracking.canonical import CanonicalEvent, Classifier, ParseIssue, Place, Signal, SourceCode
from domain.tracking.formats.x12 import parse_x12
from domain.tracking.formats.x12.ts214 import zone_for_place
from domain.tracking.mapping import CODELISTS_DIR, MAPPINGS_DIR, read_codelist, read_mapping_file
from tests.domain.formats.test_x12_tokenizer import interchange

NOW = dt.datetime(2019, 11, 4, 12, tzinfo=dt.UTC)
B10 = "B10*PRO1*SHIP1*ABCD"
UTC = dt.UTC


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)


def parse(*sets: list[str], now: dt.datetime = NOW) -> tuple[list[CanonicalEvent], list[ParseIssue], str]:
    message = parse_x12(interchange(*sets).encode(), now=now)
    assert message.acknowledgment is not None
    # the 997 without its envelope: AK1 .. AK9
    acknowledgment = message.acknowledgment.decode().split("~")[3:-4]
    return message.events, message.issues, "~".join(acknowledgment)


def status(at7: str, ms1: str | None = "MS1*WINNIPEG*MB*CA") -> list[str]:
    return [B10, "LX*1", at7, *([ms1] if ms1 else [])]


def test_a_status_becomes_one_canonical_event() -> None:
    body = [
        "B10*PRO1*SHIP1*ABCD",
        "L11*BL123*BM",
        "L11*PO-9*PO",
        "L11*0410*86",
        "L11**CI",
        "N1*SF*SHIPPER INC",
        "N4*CHICAGO*IL*60601*US",
        "N1*ST*ACME STORES",
        "N3*1 MAIN ST*DOCK 4",
        "N4*TORONTO*ON*M5V1A1*CA",
        "LX*1",
        "AT7*X6*NS***20191104*0815*ET",
        "MS1*TORONTO*ON*CA",
        "MS2*ABCD*TRL123*TL",
        "L11*LX-REF*CR",
        "AT8*G*L*12.5*3",
    ]
    events, issues, _ = parse(body)
    assert issues == []
    assert events == [
        CanonicalEvent(
            source="x12",
            classifier=Classifier.ACTUAL,
            code=SourceCode("x12.status", "X6", "x12.reason", "NS"),
            occurred_at=utc(2019, 11, 4, 13, 15),
            references=(
                ("tracking_number", "SHIP1"),
                ("pro", "PRO1"),
                ("house_bl", "BL123"),
                ("customer_reference", "PO-9"),
                ("customer_reference", "LX-REF"),
            ),
            position="segment 15 (AT7)",
            utc_offset_minutes=-300,
            place=Place(city="TORONTO", state="ON", country="CA"),
            carrier_code="ABCD",
            detail={
                "time_code": "ET",
                "time_zone": "America/Toronto",
                "status_element": "AT701",
                "lx": "1",
                "weight": {"value": "12.5", "unit": "LB", "qualifier": "G", "pieces": "3"},
                "destination": {
                    "name": "ACME STORES",
                    "address": ["1 MAIN ST", "DOCK 4"],
                    "city": "TORONTO",
                    "state": "ON",
                    "postal_code": "M5V1A1",
                    "country": "CA",
                },
                "other_references": [["86", "0410"]],
                "equipment": {"owner": "ABCD", "number": "TRL123", "type": "TL"},
                "x12_position_id": "SENDER:000000001:1:0001:1:1",
            },
        )
    ]


def test_one_event_per_at7_with_carton_references_and_stable_ids() -> None:
    body = [
        "B10*SHIP1*SHIP1*ABCD",
        "LX*1",
        "AT7*X1*NS***20191104*0800*ET",
        "AT7*D1*NS***20191104*0815*ET",
        "CD3*G*1",
        "L11*PKG1*97",
        "AT7*D1*NS***20191104*0816*ET",
        "LX*2",
        "AT7*CD*NS***20191104*0830*ET",
    ]
    events, issues, _ = parse(body)
    assert issues == []
    assert [(e.code.code, e.detail["x12_position_id"], e.references, e.position) for e in events] == [
        ("X1", "SENDER:000000001:1:0001:1:1", (("tracking_number", "SHIP1"),), "segment 6 (AT7)"),
        ("D1", "SENDER:000000001:1:0001:1:2", (("tracking_number", "SHIP1"),), "segment 7 (AT7)"),
        (
            "D1",
            "SENDER:000000001:1:0001:1:3",
            (("tracking_number", "SHIP1"), ("tracking_number", "PKG1")),
            "segment 10 (AT7)",
        ),
        ("CD", "SENDER:000000001:1:0001:2:1", (("tracking_number", "SHIP1"),), "segment 12 (AT7)"),
    ]
    again, _, _ = parse(body)
    assert [e.detail["x12_position_id"] for e in again] == [e.detail["x12_position_id"] for e in events]
    assert {e.source_event_id for e in events} == {None}  # identity comes from content, not control numbers


@pytest.mark.parametrize(
    ("at7", "classifier"),
    [
        ("AT7*AF*NS***20191104*0800*UT", Classifier.ACTUAL),
        ("AT7*AG*NS***20191110*0800*UT", Classifier.ESTIMATED),  # Estimated Delivery
        ("AT7*B6*NS***20191110*0800*UT", Classifier.ESTIMATED),
        ("AT7*C1*NS***20191110*0800*UT", Classifier.ESTIMATED),
        ("AT7*X2*NS***20191110*0800*UT", Classifier.ESTIMATED),
        ("AT7***AB*NA*20191110*0800*UT", Classifier.PLANNED),  # Delivery Appointment
        ("AT7***LD*NA*20191110*0800*UT", Classifier.PLANNED),  # Deliver No Later Than
        ("AT7***AC*NA*20191110*0800*UT", Classifier.ESTIMATED),  # Estimated Delivery Appointment
        ("AT7***X9*NA*20191101*0800*UT", Classifier.ACTUAL),  # appointment secured on this date
    ],
)
def test_classifier_follows_the_status_code(at7: str, classifier: Classifier) -> None:
    events, issues, _ = parse(status(at7))
    assert issues == []
    assert [event.classifier for event in events] == [classifier]


def test_an_appointment_status_is_reported_in_the_status_system() -> None:
    events, _, _ = parse(status("AT7***AB*NA*20191110*0800*CT"))
    assert [(e.code, e.detail["status_element"]) for e in events] == [
        (SourceCode("x12.status", "AB", "x12.reason", "NA"), "AT703")
    ]


# --- time -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("date", "time", "code", "ms1", "occurred_at", "offset"),
    [
        ("20191103", "1509", "UT", "MS1*WINNIPEG*MB*CA", utc(2019, 11, 3, 15, 9), 0),
        ("20191103", "1509", "GM", "MS1*WINNIPEG*MB*CA", utc(2019, 11, 3, 15, 9), 0),
        ("20191103", "1509", "CS", "MS1*WINNIPEG*MB*CA", utc(2019, 11, 3, 21, 9), -360),
        ("20190703", "1509", "CS", "MS1*WINNIPEG*MB*CA", utc(2019, 7, 3, 21, 9), -360),  # standard in summer
        ("20191103", "1509", "CD", "MS1*WINNIPEG*MB*CA", utc(2019, 11, 3, 20, 9), -300),
        ("20191103", "1509", "ES", None, utc(2019, 11, 3, 20, 9), -300),
        ("20191103", "1509", "ED", None, utc(2019, 11, 3, 19, 9), -240),
        ("20191103", "1509", "MS", None, utc(2019, 11, 3, 22, 9), -420),
        ("20191103", "1509", "MD", None, utc(2019, 11, 3, 21, 9), -360),
        ("20191103", "1509", "PS", None, utc(2019, 11, 3, 23, 9), -480),
        ("20191103", "1509", "PD", None, utc(2019, 11, 3, 22, 9), -420),
        ("20191103", "1509", "NS", None, utc(2019, 11, 3, 18, 39), -210),
        ("20191103", "1509", "08", None, utc(2019, 11, 3, 7, 9), 480),  # ISO P08
        ("20191103", "1509", "13", None, utc(2019, 11, 4, 3, 9), -720),  # ISO M12
        ("20191103", "1509", "20", None, utc(2019, 11, 3, 20, 9), -300),  # ISO M05
        ("20191103", "1509", "24", None, utc(2019, 11, 3, 16, 9), -60),  # ISO M01
        # generic codes follow daylight saving on the date: 2019-11-03 02:00 was the change
        ("20191102", "1648", "MT", "MS1*CALGARY*AB*CA", utc(2019, 11, 2, 22, 48), -360),
        ("20191103", "1125", "MT", "MS1*CALGARY*AB*CA", utc(2019, 11, 3, 18, 25), -420),
        ("20191103", "0130", "ET", None, utc(2019, 11, 3, 5, 30), -240),  # the first 01:30 (see below)
        ("20191103", "0300", "ET", None, utc(2019, 11, 3, 8, 0), -300),
        ("20190703", "1200", "MT", "MS1*PHOENIX*AZ*US", utc(2019, 7, 3, 19, 0), -420),  # Arizona: no DST
        ("20190703", "1200", "MT", None, utc(2019, 7, 3, 18, 0), -360),
        ("20190703", "1200", "CT", "MS1*REGINA*SK*CA", utc(2019, 7, 3, 18, 0), -360),  # Saskatchewan: no DST
        ("20190703", "1200", "CT", "MS1*CHICAGO*IL*US", utc(2019, 7, 3, 17, 0), -300),
        ("20190703", "1200", "CT", "MS1*DENVER*CO*US", utc(2019, 7, 3, 17, 0), -300),  # place in another zone
        # local time: the zone of the place's state or province
        ("20191103", "1534", "", "MS1*TORONTO*ON*CA", utc(2019, 11, 3, 20, 34), -300),
        ("20190703", "1534", "LT", "MS1*TORONTO*ON*CA", utc(2019, 7, 3, 19, 34), -240),
        ("20190703", "1534", "LT", "MS1*SEATTLE*WA", utc(2019, 7, 3, 22, 34), -420),
        ("20190703", "153407", "LT", "MS1*SEATTLE*WA*USA", utc(2019, 7, 3, 22, 34, 7), -420),
        ("20190703", "15340712", "UT", None, dt.datetime(2019, 7, 3, 15, 34, 7, 120000, tzinfo=UTC), 0),
    ],
)
def test_time_codes(
    date: str, time: str, code: str, ms1: str | None, occurred_at: dt.datetime, offset: int
) -> None:
    events, issues, _ = parse(status(f"AT7*AF*NS***{date}*{time}*{code}", ms1))
    assert [i.code for i in issues if i.code != "x12.local_time_ambiguous"] == []
    assert [(e.occurred_at, e.utc_offset_minutes) for e in events] == [(occurred_at, offset)]


def test_local_time_without_a_known_zone_is_taken_as_utc_and_flagged() -> None:
    events, issues, acknowledgment = parse(status("AT7*AF*NS***20191103*1509*LT", "MS1*PARIS**FR"))
    assert [(e.occurred_at, e.utc_offset_minutes) for e in events] == [(utc(2019, 11, 3, 15, 9), None)]
    assert issues == [
        ParseIssue(
            position="segment 6 (AT7) element 07",
            code="x12.time_zone_unknown",
            reason="the time is local (LT) and the event has a place outside the US and Canada or no state to "
            "find its time zone; it is taken as UTC",
        )
    ]
    assert acknowledgment == "AK1*QM*1~AK2*214*0001~AK5*A~AK9*A*1*1*1"


def test_no_time_code_and_no_place() -> None:
    events, issues, _ = parse(status("AT7*AF*NS***20191103*1509", None))
    assert [(e.occurred_at, e.utc_offset_minutes) for e in events] == [(utc(2019, 11, 3, 15, 9), None)]
    assert issues == [
        ParseIssue(
            position="segment 6 (AT7) element 07",
            code="x12.time_zone_unknown",
            reason="the time is local (no time code) and the event has no place (MS1) to find its time zone; "
            "it is taken as UTC",
        )
    ]


def test_an_unknown_time_code_is_read_as_local_time() -> None:
    events, issues, acknowledgment = parse(status("AT7*AF*NS***20191103*1509*ZZ", "MS1*TORONTO*ON*CA"))
    assert [(e.occurred_at, e.utc_offset_minutes) for e in events] == [(utc(2019, 11, 3, 20, 9), -300)]
    assert issues == [
        ParseIssue(
            position="segment 6 (AT7) element 07",
            code="x12.time_code_unknown",
            reason="'ZZ' is not an X12 time code; the time is read as local to the event's place",
        )
    ]
    assert acknowledgment == "AK1*QM*1~AK2*214*0001~AK3*AT7*4**8~AK4*7*623*7*ZZ~AK5*E*5~AK9*E*1*1*1"


def test_a_wall_time_that_happens_twice_takes_the_first_and_is_flagged() -> None:
    events, issues, _ = parse(status("AT7*AF*NS***20191103*0130*LT", "MS1*TORONTO*ON*CA"))
    assert [(e.occurred_at, e.utc_offset_minutes) for e in events] == [(utc(2019, 11, 3, 5, 30), -240)]
    assert issues == [
        ParseIssue(
            position="segment 6 (AT7) element 06",
            code="x12.local_time_ambiguous",
            reason="2019-11-03T01:30:00 in America/Toronto happens twice (clocks go back); the first is taken",
        )
    ]


def test_a_wall_time_that_does_not_exist_is_flagged() -> None:
    events, issues, _ = parse(status("AT7*AF*NS***20190310*0230*ET", "MS1*TORONTO*ON*CA"))
    # the offset before the change: what the source wrote is still what occurred_at + offset shows
    assert [(e.occurred_at, e.utc_offset_minutes) for e in events] == [(utc(2019, 3, 10, 7, 30), -300)]
    assert issues == [
        ParseIssue(
            position="segment 6 (AT7) element 06",
            code="x12.local_time_nonexistent",
            reason="2019-03-10T02:30:00 in America/Toronto does not exist (clocks go forward)",
        )
    ]


def test_a_date_without_time_is_midnight_local() -> None:
    events, issues, _ = parse(status("AT7*AF*NS***20191103", "MS1*TORONTO*ON*CA"))
    assert issues == []
    assert [(e.occurred_at, e.utc_offset_minutes, e.detail["time_precision"]) for e in events] == [
        (utc(2019, 11, 3, 4, 0), -240, "date")
    ]


@pytest.mark.parametrize(
    ("place", "zone"),
    [
        (Place(state="ON", country="CA"), "America/Toronto"),
        (Place(state="on", country="can"), "America/Toronto"),
        (Place(state="TX"), "America/Chicago"),
        (Place(state="ON", country="US"), None),
        (Place(state="TX", country="CA"), None),
        (Place(state="JA", country="MX"), None),
        (Place(city="TORONTO", country="CA"), None),
        (None, None),
    ],
)
def test_zone_for_place(place: Place | None, zone: str | None) -> None:
    assert zone_for_place(place) == zone


# --- AT7 syntax and bad values --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at7", "issue", "acknowledgment", "kept"),
    [
        (
            "AT7*AF*NS***20190230*1509*CS",
            ParseIssue(
                position="segment 6 (AT7) element 05",
                code="x12.invalid_date",
                reason="'20190230' is not a date (CCYYMMDD); the event is dropped",
            ),
            "AK3*AT7*4**8~AK4*5*373*8*20190230",
            False,
        ),
        (
            "AT7*AF*NS***191103*1509*CS",
            ParseIssue(
                position="segment 6 (AT7) element 05",
                code="x12.invalid_date",
                reason="'191103' is not a date (CCYYMMDD); the event is dropped",
            ),
            "AK3*AT7*4**8~AK4*5*373*8*191103",
            False,
        ),
        (
            "AT7*AF*NS***20191103*2561*CS",
            ParseIssue(
                position="segment 6 (AT7) element 06",
                code="x12.invalid_time",
                reason="'2561' is not a time (HHMM[SS]); the event is dropped",
            ),
            "AK3*AT7*4**8~AK4*6*337*9*2561",
            False,
        ),
        (
            "AT7*AF*NS*AA*NA*20191103*1509*CS",
            ParseIssue(
                position="segment 6 (AT7) element 03",
                code="x12.at7_status_conflict",
                reason="AT7 has both a shipment status (AF) and an appointment status (AA); exactly one is "
                "allowed, the event is dropped",
            ),
            "AK3*AT7*4**8~AK4*3*1652*10*AA",
            False,
        ),
        (
            "AT7*****20191103*1509*CS",
            ParseIssue(
                position="segment 6 (AT7) element 01",
                code="x12.at7_status_missing",
                reason="AT7 has neither a shipment status (AT7-01) nor an appointment status (AT7-03); the "
                "event is dropped",
            ),
            "AK3*AT7*4**8~AK4*1*1650*2",
            False,
        ),
        (
            "AT7*AF****20191103*1509*CS",
            ParseIssue(
                position="segment 6 (AT7) element 02",
                code="x12.at7_reason_missing",
                reason="AT7-01 AF comes without its reason AT7-02",
            ),
            "AK3*AT7*4**8~AK4*2*1651*2",
            True,
        ),
        (
            "AT7***AB**20191103*1509*CS",
            ParseIssue(
                position="segment 6 (AT7) element 04",
                code="x12.at7_reason_missing",
                reason="AT7-03 AB comes without its reason AT7-04",
            ),
            "AK3*AT7*4**8~AK4*4*1651*2",
            True,
        ),
        (
            "AT7*AF*NS*****CS",
            ParseIssue(
                position="segment 6 (AT7) element 05",
                code="x12.at7_date_missing",
                reason="AT7 has no date (AT7-05); the event is dropped",
            ),
            "AK3*AT7*4**8~AK4*5*373*1",
            False,
        ),
        (
            "AT7*AF*NS***20191103**CS",
            ParseIssue(
                position="segment 6 (AT7) element 06",
                code="x12.at7_time_missing",
                reason="AT7 has a time code (CS) but no time (AT7-06); the time is taken as 00:00",
            ),
            "AK3*AT7*4**8~AK4*6*337*2",
            True,
        ),
    ],
    ids=[
        "nonexistent-date",
        "six-digit-date",
        "bad-time",
        "status-and-appointment",
        "no-status",
        "status-without-reason",
        "appointment-without-reason",
        "no-date",
        "time-code-without-time",
    ],
)
def test_at7_errors_are_event_level(at7: str, issue: ParseIssue, acknowledgment: str, kept: bool) -> None:
    """The bad AT7 is flagged with its position; a good AT7 in the same set is kept; the 997 says E."""
    body = [B10, "LX*1", at7, "AT7*X1*NS***20191103*1600*CS"]
    events, issues, ack = parse(body)
    assert issues == [issue]
    assert [e.position for e in events] == (["segment 6 (AT7)"] if kept else []) + ["segment 7 (AT7)"]
    assert ack == f"AK1*QM*1~AK2*214*0001~{acknowledgment}~AK5*E*5~AK9*E*1*1*1"


def test_an_actual_event_from_the_future_is_dropped() -> None:
    body = [B10, "LX*1", "AT7*AF*NS***20191105*1201*UT", "AT7*AF*NS***20191105*1200*UT"]
    events, issues, acknowledgment = parse(body)
    assert issues == [
        ParseIssue(
            position="segment 6 (AT7) element 05",
            code="x12.event_in_future",
            reason="status AF happened at 2019-11-05T12:01:00+00:00, more than a day after now "
            "(2019-11-04T12:00:00+00:00); the event is dropped",
        )
    ]
    assert [e.occurred_at for e in events] == [utc(2019, 11, 5, 12, 0)]  # exactly one day ahead is allowed
    assert acknowledgment == "AK1*QM*1~AK2*214*0001~AK5*A~AK9*A*1*1*1"  # not a syntax error


def test_an_estimate_in_the_future_is_kept() -> None:
    events, issues, _ = parse(status("AT7*AG*NS***20191224*1200*UT"))
    assert issues == []
    assert [(e.classifier, e.occurred_at) for e in events] == [(Classifier.ESTIMATED, utc(2019, 12, 24, 12))]


def test_a_set_without_b10_is_rejected() -> None:
    events, issues, acknowledgment = parse(["LX*1", "AT7*AF*NS***20191103*1509*CS"])
    assert events == []
    assert issues == [
        ParseIssue(
            position="segment 3 (ST)",
            code="x12.b10_missing",
            reason="transaction set 0001 has no B10 (shipment identification): its events could not be "
            "matched to a shipment; the set is rejected",
            fatal=True,
        )
    ]
    assert acknowledgment == "AK1*QM*1~AK2*214*0001~AK3*B10*2**3~AK5*R*5~AK9*R*1*1*0"


def test_a_set_without_status_is_flagged() -> None:
    events, issues, acknowledgment = parse([B10, "L11*X*BM"])
    assert events == []
    assert issues == [
        ParseIssue(
            position="segment 3 (ST)",
            code="x12.no_status",
            reason="transaction set 0001 has no AT7 (shipment status)",
        )
    ]
    assert acknowledgment == "AK1*QM*1~AK2*214*0001~AK5*A~AK9*A*1*1*1"


def test_a_bad_set_does_not_cost_the_good_one_its_events() -> None:
    good = status("AT7*D1*NS***20191103*1509*CS")
    bad = [B10, "LX*1", "AT7*AF*NS***20191103*1000*CS", "AT7*X1*NS***20191103*1100*CS"]
    text = interchange(bad, good).replace("SE*6*0001", "SE*5*0001")
    message = parse_x12(text.encode(), now=NOW, interchange_control_number=41, group_control_number=42)
    assert [(e.code.code, e.detail["x12_position_id"]) for e in message.events] == [
        ("D1", "SENDER:000000001:1:0002:1:1")
    ]
    assert message.issues == [
        ParseIssue(
            position="segment 8 (SE) element 01",
            code="x12.se_count_mismatch",
            reason="SE01 says '5' segments; transaction set 0001 has 6 (ST to SE inclusive); the set is rejected",
            fatal=True,
        )
    ]
    assert message.rejected is True
    assert message.acknowledgment is not None
    assert message.acknowledgment.decode().split("~")[3:-4] == [
        "AK1*QM*1",
        "AK2*214*0001",
        "AK5*R*4",
        "AK2*214*0002",
        "AK5*A",
        "AK9*P*2*2*1",
    ]


def test_an_unsupported_transaction_set_is_rejected() -> None:
    message = parse_x12(interchange(["B2**ABCD**SHIP1"], set_id="204").encode(), now=NOW)
    assert message.events == []
    assert message.issues == [
        ParseIssue(
            position="segment 3 (ST) element 01",
            code="x12.unsupported_transaction_set",
            reason="transaction set '204' (0001) is not supported (we read 214 shipment status and 210 freight "
            "invoices); the set is rejected",
            fatal=True,
        )
    ]
    assert message.acknowledgment is not None
    assert message.acknowledgment.decode().split("~")[3:-4] == [
        "AK1*QM*1",
        "AK2*204*0001",
        "AK5*R*1",
        "AK9*R*1*1*0",
    ]


def test_bom_crlf_and_indentation_give_the_same_events() -> None:
    plain = interchange(status("AT7*AF*NS***20191103*1509*CS"))
    messy = b"\xef\xbb\xbf" + "\r\n\t".join(plain.split("\n")).encode()
    assert parse_x12(messy, now=NOW) == parse_x12(plain.encode(), now=NOW)
    assert parse_x12(messy, now=NOW).issues == []


# --- mapping data ---------------------------------------------------------------------------------


@pytest.mark.parametrize("system", ["x12.status", "x12.reason"])
def test_every_listed_code_has_a_valid_mapping_row(system: str) -> None:
    codes = read_codelist(CODELISTS_DIR / f"{system}.txt")
    rows = read_mapping_file(MAPPINGS_DIR / f"{system}.csv")  # validates every row's values
    assert len(codes) == len(set(codes))
    assert sorted(rows) == sorted(codes)
    for code, row in rows.items():
        assert row.milestone is None or row.milestone in set(MilestoneCode), code
        assert row.signal is None or row.signal in set(Signal), code
        assert (row.milestone is not None or row.signal is not None) != row.raw_only, code
        assert row.description, code


def test_the_code_lists_are_the_complete_4010_lists() -> None:
    status_codes = read_codelist(CODELISTS_DIR / "x12.status.txt")
    reason_codes = read_codelist(CODELISTS_DIR / "x12.reason.txt")
    assert (len(status_codes), len(reason_codes)) == (42 + 9, 86)  # elements 1650 + 1652, and 1651
    header = Path(CODELISTS_DIR / "x12.status.txt").read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("# ASC X12 data element 1650 Shipment Status Code, version 004010")


@pytest.mark.parametrize(
    ("system", "code", "milestone", "signal"),
    [
        ("x12.status", "AF", "PICKED_UP", None),
        ("x12.status", "X3", "PICKUP_ARRIVED", None),
        ("x12.status", "X1", "ARRIVED", None),
        ("x12.status", "X6", "OUT_FOR_DELIVERY", None),
        ("x12.status", "D1", "DELIVERED", None),
        ("x12.status", "AG", "DELIVERED", None),
        ("x12.status", "AB", "DELIVERED", None),
        ("x12.status", "A7", None, "REFUSED"),
        ("x12.status", "A9", None, "DAMAGE"),
        ("x12.status", "AP", "DELIVERY_ATTEMPTED", "DELIVERY_FAILED"),
        ("x12.status", "SD", None, "DELAY"),
        ("x12.status", "PR", "CUSTOMS_HOLD", "CUSTOMS_HOLD"),
        ("x12.status", "CA", None, None),
        ("x12.status", "OO", None, None),
        ("x12.reason", "AI", None, "CARRIER_ISSUE"),
        ("x12.reason", "AJ", None, "CARRIER_ISSUE"),
        ("x12.reason", "AO", None, "WEATHER"),
        ("x12.reason", "A2", None, "ADDRESS_ISSUE"),
        ("x12.reason", "CA", None, "CUSTOMS_HOLD"),
        ("x12.reason", "BS", None, "REFUSED"),
        ("x12.reason", "NS", None, None),
        ("x12.reason", "AG", None, None),
    ],
)
def test_key_mappings(system: str, code: str, milestone: str | None, signal: str | None) -> None:
    row = read_mapping_file(MAPPINGS_DIR / f"{system}.csv")[code]
    assert (row.milestone, row.signal, row.raw_only) == (
        milestone,
        signal,
        milestone is None and signal is None,
    )
