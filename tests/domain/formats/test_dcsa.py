"""The DCSA Track & Trace adapter, without a database: shapes, fields, validation, bad input, versions."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.shipments.models import MilestoneCode
from domain.tracking.canonical import CanonicalEvent, Classifier, ParseIssue, Place, Signal, SourceCode
from domain.tracking.formats.dcsa import LatestVersions, latest_versions, parse_dcsa
from domain.tracking.formats.dcsa.reader import Instant, parse_instant
from domain.tracking.mapping import (
    CODELISTS_DIR,
    MAPPINGS_DIR,
    CodeMapping,
    read_codelist,
    read_mapping_file,
    unmapped_codes,
)

NOW = dt.datetime(2026, 2, 1, 12, 0, tzinfo=dt.UTC)
UTC = dt.UTC
FIXTURE_CODELISTS = Path(__file__).parents[2] / "fixtures" / "dcsa" / "codelists"
FULLWIDTH_YEAR = "\uff12\uff10\uff12\uff13"  # digits, to Unicode; not to ISO 8601
DCSA_SYSTEMS = ("dcsa.transport", "dcsa.equipment", "dcsa.shipment", "dcsa.iot", "dcsa.reefer", "smdg.delay")


def parse(*events: Any) -> tuple[list[CanonicalEvent], list[ParseIssue]]:
    message = parse_dcsa(json.dumps(list(events)).encode(), now=NOW)
    return message.events, message.issues


def v22_transport(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventID": "e-1",
        "eventCreatedDateTime": "2026-01-20T10:00:00Z",
        "eventType": "TRANSPORT",
        "eventClassifierCode": "ACT",
        "eventDateTime": "2026-01-20T08:30:00+05:30",
        "transportEventTypeCode": "DEPA",
        "transportCall": {
            "transportCallID": "tc-1",
            "modeOfTransport": "VESSEL",
            "UNLocationCode": "INNSA",
            "facilityCode": "NSICT",
            "facilityCodeListProvider": "SMDG",
            "facilityTypeCode": "POTE",
            "exportVoyageNumber": "012W",
            "transportCallSequenceNumber": 1,
            "vessel": {
                "vesselIMONumber": "9321483",
                "vesselName": "Maersk Example",
                "vesselOperatorCarrierCode": "MAEU",
            },
        },
        "documentReferences": [
            {"documentReferenceType": "BKG", "documentReferenceValue": "BK-1"},
            {"documentReferenceType": "TRD", "documentReferenceValue": "MBL-1"},
        ],
    }
    event.update(changes)
    return event


def v22_equipment(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventID": "e-2",
        "eventCreatedDateTime": "2026-01-20T10:00:00Z",
        "eventType": "EQUIPMENT",
        "eventClassifierCode": "ACT",
        "eventDateTime": "2026-01-20T09:00:00Z",
        "equipmentEventTypeCode": "GTIN",
        "equipmentReference": "MSKU1234565",
        "emptyIndicatorCode": "LADEN",
    }
    event.update(changes)
    return event


def v22_shipment(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventCreatedDateTime": "2026-01-20T10:00:00Z",
        "eventType": "SHIPMENT",
        "eventClassifierCode": "ACT",
        "eventDateTime": "2026-01-20T10:00:00Z",
        "shipmentEventTypeCode": "CONF",
        "documentTypeCode": "BKG",
        "documentID": "BK-1",
    }
    event.update(changes)
    return event


def v300(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventID": "evt-1",
        "eventDateTime": "2026-01-20T12:30:00-03:00",
        "eventUpdatedDateTime": "2026-01-20T16:00:00Z",
        "eventClassification": {
            "eventTypeCode": "TRANSPORT",
            "eventClassifierCode": "EST",
            "transportEventTypeCode": "ARRI",
        },
        "eventLocation": {
            "locationName": "Santos Terminal",
            "UNLocationCode": "BRSSZ",
            "facilityTypeCode": "POTE",
        },
        "transportDetails": {"delayReasonCodes": ["WEA", "CGS"], "changeRemark": "Storm"},
        "shipmentDetails": {"documentReference": {"typeCode": "BKG", "reference": "BK-9"}},
    }
    event.update(changes)
    return event


def beta1(**payload_changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventDateTime": "2026-01-20T00:00:00Z",
        "eventClassifierCode": "PLN",
        "transportEventTypeCode": "ARRI",
        "relatedDocumentReferences": [{"type": "CBR", "value": "CBR-1"}, {"type": "BKG", "value": "BK-7"}],
        "transportCall": {
            "transportCallReference": "TC-7",
            "modeOfTransport": "VESSEL",
            "location": {"UNLocationCode": "NLRTM", "locationName": "Rotterdam"},
            "vessel": {"vesselIMONumber": "9321483", "name": "Beta Vessel", "operatorCarrierCode": "MSK"},
        },
    }
    payload.update(payload_changes)
    return {
        "metadata": {
            "eventID": "b-1",
            "eventCreatedDateTime": "2026-01-10T00:00:00Z",
            "eventType": "TRANSPORT",
        },
        "payload": payload,
    }


def codes(issues: list[ParseIssue]) -> list[tuple[str, str]]:
    return [(issue.position, issue.code) for issue in issues]


# --- shapes ---------------------------------------------------------------------------------------------


def test_a_22_transport_event_becomes_a_canonical_event() -> None:
    events, issues = parse(v22_transport(delayReasonCode="STR", changeRemark="Port strike"))
    assert issues == []
    assert events == [
        CanonicalEvent(
            source="dcsa",
            classifier=Classifier.ACTUAL,
            code=SourceCode("dcsa.transport", "DEPA", "smdg.delay", "STR"),
            occurred_at=dt.datetime(2026, 1, 20, 3, 0, tzinfo=UTC),
            references=(("booking", "BK-1"), ("master_bl", "MBL-1")),
            position="events[0]",
            source_event_id="e-1",
            utc_offset_minutes=330,
            place=Place(locode="INNSA", facility_code="NSICT"),
            carrier_code="MAEU",
            updated_at=dt.datetime(2026, 1, 20, 10, 0, tzinfo=UTC),
            is_retracted=False,
            detail={
                "dcsa_version": "2.2",
                "event_type": "TRANSPORT",
                "document_references": [
                    {"type": "BKG", "reference": "BK-1"},
                    {"type": "TRD", "reference": "MBL-1"},
                ],
                "change_remark": "Port strike",
                "transport_call_reference": "tc-1",
                "mode_of_transport": "VESSEL",
                "export_voyage_number": "012W",
                "transport_call_sequence": 1,
                "facility_type_code": "POTE",
                "vessel_imo": "9321483",
                "vessel_name": "Maersk Example",
                "vessel_operator_carrier_code": "MAEU",
                "facility_code_list_provider": "SMDG",
            },
        )
    ]


def test_a_300_document_is_an_object_with_events() -> None:
    document = {
        "events": [
            v300(
                eventRouting={"originatingParty": {"partyCode": "MAEU", "codeListProvider": "NMFTA"}},
                transportDetails={
                    "delayReasonCodes": ["WEA", "CGS"],
                    "transportCall": {
                        "transportCallReference": "tc-9",
                        "vesselTransport": {"vesselIMONumber": "9321483", "operatorCarrierCode": "HLCU"},
                        "exportVoyageNumberOrReference": {"carrierVoyageNumber": "001E"},
                    },
                },
            )
        ]
    }
    message = parse_dcsa(json.dumps(document).encode(), now=NOW)
    assert message.issues == []
    [event] = message.events
    assert event.code == SourceCode("dcsa.transport", "ARRI", "smdg.delay", "WEA")
    assert event.classifier is Classifier.ESTIMATED
    assert event.occurred_at == dt.datetime(2026, 1, 20, 15, 30, tzinfo=UTC)
    assert event.utc_offset_minutes == -180
    assert event.updated_at == dt.datetime(2026, 1, 20, 16, 0, tzinfo=UTC)
    assert event.references == (("booking", "BK-9"),)
    assert event.place == Place(locode="BRSSZ", name="Santos Terminal")
    assert event.carrier_code == "MAEU"  # the originating party, not the vessel operator
    assert event.detail == {
        "dcsa_version": "3.0.0",
        "event_type": "TRANSPORT",
        "originating_party": {"partyCode": "MAEU", "codeListProvider": "NMFTA"},
        "carrier_code_list_provider": "NMFTA",
        "facility_type_code": "POTE",
        "document_type_code": "BKG",
        "document_reference": "BK-9",
        "document_references": [{"type": "BKG", "reference": "BK-9"}],
        "transport_call_reference": "tc-9",
        "export_voyage_number": "001E",
        "vessel_imo": "9321483",
        "vessel_operator_carrier_code": "HLCU",
        "delay_reason_codes": ["WEA", "CGS"],
    }


def test_a_beta1_event_is_read_from_its_envelope() -> None:
    events, issues = parse(beta1())
    assert issues == []
    assert events == [
        CanonicalEvent(
            source="dcsa",
            classifier=Classifier.PLANNED,
            code=SourceCode("dcsa.transport", "ARRI"),
            occurred_at=dt.datetime(2026, 1, 20, tzinfo=UTC),
            references=(("booking", "BK-7"),),
            position="events[0]",
            source_event_id="b-1",
            utc_offset_minutes=0,
            place=Place(locode="NLRTM", name="Rotterdam"),
            carrier_code="MSK",
            updated_at=dt.datetime(2026, 1, 10, tzinfo=UTC),
            detail={
                "dcsa_version": "3.0.0-Beta-1",
                "event_type": "TRANSPORT",
                "document_references": [
                    {"type": "CBR", "reference": "CBR-1"},
                    {"type": "BKG", "reference": "BK-7"},
                ],
                "transport_call_reference": "TC-7",
                "mode_of_transport": "VESSEL",
                "vessel_imo": "9321483",
                "vessel_name": "Beta Vessel",
                "vessel_operator_carrier_code": "MSK",
            },
        )
    ]


def test_one_document_may_mix_the_shapes_and_already_decoded_json_is_accepted() -> None:
    document = [v22_equipment(), beta1(), v300()]
    message = parse_dcsa(document, now=NOW)
    assert message.issues == []
    assert [event.detail["dcsa_version"] for event in message.events] == ["2.2", "3.0.0-Beta-1", "3.0.0"]
    assert parse_dcsa(json.dumps(document), now=NOW) == message


def test_equipment_fields_seals_and_location() -> None:
    events, issues = parse(
        v22_equipment(
            ISOEquipmentCode="45G1",
            eventLocation={
                "locationName": "Depot Nord",
                "UNLocationCode": "DEHAM",
                "latitude": "53.5",
                "longitude": "9.9",
                "address": {"street": "Kai", "city": "Hamburg", "postCode": "20457", "country": "DE"},
            },
            seals=[{"sealNumber": "S1", "sealSource": "CAR", "sealType": "BLT"}],
            references=[{"referenceType": "EQ", "referenceValue": "MSKU1234565"}],
        )
    )
    assert issues == []
    [event] = events
    assert event.references == (("container", "MSKU1234565"),)
    assert event.place == Place(
        locode="DEHAM", name="Depot Nord", city="Hamburg", country="DE", postal_code="20457"
    )
    assert event.detail == {
        "dcsa_version": "2.2",
        "event_type": "EQUIPMENT",
        "shipment_references": [{"type": "EQ", "reference": "MSKU1234565"}],
        "equipment_reference": "MSKU1234565",
        "equipment_iso_code": "45G1",
        "empty_indicator": "LADEN",
        "seals": [{"number": "S1", "source": "CAR", "type": "BLT"}],
        "latitude": "53.5",
        "longitude": "9.9",
        "address": {
            "street": "Kai",
            "postCode": "20457",
            "city": "Hamburg",
            "country": "DE",
            "countryCode": "DE",
        },
    }


def test_reference_kinds() -> None:
    events, issues = parse(
        v300(
            shipmentDetails={
                "documentReference": {"typeCode": "TRD", "reference": "MBL-5"},
                "additionalDocumentReferences": [
                    {"typeCode": "BKG", "reference": "BK-5"},
                    {"typeCode": "CBR", "reference": "CBR-5"},
                    {"typeCode": "SHI", "reference": "SI-5"},
                ],
                "shipmentReferences": [
                    {"typeCode": "FF", "reference": "FWD-5"},
                    {"typeCode": "PO", "reference": "PO-5"},
                    {"typeCode": "EQ", "reference": "MSKU1234565"},
                    {"typeCode": "ECR", "reference": "REL-5"},
                ],
            },
            equipmentDetails={"equipmentReference": "MSKU1234565"},
        )
    )
    assert issues == []
    assert events[0].references == (
        ("master_bl", "MBL-5"),
        ("booking", "BK-5"),
        ("customer_reference", "FWD-5"),
        ("customer_reference", "PO-5"),
        ("container", "MSKU1234565"),
    )


def test_a_22_shipment_event_without_event_id_is_valid() -> None:
    events, issues = parse(v22_shipment())
    assert issues == []
    assert events[0].source_event_id is None
    assert events[0].references == (("booking", "BK-1"),)
    assert events[0].code == SourceCode("dcsa.shipment", "CONF")


def test_iot_and_reefer_are_300_types_only() -> None:
    iot = v300(
        eventClassification={"eventTypeCode": "IOT", "eventClassifierCode": "ACT", "iotEventTypeCode": "DETC"}
    )
    events, issues = parse(iot, v22_transport(eventType="IOT"))
    assert [event.code for event in events] == [SourceCode("dcsa.iot", "DETC", "smdg.delay", "WEA")]
    assert codes(issues) == [("events[1].eventType", "unknown_event_type")]


# --- times ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-01-09T14:12:56+01:00", Instant(dt.datetime(2021, 1, 9, 13, 12, 56, tzinfo=UTC), 60)),
        ("2019-11-12T07:41:00+08:30", Instant(dt.datetime(2019, 11, 11, 23, 11, tzinfo=UTC), 510)),
        ("2021-01-09T14:12:56Z", Instant(dt.datetime(2021, 1, 9, 14, 12, 56, tzinfo=UTC), 0)),
        ("2021-01-09t14:12:56z", Instant(dt.datetime(2021, 1, 9, 14, 12, 56, tzinfo=UTC), 0)),
        ("2021-01-09T14:12:56-00:00", Instant(dt.datetime(2021, 1, 9, 14, 12, 56, tzinfo=UTC), None)),
        ("2021-01-09T14:12:56-09:30", Instant(dt.datetime(2021, 1, 9, 23, 42, 56, tzinfo=UTC), -570)),
        (
            "2023-04-18T05:56:23.871884Z",
            Instant(dt.datetime(2023, 4, 18, 5, 56, 23, 871884, tzinfo=UTC), 0),
        ),
        ("2023-04-18T05:56:23.8718849Z", Instant(dt.datetime(2023, 4, 18, 5, 56, 23, 871884, tzinfo=UTC), 0)),
        ("2024-02-29T00:00:00+14:00", Instant(dt.datetime(2024, 2, 28, 10, 0, tzinfo=UTC), 840)),
    ],
)
def test_date_times_keep_their_offset(text: str, expected: Instant) -> None:
    assert parse_instant(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "2023-02-30T10:00:00Z",
            "'2023-02-30T10:00:00Z' is not a date-time that exists (day is out of range for month)",
        ),
        (
            "2023-02-29T10:00:00Z",
            "'2023-02-29T10:00:00Z' is not a date-time that exists (day is out of range for month)",
        ),
        (
            "2023-13-01T10:00:00Z",
            "'2023-13-01T10:00:00Z' is not a date-time that exists (month must be in 1..12)",
        ),
        (
            "2023-01-01T24:00:00Z",
            "'2023-01-01T24:00:00Z' is not a date-time that exists (hour must be in 0..23)",
        ),
        (
            "2023-01-01T10:00:60Z",
            "'2023-01-01T10:00:60Z' is not a date-time that exists (second must be in 0..59)",
        ),
        (
            "2023-01-01T10:00:00",
            "'2023-01-01T10:00:00' has no UTC offset; expected e.g. 2021-01-09T14:12:56+01:00 or ...Z",
        ),
        (
            "2023-01-01 10:00",
            "'2023-01-01 10:00' has no UTC offset; expected e.g. 2021-01-09T14:12:56+01:00 or ...Z",
        ),
        ("2023-01-01T10:00:00+15:00", "'2023-01-01T10:00:00+15:00' has a UTC offset beyond ±14:00"),
        ("2023-01-01T10:00:00+01:60", "'2023-01-01T10:00:00+01:60' has an invalid UTC offset"),
        (
            "2023-01-01",
            "'2023-01-01' is not an ISO 8601 date-time with a UTC offset (e.g. 2021-01-09T14:12:56+01:00)",
        ),
        (
            "20230101T100000Z",
            "'20230101T100000Z' is not an ISO 8601 date-time with a UTC offset (e.g. 2021-01-09T14:12:56+01:00)",
        ),
        (
            FULLWIDTH_YEAR + "-01-01T10:00:00Z",
            f"'{FULLWIDTH_YEAR}-01-01T10:00:00Z' is not an ISO 8601 date-time with a UTC offset "
            "(e.g. 2021-01-09T14:12:56+01:00)",
        ),
    ],
)
def test_date_times_that_are_not_valid(text: str, reason: str) -> None:
    assert parse_instant(text) == reason


def test_a_date_that_does_not_exist_is_an_issue_at_its_field() -> None:
    events, issues = parse(v22_transport(eventDateTime="2023-02-30T10:00:00+01:00"))
    assert events == []
    assert issues == [
        ParseIssue(
            "events[0].eventDateTime",
            "invalid_datetime",
            "'2023-02-30T10:00:00+01:00' is not a date-time that exists (day is out of range for month)",
        )
    ]


# --- our semantic checks --------------------------------------------------------------------------------


def test_created_before_2000_is_refused() -> None:
    events, issues = parse(v22_transport(eventCreatedDateTime="1999-12-31T23:59:59Z"))
    assert events == []
    assert issues == [
        ParseIssue(
            "events[0].eventCreatedDateTime",
            "date_too_early",
            "eventCreatedDateTime 1999-12-31T23:59:59+00:00 is before 2000-01-01",
        )
    ]


def test_created_more_than_a_day_after_now_is_refused_a_day_is_tolerated() -> None:
    events, issues = parse(
        v22_transport(eventCreatedDateTime="2026-02-02T12:00:00Z"),
        v22_transport(eventCreatedDateTime="2026-02-02T12:00:01Z"),
    )
    assert [event.position for event in events] == ["events[0]"]
    assert issues == [
        ParseIssue(
            "events[1].eventCreatedDateTime",
            "date_in_future",
            "eventCreatedDateTime 2026-02-02T12:00:01+00:00 is more than a day after now (2026-02-01T12:00:00+00:00)",
        )
    ]


def test_updated_in_2099_is_refused_in_300() -> None:
    events, issues = parse(v300(eventUpdatedDateTime="2099-01-01T00:00:00Z"))
    assert events == []
    assert codes(issues) == [("events[0].eventUpdatedDateTime", "date_in_future")]


def test_actual_events_cannot_be_in_the_future_plans_and_estimates_can() -> None:
    late = "2026-02-02T12:00:01Z"
    events, issues = parse(
        v22_transport(
            eventClassifierCode="ACT", eventDateTime="2026-02-02T13:00:00+01:00"
        ),  # exactly now + 1 day
        v22_transport(eventClassifierCode="ACT", eventDateTime=late),
        v22_transport(eventClassifierCode="EST", eventDateTime="2031-06-01T00:00:00Z"),
        v22_transport(eventClassifierCode="PLN", eventDateTime="2031-06-01T00:00:00Z"),
    )
    assert [(event.position, event.classifier) for event in events] == [
        ("events[0]", Classifier.ACTUAL),
        ("events[2]", Classifier.ESTIMATED),
        ("events[3]", Classifier.PLANNED),
    ]
    assert issues == [
        ParseIssue(
            "events[1].eventDateTime",
            "actual_in_future",
            "an actual (ACT) event at 2026-02-02T12:00:01+00:00 is more than a day after now "
            "(2026-02-01T12:00:00+00:00); only PLN and EST may be in the future",
        )
    ]


@pytest.mark.parametrize("classifier", ["PLN", "EST", "ACT"])
def test_no_event_date_before_2000_whatever_the_classifier(classifier: str) -> None:
    events, issues = parse(
        v22_transport(eventClassifierCode=classifier, eventDateTime="1999-06-01T00:00:00Z")
    )
    assert events == []
    assert issues == [
        ParseIssue(
            "events[0].eventDateTime",
            "date_too_early",
            "eventDateTime 1999-06-01T00:00:00+00:00 is before 2000-01-01",
        )
    ]


def test_the_clock_must_be_aware() -> None:
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        parse_dcsa(b"[]", now=dt.datetime(2026, 2, 1))  # noqa: DTZ001


# --- code lists and formats -----------------------------------------------------------------------------


def test_classifiers() -> None:
    events, issues = parse(v22_transport(eventClassifierCode="REQ"), v22_transport(eventClassifierCode="act"))
    assert events == []
    assert issues == [
        ParseIssue(
            "events[0].eventClassifierCode",
            "unsupported_classifier",
            "REQ (requested) is a DCSA classifier, but a timeline records only PLN, EST and ACT",
        ),
        ParseIssue("events[1].eventClassifierCode", "unknown_classifier", "'act' is not PLN, EST or ACT"),
    ]


def test_type_codes_come_from_the_dcsa_lists() -> None:
    events, issues = parse(
        v22_transport(transportEventTypeCode="LOAD"),
        v22_equipment(equipmentEventTypeCode="TELE"),
        v300(
            eventClassification={
                "eventTypeCode": "REEFER",
                "eventClassifierCode": "ACT",
                "reeferEventTypeCode": "HOT",
            }
        ),
        v22_transport(eventType="VESSEL"),
    )
    assert events == []
    assert issues == [
        ParseIssue(
            "events[0].transportEventTypeCode",
            "unknown_type_code",
            "'LOAD' is not in the DCSA transport event type code list",
        ),
        ParseIssue(
            "events[1].equipmentEventTypeCode",
            "unknown_type_code",
            "'TELE' is not in the DCSA equipment event type code list",
        ),
        ParseIssue(
            "events[2].eventClassification.reeferEventTypeCode",
            "unknown_type_code",
            "'HOT' is not in the DCSA reefer event type code list",
        ),
        ParseIssue(
            "events[3].eventType",
            "unknown_event_type",
            "'VESSEL' is not one of TRANSPORT, EQUIPMENT, SHIPMENT",
        ),
    ]


@pytest.mark.parametrize("locode", ["frpar", "FRPA1", "FR-PA", "FRPARX", "F1PAR", "FRPA0"])
def test_un_locodes_are_checked_where_they_appear(locode: str) -> None:
    call = {**v22_transport()["transportCall"], "UNLocationCode": locode}
    events, issues = parse(
        v22_transport(transportCall=call),
        v300(eventLocation={"UNLocationCode": locode}),
    )
    assert events == []
    reason = f"{locode!r} is not a UN/LOCODE (2-letter country code and 3 letters or digits 2-9)"
    assert issues == [
        ParseIssue("events[0].transportCall.UNLocationCode", "invalid_locode", reason),
        ParseIssue("events[1].eventLocation.UNLocationCode", "invalid_locode", reason),
    ]


def test_empty_indicator_is_empty_or_laden() -> None:
    events, issues = parse(v22_equipment(emptyIndicatorCode="FULL"))
    assert events == []
    assert issues == [
        ParseIssue("events[0].emptyIndicatorCode", "invalid_value", "'FULL' is not one of EMPTY, LADEN")
    ]


# --- retractions ----------------------------------------------------------------------------------------


def test_a_300_retraction_needs_only_its_event_id() -> None:
    events, issues = parse(
        {"eventID": "evt-1", "isRetracted": True, "eventUpdatedDateTime": "2026-01-21T00:00:00Z"}
    )
    assert issues == []
    assert events == [
        CanonicalEvent(
            source="dcsa",
            classifier=Classifier.ACTUAL,
            code=SourceCode("dcsa.retraction", "RETRACTED"),
            occurred_at=dt.datetime(2026, 1, 21, tzinfo=UTC),
            references=(),
            position="events[0]",
            source_event_id="evt-1",
            updated_at=dt.datetime(2026, 1, 21, tzinfo=UTC),
            is_retracted=True,
            detail={"dcsa_version": "3.0.0"},
        )
    ]


def test_a_retraction_ignores_its_other_data_but_keeps_what_is_valid() -> None:
    retraction = v300(
        isRetracted=True, eventDateTime="yesterday", eventLocation={"UNLocationCode": "nowhere"}
    )
    events, issues = parse(retraction)
    assert issues == []
    [event] = events
    assert (event.is_retracted, event.source_event_id, event.code, event.classifier) == (
        True,
        "evt-1",
        SourceCode("dcsa.transport", "ARRI", "smdg.delay", "WEA"),
        Classifier.ESTIMATED,
    )
    assert event.occurred_at == dt.datetime(2026, 1, 20, 16, 0, tzinfo=UTC)  # no valid eventDateTime: updated


def test_a_retraction_without_event_id_is_refused() -> None:
    events, issues = parse(
        {"isRetracted": True, "eventUpdatedDateTime": "2026-01-21T00:00:00Z"},
        {"eventID": "  ", "isRetracted": True},
        {
            "metadata": {
                "eventID": "r-1",
                "eventCreatedDateTime": "2026-01-21T00:00:00Z",
                "retractedEventID": None,
            }
        },
    )
    assert events == []
    assert codes(issues) == [
        ("events[0].eventID", "retraction_without_id"),
        ("events[1].eventID", "retraction_without_id"),
        ("events[2].metadata.retractedEventID", "retraction_without_id"),
    ]


def test_a_retraction_still_needs_a_valid_update_time_if_it_has_one() -> None:
    events, issues = parse(
        {"eventID": "evt-1", "isRetracted": True, "eventUpdatedDateTime": "1999-01-01T00:00:00Z"}
    )
    assert events == []
    assert codes(issues) == [("events[0].eventUpdatedDateTime", "date_too_early")]


def test_a_beta1_retraction_names_the_event_it_withdraws() -> None:
    events, issues = parse(
        {
            "metadata": {
                "eventID": "r-1",
                "eventCreatedDateTime": "2026-01-21T00:00:00Z",
                "retractedEventID": "b-1",
            }
        }
    )
    assert issues == []
    [event] = events
    assert (event.source_event_id, event.is_retracted, event.detail) == (
        "b-1",
        True,
        {"dcsa_version": "3.0.0-Beta-1", "retraction_event_id": "r-1"},
    )


def test_is_retracted_must_be_a_boolean() -> None:
    events, issues = parse(v300(isRetracted="yes"))
    assert events == []
    assert issues == [
        ParseIssue("events[0].isRetracted", "wrong_type", "isRetracted must be true or false, got string")
    ]


# --- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "issue"),
    [
        (b"", ParseIssue("line 1 column 1", "not_json", "not JSON: Expecting value", fatal=True)),
        (
            b"[{]",
            ParseIssue(
                "line 1 column 3",
                "not_json",
                "not JSON: Expecting property name enclosed in double quotes",
                fatal=True,
            ),
        ),
        (b"<events/>", ParseIssue("line 1 column 1", "not_json", "not JSON: Expecting value", fatal=True)),
        (b"[NaN]", ParseIssue("$", "not_json", "not JSON: NaN is not a JSON number", fatal=True)),
        (
            b"[1e999]",
            ParseIssue("$", "not_json", "not JSON: 1e999 is out of range for a number", fatal=True),
        ),
        (
            b"\xff\xfe\xff",
            ParseIssue(
                "$",
                "not_json",
                "not JSON: 'utf-16-le' codec can't decode byte 0xff in position 2: truncated data",
                fatal=True,
            ),
        ),
        (
            b"42",
            ParseIssue(
                "$",
                "not_an_event_list",
                'expected an array of events (2.2, 3.0.0-Beta-1) or an object with "events" (3.0.0)',
                fatal=True,
            ),
        ),
        (
            b'{"eventID": "x"}',
            ParseIssue(
                "$",
                "not_an_event_list",
                'expected an array of events (2.2, 3.0.0-Beta-1) or an object with "events" (3.0.0)',
                fatal=True,
            ),
        ),
        (
            b'{"events": {"eventID": "x"}}',
            ParseIssue("events", "not_an_event_list", "events must be an array of events", fatal=True),
        ),
    ],
)
def test_a_document_that_is_not_an_event_list_is_rejected(document: bytes, issue: ParseIssue) -> None:
    message = parse_dcsa(document, now=NOW)
    assert (message.events, message.issues, message.rejected) == ([], [issue], True)


def test_deep_nesting_is_refused_without_recursion() -> None:
    too_deep = ParseIssue("$", "too_deep", "the document nests deeper than 64 levels", fatal=True)
    bomb = b"[" * 200_000 + b"]" * 200_000
    assert parse_dcsa(bomb, now=NOW).issues == [too_deep]
    assert parse_dcsa(b"[" * 200_000, now=NOW).issues == [
        too_deep
    ]  # not even well-formed: still no recursion

    decoded: Any = []
    for _ in range(5_000):
        decoded = [decoded]
    assert parse_dcsa(decoded, now=NOW).issues == [too_deep]


def test_sixty_four_levels_are_fine_sixty_five_are_not() -> None:
    def nested(levels: int) -> str:
        # the event list, an event and then objects down to `levels` levels in all
        inner = "{}"
        for _ in range(levels - 3):
            inner = '{"a": ' + inner + "}"
        return json.dumps([v22_transport()])[:-2] + ', "extra": ' + inner + "}]"

    assert parse_dcsa(nested(64).encode(), now=NOW).issues == []
    assert codes(parse_dcsa(nested(65).encode(), now=NOW).issues) == [("$", "too_deep")]
    assert parse_dcsa(json.loads(nested(64)), now=NOW).issues == []
    assert codes(parse_dcsa(json.loads(nested(65)), now=NOW).issues) == [("$", "too_deep")]


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    event = v22_transport(changeRemark='[[[[{{{{"' * 40)
    message = parse_dcsa(json.dumps([event]).encode(), now=NOW)
    assert message.issues == []
    assert message.events[0].detail["change_remark"] == ('[[[[{{{{"' * 40).strip()


def test_an_empty_array_is_a_valid_document_without_events() -> None:
    assert parse_dcsa(b"[]", now=NOW) == parse_dcsa(b'{"events": []}', now=NOW)
    message = parse_dcsa(b"  [ ]\n", now=NOW)
    assert (message.events, message.issues, message.rejected) == ([], [], False)


def test_a_bad_event_is_skipped_and_the_good_ones_are_kept() -> None:
    events, issues = parse(
        v22_transport(eventID="good-1"), 42, {}, v22_transport(eventID="good-2", eventType=None)
    )
    assert [(event.position, event.source_event_id) for event in events] == [("events[0]", "good-1")]
    assert issues == [
        ParseIssue("events[1]", "not_an_object", "an event must be an object, got number"),
        ParseIssue(
            "events[2]",
            "unknown_shape",
            "neither a 2.2 event (eventType...), a 3.0.0-Beta-1 event (metadata/payload) "
            "nor a 3.0.0 event (eventClassification...)",
        ),
        ParseIssue("events[3].eventType", "missing_field", "eventType is required"),
    ]
    message = parse_dcsa(json.dumps([v22_transport(), 42]).encode(), now=NOW)
    assert message.rejected is False


def test_wrong_types_are_issues_at_their_field() -> None:
    bad_call = {**v22_transport()["transportCall"], "transportCallSequenceNumber": "1", "vessel": "Maersk"}
    events, issues = parse(
        v22_transport(eventID=17, eventDateTime=1611234567),
        v22_transport(transportCall=bad_call),
        v22_transport(documentReferences={"BKG": "BK-1"}),
        v22_transport(references=["BK-1", {"referenceType": "FF"}]),
        v300(transportDetails={"delayReasonCodes": "WEA"}),
        v300(eventClassification=["TRANSPORT"]),
        beta1(transportCall=None, eventClassifierCode=True),
    )
    assert events == []
    assert issues == [
        ParseIssue("events[0].eventID", "wrong_type", "eventID must be a string, got number"),
        ParseIssue("events[0].eventDateTime", "wrong_type", "eventDateTime must be a string, got number"),
        ParseIssue(
            "events[1].transportCall.transportCallSequenceNumber",
            "wrong_type",
            "transportCallSequenceNumber must be an integer, got string",
        ),
        ParseIssue("events[1].transportCall.vessel", "wrong_type", "vessel must be an object, got string"),
        ParseIssue(
            "events[2].documentReferences", "wrong_type", "documentReferences must be an array, got object"
        ),
        ParseIssue("events[3].references[0]", "wrong_type", "references items must be objects, got string"),
        ParseIssue("events[3].references[1].referenceValue", "missing_field", "referenceValue is required"),
        ParseIssue(
            "events[4].transportDetails.delayReasonCodes",
            "wrong_type",
            "delayReasonCodes must be an array, got string",
        ),
        ParseIssue(
            "events[5].eventClassification", "wrong_type", "eventClassification must be an object, got array"
        ),
        ParseIssue(
            "events[6].payload.eventClassifierCode",
            "wrong_type",
            "eventClassifierCode must be a string, got boolean",
        ),
        ParseIssue("events[6].payload.transportCall", "missing_field", "transportCall is required"),
    ]


@pytest.mark.parametrize(
    ("event", "missing"),
    [
        (v22_transport(eventCreatedDateTime=None), ["eventCreatedDateTime"]),
        (v22_transport(transportCall=None), ["transportCall"]),
        (
            v22_transport(transportCall={"UNLocationCode": "NLRTM"}),
            ["transportCall.transportCallID", "transportCall.modeOfTransport"],
        ),
        (
            v22_transport(transportEventTypeCode=None, eventClassifierCode=""),
            ["eventClassifierCode", "transportEventTypeCode"],
        ),
        (v22_shipment(documentID=None, documentTypeCode=None), ["documentTypeCode", "documentID"]),
        (v22_equipment(emptyIndicatorCode=None), ["emptyIndicatorCode"]),
        (v300(eventID=None, eventUpdatedDateTime=None), ["eventID", "eventUpdatedDateTime"]),
        (v300(eventClassification=None, eventDateTime=None), ["eventDateTime", "eventClassification"]),
        (
            v300(eventClassification={"eventClassifierCode": "ACT"}),
            ["eventClassification.eventTypeCode"],
        ),
        (
            {"metadata": {"eventType": "TRANSPORT"}, "payload": {"transportEventTypeCode": "ARRI"}},
            [
                "metadata.eventID",
                "metadata.eventCreatedDateTime",
                "payload.eventClassifierCode",
                "payload.eventDateTime",
                "payload.transportCall",
            ],
        ),
    ],
)
def test_required_fields_per_version(event: dict[str, Any], missing: list[str]) -> None:
    events, issues = parse(event)
    assert events == []
    assert codes(issues) == [(f"events[0].{field}", "missing_field") for field in missing]


# --- mapping tables -------------------------------------------------------------------------------------


def fixture_codes(name: str) -> list[str]:
    with (FIXTURE_CODELISTS / name).open(newline="", encoding="utf-8") as handle:
        return [row[0].strip() for row in list(csv.reader(handle))[1:] if row and row[0].strip()]


@pytest.mark.parametrize(
    ("fixture", "system"),
    [
        ("transporteventtypecodes.csv", "dcsa.transport"),
        ("equipmenteventtypecodes.csv", "dcsa.equipment"),
        ("shipmenteventtypecodes.csv", "dcsa.shipment"),
        ("smdgdelayreasoncodes.csv", "smdg.delay"),
    ],
)
def test_every_code_of_the_dcsa_lists_has_a_mapping_row(fixture: str, system: str) -> None:
    rows = read_mapping_file(MAPPINGS_DIR / f"{system}.csv")  # validates every row
    listed = fixture_codes(fixture)
    assert [code for code in listed if code not in rows] == []
    assert [code for code in listed if code not in read_codelist(CODELISTS_DIR / f"{system}.txt")] == []


@pytest.mark.parametrize("system", DCSA_SYSTEMS)
def test_mapping_rows_and_code_lists_match_and_every_value_is_canonical(system: str) -> None:
    rows = read_mapping_file(MAPPINGS_DIR / f"{system}.csv")
    assert list(rows) == read_codelist(CODELISTS_DIR / f"{system}.txt")
    for code, row in rows.items():
        assert row.milestone is None or row.milestone in set(MilestoneCode), code
        assert row.signal is None or row.signal in set(Signal), code
        assert (row.milestone is not None or row.signal is not None) != row.raw_only, code
    assert unmapped_codes([system]) == {}


def test_key_mappings() -> None:
    def row(system: str, code: str) -> CodeMapping:
        return read_mapping_file(MAPPINGS_DIR / f"{system}.csv")[code]

    assert {
        (system, code): (row(system, code).milestone, row(system, code).signal, row(system, code).raw_only)
        for system, code in [
            ("dcsa.transport", "ARRI"),
            ("dcsa.transport", "DEPA"),
            ("dcsa.equipment", "LOAD"),
            ("dcsa.equipment", "DISC"),
            ("dcsa.equipment", "GTIN"),
            ("dcsa.equipment", "GTOT"),
            ("dcsa.equipment", "PICK"),
            ("dcsa.equipment", "DROP"),
            ("dcsa.equipment", "STUF"),
            ("dcsa.equipment", "CUSI"),
            ("dcsa.equipment", "CUSR"),
            ("dcsa.equipment", "AVPU"),
            ("dcsa.shipment", "CONF"),
            ("dcsa.shipment", "ISSU"),
            ("dcsa.shipment", "PENU"),
            ("dcsa.shipment", "HOLD"),
            ("smdg.delay", "WEA"),
            ("smdg.delay", "CGS"),
            ("smdg.delay", "STR"),
            ("smdg.delay", "LAB"),
            ("smdg.delay", "ENG"),
            ("smdg.delay", "CIN"),
            ("smdg.delay", "DIN"),
            ("smdg.delay", "CRN"),
        ]
    } == {
        ("dcsa.transport", "ARRI"): ("ARRIVED", None, False),
        ("dcsa.transport", "DEPA"): ("DEPARTED", None, False),
        ("dcsa.equipment", "LOAD"): ("LOADED", None, False),
        ("dcsa.equipment", "DISC"): ("DISCHARGED", None, False),
        ("dcsa.equipment", "GTIN"): ("GATE_IN_ORIGIN", None, False),
        ("dcsa.equipment", "GTOT"): ("GATE_OUT_DESTINATION", None, False),
        ("dcsa.equipment", "PICK"): ("PICKED_UP", None, False),
        ("dcsa.equipment", "DROP"): ("DELIVERED", None, False),
        ("dcsa.equipment", "STUF"): (None, None, True),
        ("dcsa.equipment", "CUSI"): (None, "CUSTOMS_HOLD", False),
        ("dcsa.equipment", "CUSR"): ("CUSTOMS_RELEASED", None, False),
        ("dcsa.equipment", "AVPU"): ("AVAILABLE_FOR_PICKUP", None, False),
        ("dcsa.shipment", "CONF"): ("BOOKED", None, False),
        ("dcsa.shipment", "ISSU"): (None, None, True),
        ("dcsa.shipment", "PENU"): (None, "DOCUMENTS_MISSING", False),
        ("dcsa.shipment", "HOLD"): (None, "CUSTOMS_HOLD", False),
        ("smdg.delay", "WEA"): (None, "WEATHER", False),
        ("smdg.delay", "CGS"): (None, "PORT_CONGESTION", False),
        ("smdg.delay", "STR"): (None, "STRIKE", False),
        ("smdg.delay", "LAB"): (None, "STRIKE", False),
        ("smdg.delay", "ENG"): (None, "CARRIER_ISSUE", False),
        ("smdg.delay", "CIN"): (None, "CUSTOMS_HOLD", False),
        ("smdg.delay", "DIN"): (None, "DOCUMENTS_MISSING", False),
        ("smdg.delay", "CRN"): (None, "DELAY", False),
    }


def test_every_smdg_delay_reason_carries_a_signal() -> None:
    rows = read_mapping_file(MAPPINGS_DIR / "smdg.delay.csv")
    assert sorted(code for code, row in rows.items() if row.signal is None or row.milestone is not None) == []


# --- latest versions ------------------------------------------------------------------------------------

T1 = dt.datetime(2026, 1, 1, tzinfo=UTC)
T2 = dt.datetime(2026, 1, 2, tzinfo=UTC)
T3 = dt.datetime(2026, 1, 3, tzinfo=UTC)


def version(
    event_id: str | None,
    updated_at: dt.datetime | None,
    *,
    retracted: bool = False,
    occurred_at: dt.datetime = T1,
    code: str = "ARRI",
    position: str = "events[0]",
) -> CanonicalEvent:
    return CanonicalEvent(
        source="dcsa",
        classifier=Classifier.ESTIMATED,
        code=SourceCode("dcsa.transport", code),
        occurred_at=occurred_at,
        references=(),
        position=position,
        source_event_id=event_id,
        updated_at=updated_at,
        is_retracted=retracted,
    )


def test_a_later_version_overrides_an_earlier_one_in_either_order() -> None:
    old, new = version("a", T1, code="ARRI"), version("a", T2, code="DEPA")
    assert latest_versions([old, new]) == LatestVersions([new], frozenset())
    assert latest_versions([new, old]) == LatestVersions([new], frozenset())


def test_a_retraction_withdraws_the_event() -> None:
    original, retraction = version("a", T1), version("a", T2, retracted=True)
    assert latest_versions([original, retraction]) == LatestVersions([], frozenset({"a"}))
    assert latest_versions([retraction, original]) == LatestVersions([], frozenset({"a"}))


def test_a_retraction_older_than_the_current_version_withdraws_nothing() -> None:
    retraction, newer = version("a", T1, retracted=True), version("a", T2)
    assert latest_versions([newer, retraction]) == LatestVersions([newer], frozenset())


def test_a_version_after_a_retraction_brings_the_event_back() -> None:
    first, retraction, revived = (
        version("a", T1),
        version("a", T2, retracted=True),
        version("a", T3, code="DEPA"),
    )
    assert latest_versions([revived, retraction, first]) == LatestVersions([revived], frozenset())


def test_at_the_same_update_time_the_retraction_wins() -> None:
    same_time = [version("a", T2), version("a", T2, retracted=True)]
    assert (
        latest_versions(same_time) == latest_versions(same_time[::-1]) == LatestVersions([], frozenset({"a"}))
    )


def test_a_retraction_without_update_time_is_final() -> None:
    final, later = version("a", None, retracted=True), version("a", T3)
    assert latest_versions([final, later]) == LatestVersions([], frozenset({"a"}))


def test_a_version_without_update_time_loses_to_any_with_one() -> None:
    undated, dated = version("a", None, code="DEPA"), version("a", T1)
    assert latest_versions([dated, undated]) == LatestVersions([dated], frozenset())
    assert latest_versions([undated]) == LatestVersions([undated], frozenset())


def test_events_without_id_are_kept_and_the_result_is_ordered_by_time() -> None:
    anonymous = version(None, None, occurred_at=T3)
    anonymous_retraction = version(None, T1, retracted=True)
    a, b = version("a", T1, occurred_at=T2), version("b", T1, occurred_at=T1)
    assert latest_versions([anonymous, a, anonymous_retraction, b]) == LatestVersions(
        [b, a, anonymous], frozenset()
    )


def test_the_same_event_twice_is_one_event() -> None:
    event = version("a", T1)
    assert latest_versions([event, event]) == LatestVersions([event], frozenset())
    assert latest_versions([]) == LatestVersions([], frozenset())


def test_ids_of_different_sources_do_not_collide() -> None:
    dcsa = version("a", T1)
    other = CanonicalEvent(
        source="aftership",
        classifier=Classifier.ACTUAL,
        code=SourceCode("aftership.subtag", "Delivered_001"),
        occurred_at=T2,
        references=(),
        position="checkpoints[0]",
        source_event_id="a",
        updated_at=T2,
    )
    assert latest_versions([other, dcsa]) == LatestVersions([dcsa, other], frozenset())


_versions = st.lists(
    st.builds(
        version,
        st.sampled_from(["a", "b", "c", None]),
        st.sampled_from([None, T1, T2, T3]),
        retracted=st.booleans(),
        occurred_at=st.sampled_from([T1, T2]),
        code=st.sampled_from(["ARRI", "DEPA"]),
        position=st.sampled_from(["events[0]", "events[1]"]),
    ),
    max_size=9,
)


@given(_versions.flatmap(lambda events: st.tuples(st.just(events), st.permutations(events))))
def test_any_arrival_order_gives_the_same_result(
    pair: tuple[list[CanonicalEvent], list[CanonicalEvent]],
) -> None:
    events, arrival = pair
    assert latest_versions(arrival) == latest_versions(events)


@given(_versions)
def test_the_result_follows_the_dcsa_rules(events: list[CanonicalEvent]) -> None:
    result = latest_versions(events)
    by_id: dict[str, list[CanonicalEvent]] = defaultdict(list)
    for event in events:
        if event.source_event_id is not None:
            by_id[event.source_event_id].append(event)
    expected_withdrawn = set()
    for event_id, versions in by_id.items():
        returned = [event for event in result.events if event.source_event_id == event_id]
        if any(v.is_retracted and v.updated_at is None for v in versions):
            expected_withdrawn.add(event_id)
            assert returned == []
            continue
        dated = [v for v in versions if v.updated_at is not None]
        newest = max((v.updated_at for v in dated if v.updated_at), default=None)
        candidates = [v for v in versions if v.updated_at == newest]
        if any(v.is_retracted for v in candidates):
            expected_withdrawn.add(event_id)
            assert returned == []
        else:
            assert len(returned) == 1
            assert returned[0] in candidates
    assert result.withdrawn == expected_withdrawn
    anonymous = [event for event in events if event.source_event_id is None and not event.is_retracted]
    assert sorted(map(repr, (e for e in result.events if e.source_event_id is None))) == sorted(
        map(repr, anonymous)
    )
    assert [event.occurred_at for event in result.events] == sorted(
        event.occurred_at for event in result.events
    )
