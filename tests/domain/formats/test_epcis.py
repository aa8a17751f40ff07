"""The EPCIS 2.0 adapter on documents written here; the outside fixtures are in tests/contract."""

from __future__ import annotations

import copy
import csv
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from domain.shipments.models import MilestoneCode
from domain.tracking.canonical import Classifier, ParseIssue, Place, Signal, SourceCode
from domain.tracking.formats.epcis import MAX_DEPTH, parse_epcis
from domain.tracking.formats.epcis.decode import text_depth
from domain.tracking.formats.epcis.events import event_hash, sensor_summary
from domain.tracking.formats.epcis.identifiers import GS1Key, check_digit, parse_gs1_key, reference_value
from domain.tracking.formats.epcis.schema import parse_date_time, schema_enum
from domain.tracking.formats.epcis.vocabulary import (
    BIZ_STEP,
    DISPOSITION,
    STANDARD_PREFIXES,
    Term,
    load_codelist,
    read_term,
)

TRACKING = Path(__file__).resolve().parents[3] / "domain" / "tracking"
NOW = dt.datetime(2026, 7, 22, 12, 0, tzinfo=dt.UTC)
UUID = "urn:uuid:6f2a0c8e-2b1d-4c3a-9d5e-000000000001"


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventTime": "2026-07-21T08:30:00+02:00",
        "eventTimeZoneOffset": "+02:00",
        "action": "OBSERVE",
        "epcList": ["urn:epc:id:sscc:0614141.1234567890"],
        "bizStep": "shipping",
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


def document(*events: dict[str, Any], **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@context": [
            "https://ref.gs1.org/standards/epcis/epcis-context.jsonld",
            {"ext": "https://x.example/"},
        ],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-07-21T09:00:00Z",
        "epcisBody": {"eventList": list(events)},
    }
    doc.update(fields)
    return doc


def parse(doc: Any) -> Any:
    return parse_epcis(json.dumps(doc).encode(), now=NOW)


# --- code lists and mapping tables -------------------------------------------------------------------


def mapping_rows(system: str) -> dict[str, dict[str, str]]:
    with (TRACKING / "mappings" / f"{system}.csv").open(newline="", encoding="utf-8") as handle:
        return {row["code"]: row for row in csv.DictReader(handle)}


@pytest.mark.parametrize("system", ["epcis.bizstep", "epcis.disposition"])
def test_every_cbv_code_has_a_mapping_row_with_valid_values(system: str) -> None:
    codes = load_codelist(system)
    rows = mapping_rows(system)
    assert sorted(codes - rows.keys()) == []
    assert sorted(rows.keys() - codes) == []
    milestones, signals = {m.value for m in MilestoneCode}, {s.value for s in Signal}
    for code, row in rows.items():
        assert row["milestone"] in milestones | {""}, code
        assert row["signal"] in signals | {""}, code
        assert row["raw_only"] in ("yes", ""), code
        # exactly one way out: a milestone and/or a signal, or deliberately raw
        assert bool(row["milestone"] or row["signal"]) != (row["raw_only"] == "yes"), code
        assert row["description"], code


def test_codelists_are_the_cbv_lists_of_the_vendored_schema() -> None:
    assert len(load_codelist("epcis.bizstep")) == 41
    assert len(load_codelist("epcis.disposition")) == 33
    assert load_codelist("epcis.bizstep") == schema_enum("bizStep")
    assert load_codelist("epcis.disposition") == schema_enum("disposition")


def test_the_transport_business_steps_map_to_milestones() -> None:
    rows = mapping_rows("epcis.bizstep")
    chosen = {code: (row["milestone"], row["signal"]) for code, row in rows.items() if not row["raw_only"]}
    assert chosen == {
        "accepting": ("DELIVERED", ""),
        "arriving": ("ARRIVED", ""),
        "consigning": ("DEPARTED", ""),
        "departing": ("DEPARTED", ""),
        "loading": ("LOADED", ""),
        "receiving": ("DELIVERED", ""),
        "shipping": ("DEPARTED", ""),
        "unloading": ("DISCHARGED", ""),
        "void_shipping": ("", "DELAY"),
    }
    dispositions = mapping_rows("epcis.disposition")
    signalled = {code: row["signal"] for code, row in dispositions.items() if row["signal"]}
    assert signalled == {
        "damaged": "DAMAGE",
        "destroyed": "LOSS",
        "disposed": "LOSS",
        "mismatch_quantity": "LOSS",
        "returned": "RETURN_TO_SENDER",
        "stolen": "LOSS",
    }
    assert {row["milestone"] for row in dispositions.values()} == {""}


