"""The DCSA adapter against material written outside this project (tests/fixtures/dcsa, see SOURCES.md):
the DCSA Conformance Gateway's T&T 2.2 and 3.0.0 messages and the DCSA-TNT reference implementation's
3.0.0-Beta-1 load-test data. The fixtures are read unchanged; variants are derived here."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from domain.tracking.canonical import CanonicalEvent, Classifier, ParseIssue, Place, SourceCode
from domain.tracking.formats.dcsa import latest_versions, parse_dcsa
from domain.tracking.mapping import MappingTable, Resolution

FIXTURES = Path(__file__).parents[1] / "fixtures" / "dcsa"
NOW = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
UTC = dt.UTC


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def summary(event: CanonicalEvent) -> tuple[Any, ...]:
    return (
        event.source_event_id,
        event.classifier.value,
        event.code,
        event.occurred_at,
        event.utc_offset_minutes,
        event.updated_at,
        event.references,
    )


def test_tnt_220_response_yields_exactly_its_seven_events() -> None:
    message = parse_dcsa(fixture("tnt-220-response.json"), now=NOW)
    assert message.issues == []
    booking, mbl = ("booking", "ABC123123123"), ("master_bl", "reserved-HHL123")
    container, forwarder = ("container", "APZU4812090"), ("customer_reference", "string")
    forwarder_eq = ("customer_reference", "APZU4812090")
    arri = SourceCode("dcsa.transport", "ARRI", "smdg.delay", "WEA")
    drft, load = SourceCode("dcsa.shipment", "DRFT"), SourceCode("dcsa.equipment", "LOAD")
    arrival = dt.datetime(2021, 1, 9, 13, 12, 56, tzinfo=UTC)  # 2021-01-09T14:12:56+01:00
    drafted = dt.datetime(2019, 11, 11, 23, 11, tzinfo=UTC)  # 2019-11-12T07:41:00+08:30
    created_23rd = dt.datetime(2021, 1, 23, 12, 34, 56, tzinfo=UTC)
    created_9th = dt.datetime(2021, 1, 9, 14, 12, 56, tzinfo=UTC)
    prefix = "3cecb101-7a1a-43a4-9d62-e88a131651e"
    assert [summary(event) for event in message.events] == [
        (f"{prefix}2", "ACT", arri, arrival, 60, created_23rd, (booking, mbl, forwarder, container)),
        (f"{prefix}3", "ACT", drft, drafted, 510, created_23rd, (forwarder, container)),
        (f"{prefix}4", "EST", load, drafted, 510, created_23rd, (booking, mbl, container, forwarder_eq)),
        (f"{prefix}5", "ACT", arri, arrival, 60, created_9th, (booking, mbl, container, forwarder_eq)),
        (f"{prefix}6", "ACT", drft, drafted, 510, created_9th, (forwarder, container, booking)),
        (f"{prefix}7", "EST", load, drafted, 510, created_9th, (booking, mbl, container, forwarder_eq)),
        (
            f"{prefix}8",
            "ACT",
            drft,
            drafted,
            510,
            dt.datetime(2021, 1, 1, 14, 12, 56, tzinfo=UTC),
            (forwarder, container, mbl),
        ),
    ]
    first, _, load_event = message.events[:3]
    assert first.place == Place(locode="FRPAR", facility_code="ADT")
    assert first.carrier_code == "MAEU"
    assert (
        first.detail["transport_call_reference"],
        first.detail["vessel_imo"],
        first.detail["vessel_name"],
    ) == (
        "123e4567-e89b-12d3-a456-426614174000",
        "9321483",
        "King of the Seas",
    )
    assert (first.detail["export_voyage_number"], first.detail["import_voyage_number"]) == ("2103S", "2103N")
    assert load_event.place == Place(
        locode="FRPAR",
        name="Eiffel Tower",
        city="København",
        state="N/A",
        postal_code="1306",
        facility_code="ADT",
    )
    assert (load_event.detail["empty_indicator"], load_event.detail["equipment_iso_code"]) == (
        "EMPTY",
        "22GP",
    )
    assert load_event.detail["seals"] == [{"number": "string", "source": "CUS", "type": "WIR"}]


def test_the_mapping_tables_resolve_every_220_event() -> None:
    table = MappingTable()
    message = parse_dcsa(fixture("tnt-220-response.json"), now=NOW)
    assert [table.resolve_event(event) for event in message.events] == [
        Resolution(milestone="ARRIVED", signals=("WEATHER",)),
        Resolution(milestone=None, signals=()),
        Resolution(milestone="LOADED", signals=()),
        Resolution(milestone="ARRIVED", signals=("WEATHER",)),
        Resolution(milestone=None, signals=()),
        Resolution(milestone="LOADED", signals=()),
        Resolution(milestone=None, signals=()),
    ]


def test_every_wrong_date_time_case_is_rejected_with_its_reason() -> None:
    cases = json.loads(fixture("tnt-220-response-wrong-date-times.json"))
    labels = [case.get("TEST_CASE") for case in cases]
    assert labels == [
        None,  # the unlabelled baseline every case is derived from: a valid 2.2 shipment event
        "missing eventCreatedDateTime",
        "missing eventDateTime",
        "wrong eventCreatedDateTime format",
        "wrong eventDateTime format",
        "eventDateTime too early",
        "eventDateTime too late",
    ]
    message = parse_dcsa(fixture("tnt-220-response-wrong-date-times.json"), now=NOW)
    assert [event.position for event in message.events] == ["events[0]"]
    assert message.rejected is False
    assert message.issues == [
        ParseIssue("events[1].eventCreatedDateTime", "missing_field", "eventCreatedDateTime is required"),
        ParseIssue("events[2].eventDateTime", "missing_field", "eventDateTime is required"),
        ParseIssue(
            "events[3].eventCreatedDateTime",
            "invalid_datetime",
            "'2021 01 01 14:12:56' is not an ISO 8601 date-time with a UTC offset (e.g. 2021-01-09T14:12:56+01:00)",
        ),
        ParseIssue(
            "events[4].eventDateTime",
            "invalid_datetime",
            "'2019/11/12 07:41:00 +08:30' is not an ISO 8601 date-time with a UTC offset "
            "(e.g. 2021-01-09T14:12:56+01:00)",
        ),
        # JSON Schema lets these two through; our own semantic checks catch them
        ParseIssue(
            "events[5].eventCreatedDateTime",
            "date_too_early",
            "eventCreatedDateTime 1999-01-01T14:12:56+00:00 is before 2000-01-01",
        ),
        ParseIssue(
            "events[6].eventCreatedDateTime",
            "date_in_future",
            "eventCreatedDateTime 2099-01-01T14:12:56+00:00 is more than a day after now (2026-02-01T00:00:00+00:00)",
        ),
    ]


def test_tnt_300_response_parses_in_the_300_shape() -> None:
    message = parse_dcsa(fixture("tnt-300-response.json"), now=NOW)
    assert message.issues == []
    assert [
        (
            event.source_event_id,
            event.classifier,
            event.code,
            event.occurred_at,
            event.updated_at,
            event.is_retracted,
        )
        for event in message.events
    ] == [
        (
            "evt-resp-ship-001",
            Classifier.ACTUAL,
            SourceCode("dcsa.shipment", "CONF"),
            dt.datetime(2026, 1, 15, 9, tzinfo=UTC),
            dt.datetime(2025, 1, 23, 1, 23, 45, tzinfo=UTC),
            False,
        ),
        (
            "evt-resp-trans-001",
            Classifier.ACTUAL,
            SourceCode("dcsa.transport", "DEPA"),
            dt.datetime(2026, 1, 16, 11, 30, tzinfo=UTC),
            dt.datetime(2025, 1, 25, 1, 23, 45, tzinfo=UTC),
            False,
        ),
        (
            "evt-resp-equip-001",
            Classifier.ACTUAL,
            SourceCode("dcsa.equipment", "GTIN"),
            dt.datetime(2026, 1, 17, 13, 45, tzinfo=UTC),
            dt.datetime(2025, 1, 27, 1, 23, 45, tzinfo=UTC),
            False,
        ),
        (
            "evt-resp-iot-001",
            Classifier.ACTUAL,
            SourceCode("dcsa.iot", "DETC"),
            dt.datetime(2026, 1, 18, 15, 20, tzinfo=UTC),
            dt.datetime(2025, 1, 29, 1, 23, 45, tzinfo=UTC),
            False,
        ),
        (
            "evt-resp-reefer-001",
            Classifier.ACTUAL,
            SourceCode("dcsa.reefer", "MEAS"),
            dt.datetime(2026, 1, 19, 17, tzinfo=UTC),
            dt.datetime(2025, 2, 1, 1, 23, 45, tzinfo=UTC),
            False,
        ),
    ]
    shipment, transport, equipment, iot, reefer = message.events
    assert (
        shipment.references
        == transport.references
        == (("booking", "ABC709951"), ("master_bl", "HHL71800000"))
    )
    assert equipment.references == iot.references == reefer.references == (("container", "APZU4812090"),)
    assert {event.carrier_code for event in message.events} == {"EXCO"}
    assert transport.place == Place(locode="GBSOU", name="Example Terminal Alpha")
    assert (transport.detail["transport_call_reference"], transport.detail["vessel_name"]) == (
        "tc-67890-def",
        "Example Vessel Beta",
    )
    assert equipment.place == Place(
        locode="FRPAR",
        name="Example Warehouse Facility",
        city="Example Town",
        country="FR",
        postal_code="75001",
    )
    assert iot.detail["iot_event_code"] == "LOC"
    assert (iot.detail["latitude"], iot.detail["longitude"]) == ("51.5074", "-0.1278")
    assert reefer.detail["reefer"]["temperatureUnit"] == "CEL"


def test_tnt_300_request_parses() -> None:
    message = parse_dcsa(fixture("tnt-300-request-transport.json"), now=NOW)
    assert message.issues == []
    [event] = message.events
    assert summary(event) == (
        "evt-trans-001-2026-01-20T12:30:00Z",
        "ACT",
        SourceCode("dcsa.transport", "ARRI"),
        dt.datetime(2026, 1, 20, 12, 30, tzinfo=UTC),
        0,
        dt.datetime(2025, 1, 25, 1, 23, 45, tzinfo=UTC),
        (("booking", "ABC709951"), ("master_bl", "HHL71800000")),
    )
    assert event.place == Place(locode="DEHAM", name="Sample Port Terminal")
    assert (
        event.detail["vessel_imo"],
        event.detail["export_voyage_number"],
        event.detail["transport_call_sequence"],
    ) == (
        "1234567",
        "V001E",
        3,
    )


def test_300_updates_and_retractions_of_the_fixture_events() -> None:
    document = json.loads(fixture("tnt-300-response.json"))
    departure = document["events"][1]
    delayed = copy.deepcopy(departure)
    delayed["eventUpdatedDateTime"] = "2025-01-26T00:00:00Z"
    delayed["eventDateTime"] = "2026-01-16T18:00:00Z"
    delayed["transportDetails"]["delayReasonCodes"] = ["PBC"]
    gate_in_retraction = {
        "eventID": "evt-resp-equip-001",
        "isRetracted": True,
        "eventUpdatedDateTime": "2025-01-28T00:00:00Z",
    }
    # the update and the retraction arrive first, in a later message: arrival order must not matter
    later = parse_dcsa({"events": [delayed, gate_in_retraction]}, now=NOW)
    earlier = parse_dcsa(document, now=NOW)
    assert later.issues == earlier.issues == []
    result = latest_versions(later.events + earlier.events)
    assert result == latest_versions(earlier.events + later.events)
    assert result.withdrawn == frozenset({"evt-resp-equip-001"})
    assert [(event.source_event_id, event.occurred_at, event.code.qualifier) for event in result.events] == [
        ("evt-resp-ship-001", dt.datetime(2026, 1, 15, 9, tzinfo=UTC), None),
        ("evt-resp-trans-001", dt.datetime(2026, 1, 16, 18, tzinfo=UTC), "PBC"),
        ("evt-resp-iot-001", dt.datetime(2026, 1, 18, 15, 20, tzinfo=UTC), None),
        ("evt-resp-reefer-001", dt.datetime(2026, 1, 19, 17, tzinfo=UTC), None),
    ]


def test_tnt_300_beta1_load_test_data_parses() -> None:
    message = parse_dcsa(fixture("tnt-300beta1-events-dcsa-tnt-postman.json"), now=NOW)
    assert message.issues == []
    assert len(message.events) == 25
    assert {event.detail["dcsa_version"] for event in message.events} == {"3.0.0-Beta-1"}
    assert [event.classifier.value for event in message.events].count("PLN") == 6
    assert [event.classifier.value for event in message.events].count("EST") == 2
    assert [event.classifier.value for event in message.events].count("ACT") == 17
    first = message.events[0]
    assert summary(first) == (
        "41533e39-df30-45c8-8035-127c92f93f8f",
        "EST",
        SourceCode("dcsa.transport", "DEPA", "smdg.delay", "ANA"),
        dt.datetime(2003, 5, 3, tzinfo=UTC),
        0,
        dt.datetime(2003, 5, 1, tzinfo=UTC),
        (("booking", "ABC123123123"),),
    )
    assert first.place == Place(locode="USNYC", name="Eiffel Tower")
    assert first.carrier_code == "MSK"
    load = message.events[20]
    assert (load.updated_at, load.references) == (
        dt.datetime(2023, 4, 18, 5, 56, 23, 871884, tzinfo=UTC),
        (("booking", "ABC123123123"), ("container", "equipref3453")),
    )
    assert (load.detail["equipment_iso_code"], load.detail["transshipment_move"]) == ("22G2", False)


def test_beta1_bookings_show_plan_estimate_and_actual_for_the_same_transport_calls() -> None:
    message = parse_dcsa(fixture("tnt-300beta1-events-dcsa-tnt-postman.json"), now=NOW)
    calls: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    for event in message.events:
        call = event.detail.get("transport_call_reference")
        for kind, booking in event.references:
            if kind == "booking" and call is not None:
                calls[(booking, call)].add((event.classifier.value, event.code.code))
    assert calls[("ABC123123123", "TC-REF-08_02-A")] == {
        ("PLN", "DEPA"),
        ("EST", "LOAD"),
        ("ACT", "LOAD"),
        ("ACT", "ARRI"),
        ("ACT", "DEPA"),
    }
    assert calls[("ABC123123123", "TC-REF-08_02-B")] == {("PLN", "ARRI"), ("EST", "DEPA"), ("ACT", "DEPA")}
    assert calls[("C501576CD94F", "TC-REF-08_04-A")] == {("PLN", "ARRI")}
    assert calls[("AR1239719871", "TC-REF-08_01-C")] == {("PLN", "DEPA")}

    # the departure from TC-REF-08_02-B: estimated, then actual, same instant (USNYC)
    departures = [
        (event.classifier, event.occurred_at, event.place)
        for event in message.events
        if event.detail.get("transport_call_reference") == "TC-REF-08_02-B" and event.code.code == "DEPA"
    ]
    assert departures == [
        (
            Classifier.ESTIMATED,
            dt.datetime(2003, 5, 3, tzinfo=UTC),
            Place(locode="USNYC", name="Eiffel Tower"),
        ),
        (Classifier.ACTUAL, dt.datetime(2003, 5, 3, tzinfo=UTC), Place(locode="USNYC", name="Eiffel Tower")),
    ]