# --- vocabulary -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "shipping",
        "https://ref.gs1.org/cbv/BizStep-shipping",
        "http://ref.gs1.org/cbv/BizStep-shipping",
        "cbv:BizStep-shipping",
        "urn:epcglobal:cbv:bizstep:shipping",
    ],
)
def test_every_spelling_of_a_cbv_business_step_is_the_bare_word(raw: str) -> None:
    assert read_term(raw, BIZ_STEP, STANDARD_PREFIXES) == Term("shipping", standard=True)


def test_every_spelling_of_a_cbv_disposition_is_the_bare_word() -> None:
    for raw in ("in_transit", "https://ref.gs1.org/cbv/Disp-in_transit", "urn:epcglobal:cbv:disp:in_transit"):
        assert read_term(raw, DISPOSITION, STANDARD_PREFIXES) == Term("in_transit", standard=True)


def test_an_extension_value_is_a_uri_expanded_with_the_document_prefixes() -> None:
    prefixes = {**STANDARD_PREFIXES, "ext": "https://x.example/steps/"}
    assert read_term("ext:crossdock", BIZ_STEP, prefixes) == Term("https://x.example/steps/crossdock", False)
    assert read_term("https://x.example/steps/a", BIZ_STEP, prefixes) == Term(
        "https://x.example/steps/a", False
    )
    assert read_term("other:crossdock", BIZ_STEP, prefixes) == Term("other:crossdock", False)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (
            "Shipping",
            "bizStep 'Shipping' is not a CBV 2.0 value; a non-standard (extension) value must be a URI",
        ),
        (
            "ship it",
            "bizStep 'ship it' is not a CBV 2.0 value; a non-standard (extension) value must be a URI",
        ),
        (
            "https://ref.gs1.org/cbv/BizStep-transforming",
            "bizStep 'https://ref.gs1.org/cbv/BizStep-transforming' is in the CBV namespace "
            "but is not a CBV 2.0 bizStep",
        ),
        (
            "urn:epcglobal:cbv:bizstep:transforming",
            "bizStep 'urn:epcglobal:cbv:bizstep:transforming' is in the CBV namespace but is not a CBV 2.0 bizStep",
        ),
        (
            "urn:epcglobal:cbv:disp:damaged",
            "bizStep 'urn:epcglobal:cbv:disp:damaged' is in the CBV namespace but is not a CBV 2.0 bizStep",
        ),
        (
            "cbv:Disp-damaged",
            "bizStep 'cbv:Disp-damaged' is in the CBV namespace but is not a CBV 2.0 bizStep",
        ),
    ],
)
def test_a_value_neither_cbv_nor_an_extension_uri_is_refused(raw: str, error: str) -> None:
    assert read_term(raw, BIZ_STEP, STANDARD_PREFIXES) == Term(raw, standard=False, error=error)


def test_a_cbv_uri_spelling_reaches_the_canonical_code() -> None:
    doc = document(
        event(
            bizStep="urn:epcglobal:cbv:bizstep:receiving", disposition="https://ref.gs1.org/cbv/Disp-damaged"
        )
    )
    message = parse(doc)
    assert message.issues == []
    assert message.events[0].code == SourceCode("epcis.bizstep", "receiving", "epcis.disposition", "damaged")


def test_a_non_cbv_disposition_skips_the_event() -> None:
    message = parse(document(event(disposition="broken"), event(eventID=UUID)))
    assert message.issues == [
        ParseIssue(
            "epcisBody.eventList[0].disposition",
            "epcis.vocabulary",
            "disposition 'broken' is not a CBV 2.0 value; a non-standard (extension) value must be a URI",
        )
    ]
    assert [e.source_event_id for e in message.events] == [UUID]


def test_a_non_cbv_persistent_disposition_is_refused_where_it_stands() -> None:
    message = parse(document(event(persistentDisposition={"set": ["completeness_verified", "half_done"]})))
    assert message.issues[0] == ParseIssue(
        "epcisBody.eventList[0].persistentDisposition.set[1]",
        "epcis.vocabulary",
        "disposition 'half_done' is not a CBV 2.0 value; a non-standard (extension) value must be a URI",
    )


# --- the canonical event ----------------------------------------------------------------------------


def test_a_shipping_event_becomes_a_canonical_actual() -> None:
    doc = document(
        event(
            eventID=UUID,
            disposition="in_transit",
            readPoint={"id": "urn:epc:id:sgln:0614141.12345.400"},
            bizTransactionList=[
                {"type": "po", "bizTransaction": "http://erp.example.com/po/PO-4711"},
                {
                    "type": "urn:epcglobal:cbv:btt:bol",
                    "bizTransaction": "urn:epcglobal:cbv:bt:0614141123452:BL778",
                },
                {"type": "desadv", "bizTransaction": "urn:epcglobal:cbv:bt:0614141123452:ASN-9"},
                {"type": "inv", "bizTransaction": "urn:epcglobal:cbv:bt:0614141123452:INV-1"},
                {"bizTransaction": "urn:epcglobal:cbv:bt:0614141123452:UNTYPED"},
            ],
        )
    )
    message = parse(doc)
    assert message.issues == []
    assert len(message.events) == 1
    result = message.events[0]
    assert result.source == "epcis"
    assert result.classifier is Classifier.ACTUAL
    assert result.code == SourceCode("epcis.bizstep", "shipping", "epcis.disposition", "in_transit")
    assert result.occurred_at == dt.datetime(2026, 7, 21, 6, 30, tzinfo=dt.UTC)
    assert result.utc_offset_minutes == 120
    assert result.source_event_id == UUID
    assert result.position == "epcisBody.eventList[0]"
    assert result.references == (
        ("tracking_number", "106141412345678908"),
        ("customer_reference", "PO-4711"),
        ("house_bl", "BL778"),
        ("customer_reference", "ASN-9"),
    )
    assert result.place == Place(facility_code="0614141123452")
    assert result.is_retracted is False
    assert result.updated_at is None
    assert result.detail == {
        "eventType": "ObjectEvent",
        "action": "OBSERVE",
        "readPoint": "urn:epc:id:sgln:0614141.12345.400",
        "epcList": ["urn:epc:id:sscc:0614141.1234567890"],
        "bizTransactionList": [
            {"type": "po", "bizTransaction": "http://erp.example.com/po/PO-4711"},
            {"type": "bol", "bizTransaction": "urn:epcglobal:cbv:bt:0614141123452:BL778"},
            {"type": "desadv", "bizTransaction": "urn:epcglobal:cbv:bt:0614141123452:ASN-9"},
            {"type": "inv", "bizTransaction": "urn:epcglobal:cbv:bt:0614141123452:INV-1"},
            {"bizTransaction": "urn:epcglobal:cbv:bt:0614141123452:UNTYPED"},
        ],
    }


def test_digital_link_identifiers_give_the_sscc_and_the_gln() -> None:
    doc = document(
        event(
            type="AggregationEvent",
            action="ADD",
            epcList=None,
            parentID="https://id.gs1.org/00/106141412345678908",
            childEPCs=["https://id.gs1.org/01/09521141012345/21/2017"],
            bizStep="packing",
            readPoint={"id": "https://id.gs1.org/414/0614141123452/254/door-2"},
            bizLocation={"id": "https://id.gs1.org/414/4012345000054"},
        )
    )
    result = parse(doc).events[0]
    assert result.references == (("tracking_number", "106141412345678908"),)
    assert result.place == Place(facility_code="4012345000054")  # the business location wins
    assert result.detail["readPoint"] == "https://id.gs1.org/414/0614141123452/254/door-2"
    assert result.detail["bizLocation"] == "https://id.gs1.org/414/4012345000054"


def test_a_location_that_is_no_gs1_key_is_kept_as_written() -> None:
    result = parse(document(event(readPoint={"id": "https://wms.example.com/dock/7"}))).events[0]
    assert result.place == Place(facility_code="https://wms.example.com/dock/7")


def test_a_wrong_check_digit_is_reported_and_the_key_not_used() -> None:
    doc = document(
        event(
            epcList=["https://id.gs1.org/00/106141412345678900"],
            readPoint={"id": "https://id.gs1.org/414/0614141123450"},
        )
    )
    message = parse(doc)
    assert message.issues == [
        ParseIssue(
            "epcisBody.eventList[0].epcList[0]",
            "epcis.identifier",
            "SSCC 106141412345678900 in 'https://id.gs1.org/00/106141412345678900' has a wrong check digit; "
            "not used as a reference",
        ),
        ParseIssue(
            "epcisBody.eventList[0].readPoint.id",
            "epcis.identifier",
            "GLN 0614141123450 in 'https://id.gs1.org/414/0614141123450' has a wrong check digit; kept as written",
        ),
    ]
    result = message.events[0]
    assert result.references == ()
    assert result.place == Place(facility_code="https://id.gs1.org/414/0614141123450")
    assert message.rejected is False


def test_negative_offsets_and_nanoseconds() -> None:
    doc = document(event(eventTime="2026-07-20T23:15:00.123456789-05:30", eventTimeZoneOffset="-05:30"))
    result = parse(doc).events[0]
    assert result.occurred_at == dt.datetime(2026, 7, 21, 4, 45, 0, 123456, tzinfo=dt.UTC)
    assert result.utc_offset_minutes == -330


def test_an_event_without_bizstep_has_the_empty_code() -> None:
    result = parse(document(event(bizStep=None))).events[0]
    assert result.code == SourceCode("epcis.bizstep", "")


def test_an_extension_bizstep_is_the_expanded_uri() -> None:
    result = parse(document(event(bizStep="ext:crossdocking"))).events[0]
    assert result.code == SourceCode("epcis.bizstep", "https://x.example/crossdocking")
    assert result.detail["bizStepExtension"] is True


def test_sensor_data_is_summarised_with_its_alarms() -> None:
    elements = [
        {
            "sensorMetadata": {"time": "2026-07-21T08:00:00+02:00"},
            "sensorReport": [
                {"type": "Temperature", "value": 4.5, "uom": "CEL"},
                {
                    "type": "Temperature",
                    "minValue": 2,
                    "maxValue": 9.5,
                    "uom": "CEL",
                    "exception": "ALARM_CONDITION",
                },
                {"type": "RelativeHumidity", "value": 61, "uom": "P1"},
            ],
        },
        {
            "sensorReport": [
                {"type": "Temperature", "value": 3.0, "uom": "CEL", "time": "2026-07-21T09:00:00Z"}
            ]
        },
    ]
    doc = document(event(bizStep="sensor_reporting", readPoint={"id": "urn:epc:id:sgln:0614141.12345.0"}))
    doc["epcisBody"]["eventList"][0]["sensorElementList"] = elements
    result = parse(doc).events[0]
    assert result.detail["sensor"] == {
        "elements": 2,
        "reports": 4,
        "measurements": [
            {"type": "Temperature", "uom": "CEL", "count": 3, "min": 2.0, "max": 9.5},
            {"type": "RelativeHumidity", "uom": "P1", "count": 1, "min": 61.0, "max": 61.0},
        ],
        "alarms": [
            {"type": "Temperature", "exception": "ALARM_CONDITION", "time": "2026-07-21T08:00:00+02:00"}
        ],
    }
    assert sensor_summary([]) == {"elements": 0, "reports": 0, "measurements": []}


def test_decoded_json_is_accepted_as_well_as_bytes_and_text() -> None:
    doc = document(event(eventID=UUID))
    assert parse_epcis(doc, now=NOW).events == parse(doc).events
    assert parse_epcis(json.dumps(doc), now=NOW).events == parse(doc).events


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        parse_epcis(document(), now=dt.datetime(2026, 7, 22))  # noqa: DTZ001


# --- event ids and error declarations ---------------------------------------------------------------


def test_the_hash_id_is_sha256_of_the_sorted_json_without_identity_fields() -> None:
    raw = {
        "type": "ObjectEvent",
        "eventTime": "2026-07-21T08:30:00+02:00",
        "action": "OBSERVE",
        "eventID": "x",
    }
    occurred = dt.datetime(2026, 7, 21, 6, 30, tzinfo=dt.UTC)
    expected_text = '{"action":"OBSERVE","eventTime":"2026-07-21T06:30:00+00:00","type":"ObjectEvent"}'
    assert event_hash(raw, occurred) == "sha256:" + hashlib.sha256(expected_text.encode()).hexdigest()
    reordered = dict(reversed(list(raw.items())))
    declared = {**raw, "recordTime": "2026-07-22T00:00:00Z", "errorDeclaration": {"declarationTime": "x"}}
    assert event_hash(reordered, occurred) == event_hash(raw, occurred) == event_hash(declared, occurred)


def test_the_same_event_spelled_differently_gets_the_same_hash_id() -> None:
    first = parse(document(event(bizStep="shipping"))).events[0]
    second = parse(
        document(
            event(
                bizStep="urn:epcglobal:cbv:bizstep:shipping",
                eventTime="2026-07-21T06:30:00Z",
                recordTime="2026-07-21T06:31:00Z",
            )
        )
    ).events[0]
    expected = '{"action":"OBSERVE","bizStep":"shipping","epcList":["urn:epc:id:sscc:0614141.1234567890"],'
    expected += '"eventTime":"2026-07-21T06:30:00+00:00","eventTimeZoneOffset":"+02:00","type":"ObjectEvent"}'
    assert first.source_event_id == "sha256:" + hashlib.sha256(expected.encode()).hexdigest()
    assert second.source_event_id == first.source_event_id


def declaration(**fields: Any) -> dict[str, Any]:
    return {"declarationTime": "2026-07-21T12:00:00Z", "reason": "did_not_occur", **fields}


def test_an_error_declaration_retracts_the_event_with_the_same_id() -> None:
    original = event(eventID=UUID)
    retraction = event(
        eventID=UUID,
        errorDeclaration=declaration(correctiveEventIDs=["urn:uuid:6f2a0c8e-2b1d-4c3a-9d5e-000000000002"]),
    )
    corrective = event(eventID="urn:uuid:6f2a0c8e-2b1d-4c3a-9d5e-000000000002", bizStep="departing")
    message = parse(document(original, retraction, corrective))
    assert message.issues == []
    assert [(e.position, e.source_event_id, e.is_retracted) for e in message.events] == [
        ("epcisBody.eventList[1]", UUID, True),
        ("epcisBody.eventList[2]", "urn:uuid:6f2a0c8e-2b1d-4c3a-9d5e-000000000002", False),
    ]
    retracted = message.events[0]
    assert retracted.updated_at == dt.datetime(2026, 7, 21, 12, 0, tzinfo=dt.UTC)
    assert retracted.detail["errorDeclaration"] == {
        "declarationTime": "2026-07-21T12:00:00+00:00",
        "reason": "did_not_occur",
        "correctiveEventIDs": ["urn:uuid:6f2a0c8e-2b1d-4c3a-9d5e-000000000002"],
    }
    assert retracted.detail["retractsPosition"] == "epcisBody.eventList[0]"
    assert message.events[1].detail["correctsEventID"] == UUID


def test_a_declaration_without_event_id_retracts_the_event_with_the_same_content() -> None:
    original = event()
    retraction = event(errorDeclaration=declaration(reason="urn:epcglobal:cbv:er:incorrect_data"))
    alone = parse(document(original)).events[0]
    message = parse(document(retraction, original))
    assert message.issues == []
    assert len(message.events) == 1
    result = message.events[0]
    assert result.source_event_id == alone.source_event_id
    assert result.is_retracted is True
    assert result.position == "epcisBody.eventList[0]"
    assert result.detail["retractsPosition"] == "epcisBody.eventList[1]"
    assert result.detail["errorDeclaration"]["reason"] == "incorrect_data"


def test_a_declaration_alone_is_a_retraction_for_an_earlier_message() -> None:
    message = parse(document(event(eventID=UUID, errorDeclaration=declaration())))
    assert [(e.source_event_id, e.is_retracted) for e in message.events] == [(UUID, True)]
    assert "retractsPosition" not in message.events[0].detail


def test_a_second_event_with_the_same_id_is_skipped() -> None:
    message = parse(document(event(eventID=UUID), event(eventID=UUID, bizStep="arriving")))
    assert [e.code.code for e in message.events] == ["shipping"]
    assert message.issues == [
        ParseIssue(
            "epcisBody.eventList[1]",
            "epcis.duplicate_event",
            f"event {UUID} already appears at epcisBody.eventList[0]; this one is skipped",
        )
    ]
    assert message.rejected is False


# --- per-event issues -------------------------------------------------------------------------------


def test_a_bad_event_is_skipped_and_the_good_ones_are_kept() -> None:
    good_1 = event(eventID="urn:uuid:00000000-0000-4000-8000-000000000001")
    bad = event(eventTime="2026-07-21 08:30")
    good_2 = event(eventID="urn:uuid:00000000-0000-4000-8000-000000000002", bizStep="arriving")
    message = parse(document(good_1, bad, good_2))
    assert [e.position for e in message.events] == ["epcisBody.eventList[0]", "epcisBody.eventList[2]"]
    assert message.issues == [
        ParseIssue(
            "epcisBody.eventList[1].eventTime",
            "epcis.schema",
            "'2026-07-21 08:30' is not a valid date-time (RFC 3339, with an offset)",
        )
    ]
    assert message.rejected is False


@pytest.mark.parametrize(
    ("fields", "issue"),
    [
        (
            {"action": "MOVE"},
            ParseIssue(
                "epcisBody.eventList[0].action",
                "epcis.schema",
                "'MOVE' is not one of ['OBSERVE', 'ADD', 'DELETE']",
            ),
        ),
        (
            {"eventTimeZoneOffset": "+2"},
            ParseIssue(
                "epcisBody.eventList[0].eventTimeZoneOffset",
                "epcis.schema",
                "'+2' does not match '^([+]|[-])((0[0-9]|1[0-3]):([0-5][0-9])|14:00)$'",
            ),
        ),
        (
            {"eventTime": "2026-07-21T08:30:00"},
            ParseIssue(
                "epcisBody.eventList[0].eventTime",
                "epcis.schema",
                "'2026-07-21T08:30:00' is not a valid date-time (RFC 3339, with an offset)",
            ),
        ),
        (
            {"eventTime": "2026-02-30T08:30:00Z"},
            ParseIssue(
                "epcisBody.eventList[0].eventTime",
                "epcis.schema",
                "'2026-02-30T08:30:00Z' is not a valid date-time (RFC 3339, with an offset)",
            ),
        ),
        (
            {"epcList": None},
            ParseIssue(
                "epcisBody.eventList[0]",
                "epcis.schema",
                "matches none of the allowed forms: 'epcList' is a required property | "
                "'quantityList' is a required property | 'sensorElementList' is a required property",
            ),
        ),
        (
            {"bizStep": 5},
            ParseIssue(
                "epcisBody.eventList[0].bizStep",
                "epcis.schema",
                "matches none of the allowed forms: 5 is not of type 'string'",
            ),
        ),
        (
            {"readPoint": {"name": "dock 4"}},
            ParseIssue("epcisBody.eventList[0].readPoint.id", "epcis.schema", "id is required"),
        ),
        (
            {"type": "ShipmentEvent"},
            ParseIssue(
                "epcisBody.eventList[0].type",
                "epcis.unsupported_event_type",
                "event type 'ShipmentEvent' is not one of the EPCIS 2.0 event types; extension events are not read",
            ),
        ),
    ],
)
def test_schema_problems_are_reported_at_their_position(fields: dict[str, Any], issue: ParseIssue) -> None:
    message = parse(document(event(**fields), event(eventID=UUID)))
    assert message.issues == [issue]
    assert [e.source_event_id for e in message.events] == [UUID]


def test_an_event_that_is_not_an_object_is_skipped() -> None:
    message = parse(document("shipping", event(eventID=UUID)))  # type: ignore[arg-type]
    assert message.issues == [
        ParseIssue("epcisBody.eventList[0]", "epcis.schema", "an event must be a JSON object")
    ]


def test_an_event_more_than_a_day_ahead_is_refused() -> None:
    limit = event(
        eventTime="2026-07-23T14:00:00+02:00", eventID="urn:uuid:00000000-0000-4000-8000-00000000000a"
    )
    beyond = event(eventTime="2026-07-23T14:00:01+02:00")
    message = parse(document(limit, beyond))
    assert [e.source_event_id for e in message.events] == ["urn:uuid:00000000-0000-4000-8000-00000000000a"]
    assert message.issues == [
        ParseIssue(
            "epcisBody.eventList[1].eventTime",
            "epcis.event_in_future",
            "eventTime 2026-07-23T14:00:01+02:00 is more than 1 day after now (2026-07-22T12:00:00+00:00)",
        )
    ]


def test_a_declaration_time_more_than_a_day_ahead_is_refused() -> None:
    message = parse(document(event(errorDeclaration=declaration(declarationTime="2027-01-01T00:00:00Z"))))
    assert message.issues[0] == ParseIssue(
        "epcisBody.eventList[0].errorDeclaration.declarationTime",
        "epcis.event_in_future",
        "declarationTime 2027-01-01T00:00:00+00:00 is more than 1 day after now (2026-07-22T12:00:00+00:00)",
    )


def test_a_document_without_readable_events_is_rejected() -> None:
    message = parse(document(event(bizStep="transforming"), event(action=None)))
    assert message.events == []
    assert [(i.position, i.code, i.fatal) for i in message.issues] == [
        ("epcisBody.eventList[0].bizStep", "epcis.vocabulary", False),
        ("epcisBody.eventList[1].action", "epcis.schema", False),
        ("epcisBody.eventList", "epcis.no_valid_event", True),
    ]
    assert message.issues[-1].reason == "none of the 2 events could be read; the document is rejected"
    assert message.rejected is True


def test_an_empty_event_list_is_an_empty_message() -> None:
    message = parse(document())
    assert message.events == []
    assert message.issues == []


def test_a_missing_standard_context_is_noted_but_events_are_read() -> None:
    message = parse(document(event(), **{"@context": "https://example.com/my-context.jsonld"}))
    assert message.issues == [
        ParseIssue(
            "@context",
            "epcis.context",
            "@context does not name the EPCIS 2.0 context "
            "(https://ref.gs1.org/standards/epcis/epcis-context.jsonld); standard meanings are assumed",
        )
    ]
    assert len(message.events) == 1


def test_the_versioned_context_address_is_the_standard_one() -> None:
    message = parse(
        document(event(), **{"@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"]})
    )
    assert message.issues == []


# --- whole-message rejection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "issue"),
    [
        (
            b"<EPCISDocument/>",
            ParseIssue("$", "epcis.json", "not JSON: Expecting value at line 1 column 1", True),
        ),
        (b"", ParseIssue("$", "epcis.json", "not JSON: Expecting value at line 1 column 1", True)),
        (b'{"a": NaN}', ParseIssue("$", "epcis.json", "NaN is not a JSON value", True)),
        (
            b'{"a": "\xff"}',
            ParseIssue("$", "epcis.json", "not UTF-8 text: invalid start byte at byte 7", True),
        ),
        (
            b"[]",
            ParseIssue("$", "epcis.not_document", "expected a JSON object of type 'EPCISDocument'", True),
        ),
        (
            b'{"type": "EPCISQueryDocument"}',
            ParseIssue(
                "type",
                "epcis.not_document",
                "type is 'EPCISQueryDocument'; only an EPCISDocument (capture) is accepted",
                True,
            ),
        ),
        (
            b'{"events": []}',
            ParseIssue(
                "$", "epcis.not_document", "type is None; only an EPCISDocument (capture) is accepted", True
            ),
        ),
    ],
)
def test_a_message_that_is_no_epcis_document_is_rejected(body: bytes, issue: ParseIssue) -> None:
    message = parse_epcis(body, now=NOW)
    assert message.issues == [issue]
    assert message.events == []
    assert message.rejected is True


def test_a_utf8_bom_is_tolerated() -> None:
    body = b"\xef\xbb\xbf" + json.dumps(document(event())).encode()
    assert len(parse_epcis(body, now=NOW).events) == 1


def test_envelope_schema_problems_reject_the_message() -> None:
    doc = document(event())
    del doc["creationDate"]
    doc["epcisBody"] = {"events": []}
    message = parse(doc)
    assert message.issues == [
        ParseIssue("creationDate", "epcis.schema", "creationDate is required", True),
        ParseIssue("epcisBody.eventList", "epcis.schema", "eventList is required", True),
    ]
    assert message.events == []


def test_an_event_list_that_is_no_list_rejects_the_message() -> None:
    doc = document()
    doc["epcisBody"]["eventList"] = {"type": "ObjectEvent"}
    assert parse(doc).issues == [
        ParseIssue(
            "epcisBody.eventList", "epcis.schema", "{'type': 'ObjectEvent'} is not of type 'array'", True
        )
    ]


def test_a_schema_version_other_than_2_rejects_the_message() -> None:
    message = parse(document(event(), schemaVersion="1.2"))
    assert message.issues == [
        ParseIssue("schemaVersion", "epcis.version", "schemaVersion '1.2' is not EPCIS 2.x", True)
    ]


def nested(depth: int) -> str:
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


def test_nesting_deeper_than_64_is_rejected_without_recursion_error() -> None:
    assert MAX_DEPTH == 64
    assert text_depth(nested(64)) == 64
    assert text_depth('{"a": "[[[[{{{{"}') == 1
    for depth in (65, 100_000):
        message = parse_epcis(nested(depth).encode(), now=NOW)
        assert message.issues == [
            ParseIssue(
                "$", "epcis.too_deep", f"JSON nests {depth} levels deep; at most 64 are accepted", True
            )
        ]
    assert parse_epcis(b"[" * 1_000_000, now=NOW).issues[0].code == "epcis.too_deep"


def test_a_deep_event_inside_a_document_is_rejected_at_64() -> None:
    doc = document(event())
    leaf: dict[str, Any] = doc["epcisBody"]["eventList"][0]
    for _ in range(61):
        leaf["ext:x"] = {}
        leaf = leaf["ext:x"]
    message = parse(doc)
    assert [(i.code, i.reason) for i in message.issues] == [
        ("epcis.too_deep", "JSON nests 65 levels deep; at most 64 are accepted")
    ]


def test_deep_decoded_json_is_rejected_without_recursion_error() -> None:
    deep: dict[str, Any] = {}
    leaf = deep
    for _ in range(10_000):
        leaf["a"] = {}
        leaf = leaf["a"]
    message = parse_epcis(deep, now=NOW)
    assert message.issues == [ParseIssue("$", "epcis.too_deep", "JSON nests more than 64 levels deep", True)]


def test_a_document_at_the_depth_limit_is_read() -> None:
    doc = document(event())
    leaf: dict[str, Any] = doc["epcisBody"]["eventList"][0]
    for _ in range(60):
        leaf["ext:x"] = {}
        leaf = leaf["ext:x"]
    assert text_depth(json.dumps(doc)) == 64
    message = parse(doc)
    assert message.issues == []
    assert len(message.events) == 1
    assert parse_epcis(copy.deepcopy(doc), now=NOW).issues == []


# --- identifiers and times --------------------------------------------------------------------------


def test_gs1_keys_from_epc_urns_and_digital_links() -> None:
    assert check_digit("10614141234567890") == "8"
    assert check_digit("061414112345") == "2"
    assert parse_gs1_key("urn:epc:id:sscc:0614141.1234567890") == GS1Key("00", "106141412345678908")
    assert parse_gs1_key("urn:epc:id:sgln:0614141.12345.400") == GS1Key("414", "0614141123452", "400")
    assert parse_gs1_key("urn:epc:id:sgln:0614141.12345.0") == GS1Key("414", "0614141123452")
    assert parse_gs1_key("urn:epc:id:gsin:0614141.123456789") == GS1Key("402", "06141411234567890")
    assert parse_gs1_key("https://id.gs1.org/00/106141412345678908") == GS1Key("00", "106141412345678908")
    assert parse_gs1_key("https://brand.example/dl/414/0614141123452/254/A%201") == GS1Key(
        "414", "0614141123452", "A 1"
    )
    assert parse_gs1_key("https://id.gs1.org/00/106141412345678900") == GS1Key(
        "00", "106141412345678900", check_digit_ok=False
    )
    assert parse_gs1_key("urn:epc:id:sgtin:0614141.112345.400") is None
    assert parse_gs1_key("urn:epc:id:sscc:0614141.123") is None
    assert parse_gs1_key("https://example.com/00/123") is None
    assert parse_gs1_key("shipping") is None


def test_reference_values_are_what_a_person_keys_in() -> None:
    assert reference_value("urn:epcglobal:cbv:bt:0614141123452:PO-1") == "PO-1"
    assert reference_value("http://erp.example.com/po/PO%2F7") == "PO/7"
    assert reference_value("https://id.gs1.org/402/06141411234567890") == "06141411234567890"
    assert reference_value("urn:epc:id:gsin:0614141.123456789") == "06141411234567890"
    assert reference_value("urn:example:po:77") == "urn:example:po:77"


def test_date_times_follow_rfc_3339() -> None:
    assert parse_date_time("2026-07-21T08:30:00Z") == dt.datetime(2026, 7, 21, 8, 30, tzinfo=dt.UTC)
    assert parse_date_time("2026-07-21t08:30:00.5+14:00") == dt.datetime(
        2026, 7, 21, 8, 30, 0, 500000, tzinfo=dt.timezone(dt.timedelta(hours=14))
    )
    for bad in (
        "2026-07-21",
        "22-07-2026",
        "2026-07-21T08:30:00",
        "2026-07-21T25:00:00Z",
        "2026-07-21T08:30Z",
    ):
        assert parse_date_time(bad) is None, bad
