"""The EPCIS adapter against capture documents written outside this project.

Fixtures: openepcis/openepcis-test-resources @901e5d39 (Apache-2.0), copied unchanged from
shared/fixtures/epcis; see shared/fixtures/SOURCES.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from domain.tracking.canonical import Classifier, ParseIssue, Place, SourceCode
from domain.tracking.formats.epcis import parse_epcis
from domain.tracking.formats.epcis.schema import document_validator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "epcis"
NOW = dt.datetime(2026, 7, 22, 12, 0, tzinfo=dt.UTC)
CORRECTIVE_ID = "urn:uuid:fd338495-0e6d-41dd-afee-a862ecd32518"


def test_the_combination_document_ingests_every_event() -> None:
    message = parse_epcis(
        (FIXTURES / "valid/openepcis_Combination_of_different_event.json").read_bytes(), now=NOW
    )
    assert message.issues == []
    assert message.rejected is False
    events = message.events
    assert len(events) == 6
    assert {event.source for event in events} == {"epcis"}
    assert {event.classifier for event in events} == {Classifier.ACTUAL}
    assert [event.position for event in events] == [f"epcisBody.eventList[{i}]" for i in range(6)]
    assert [event.detail["eventType"] for event in events] == [
        "ObjectEvent",
        "AggregationEvent",
        "TransactionEvent",
        "TransformationEvent",
        "AssociationEvent",
        "AssociationEvent",
    ]
    assert [event.code for event in events] == [
        SourceCode("epcis.bizstep", "sensor_reporting"),  # written as https://ref.gs1.org/cbv/BizStep-...
        SourceCode("epcis.bizstep", "unpacking", "epcis.disposition", "in_progress"),
        SourceCode("epcis.bizstep", "http://example.com/ext1/summarising_discharge"),  # ext1: from @context
        SourceCode("epcis.bizstep", ""),  # a TransformationEvent without bizStep
        SourceCode("epcis.bizstep", "disassembling"),
        SourceCode("epcis.bizstep", "disassembling"),
    ]
    assert [event.occurred_at for event in events] == [
        dt.datetime(2021, 5, 27, 13, 0, tzinfo=dt.UTC),
        dt.datetime(2020, 6, 8, 18, 11, 16, tzinfo=dt.UTC),
        dt.datetime(2019, 10, 4, 13, 12, tzinfo=dt.UTC),
        dt.datetime(2013, 10, 31, 14, 58, 56, 591000, tzinfo=dt.UTC),
        dt.datetime(2019, 11, 4, 13, 0, tzinfo=dt.UTC),
        dt.datetime(2019, 11, 4, 13, 0, tzinfo=dt.UTC),
    ]
    assert [event.utc_offset_minutes for event in events] == [60, 120, 60, 120, 60, 60]
    assert [event.source_event_id for event in events] == [
        "sha256:0606c1b0135d13203f1409fcd982810a9c23ac8e7387e5a99e762232d63b2c3f",
        "sha256:5348e416f54d6157bc415d5235c51f5d41646a12af7ea298816a0c1517313588",
        "sha256:be59c3efc33812d9055aa82930aa2f00572c8dd5900d0423e3c48fd672aa5990",
        "sha256:b2fd8add62128f8d9080459b363aba188d9ba4062ddab59f95cff339e46ecbf4",
        "sha256:40b6195a163836aeaeda917f7a197c84b66d6a9cae95bfd6620846e4644551e5",
        CORRECTIVE_ID,
    ]
    assert [event.place for event in events] == [
        Place(facility_code="4012345000054"),  # Digital Link on a brand domain, AI 414
        Place(facility_code="9529999999993"),  # urn:epc:id:sgln:9529999.99999.0
        Place(facility_code="9524567987655"),
        None,
        Place(facility_code="4012345000023"),
        Place(facility_code="4012345000023"),
    ]
    # GRAI, GIAI, GSRN, SGTIN, an untyped GDTI transaction: none of them names a shipment
    assert [event.references for event in events] == [()] * 6
    assert [event.detail.get("action") for event in events] == [
        "OBSERVE",
        "DELETE",
        "ADD",
        None,
        "DELETE",
        "DELETE",
    ]


def test_the_combination_document_keeps_quantities_and_sensor_data() -> None:
    message = parse_epcis(
        (FIXTURES / "valid/openepcis_Combination_of_different_event.json").read_bytes(), now=NOW
    )
    transformation = message.events[3]
    assert transformation.detail["inputQuantityList"] == [
        {"epcClass": "urn:epc:class:lgtin:4012345.011111.4444", "quantity": 10, "uom": "KGM"},
        {"epcClass": "urn:epc:class:lgtin:0614141.077777.987", "quantity": 30},
        {"epcClass": "urn:epc:idpat:sgtin:4012345.066666.*", "quantity": 220},
    ]
    assert transformation.detail["persistentDisposition"] == {
        "set": ["completeness_verified"],
        "unset": ["completeness_inferred"],
    }
    assert message.events[0].detail["sensor"] == {
        "elements": 1,
        "reports": 2,
        "measurements": [
            {
                "type": "Length",
                "component": "cbv:Comp-northing",
                "uom": "MTR",
                "count": 1,
                "min": -477979.89,
                "max": -477979.89,
            },
            {
                "type": "Length",
                "component": "cbv:Comp-easting",
                "uom": "MTR",
                "count": 1,
                "min": 2477583.57,
                "max": 2477583.57,
            },
        ],
    }


def test_the_combination_document_error_declaration_retracts_and_names_its_correction() -> None:
    message = parse_epcis(
        (FIXTURES / "valid/openepcis_Combination_of_different_event.json").read_bytes(), now=NOW
    )
    declared, corrective = message.events[4], message.events[5]
    assert [event.is_retracted for event in message.events] == [False, False, False, False, True, False]
    assert declared.updated_at == dt.datetime(2019, 11, 7, 14, 0, tzinfo=dt.UTC)
    assert declared.detail["errorDeclaration"] == {
        "declarationTime": "2019-11-07T14:00:00+00:00",
        "reason": "incorrect_data",
        "correctiveEventIDs": [CORRECTIVE_ID],
    }
    assert corrective.detail["correctsEventID"] == declared.source_event_id
    assert corrective.updated_at is None
    # Without eventID the declaration is identified by the content of the event it retracts: the event as
    # written, less errorDeclaration, with eventTime in UTC, as JSON with sorted keys.
    written = json.loads((FIXTURES / "valid/openepcis_Combination_of_different_event.json").read_bytes())
    retracted = {k: v for k, v in written["epcisBody"]["eventList"][4].items() if k != "errorDeclaration"}
    retracted["eventTime"] = "2019-11-04T13:00:00+00:00"
    text = json.dumps(retracted, sort_keys=True, separators=(",", ":"))
    assert declared.source_event_id == "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_a_bad_event_time_is_rejected() -> None:
    message = parse_epcis(
        (FIXTURES / "invalid/openepcis_ObjectEvent_with_invalid_eventTime_format.json").read_bytes(), now=NOW
    )
    assert message.events == []
    assert message.issues == [
        ParseIssue(
            "epcisBody.eventList[0].eventTime",
            "epcis.schema",
            "'22-07-2026' is not a valid date-time (RFC 3339, with an offset)",
        ),
        ParseIssue(
            "epcisBody.eventList",
            "epcis.no_valid_event",
            "none of the 1 events could be read; the document is rejected",
            fatal=True,
        ),
    ]
    assert message.rejected is True


def test_missing_action_and_event_time_are_rejected() -> None:
    message = parse_epcis(
        (FIXTURES / "invalid/openepcis_ObjectEvent_without_action_and_eventTime.json").read_bytes(), now=NOW
    )
    assert message.events == []
    assert message.issues == [
        ParseIssue("epcisBody.eventList[0].action", "epcis.schema", "action is required"),
        ParseIssue("epcisBody.eventList[0].eventTime", "epcis.schema", "eventTime is required"),
        ParseIssue(
            "epcisBody.eventList[0].eventTimeZoneOffset", "epcis.schema", "eventTimeZoneOffset is required"
        ),
        ParseIssue(
            "epcisBody.eventList",
            "epcis.no_valid_event",
            "none of the 1 events could be read; the document is rejected",
            fatal=True,
        ),
    ]
    assert message.rejected is True


def test_a_non_standard_bizstep_is_rejected_by_the_vocabulary_check_alone() -> None:
    message = parse_epcis(
        (FIXTURES / "invalid/openepcis_ObjectEvent_with_non_standard_bizStep.json").read_bytes(), now=NOW
    )
    assert message.events == []
    assert message.issues == [
        ParseIssue(
            "epcisBody.eventList[0].bizStep",
            "epcis.vocabulary",
            "bizStep 'transforming' is not a CBV 2.0 value; a non-standard (extension) value must be a URI",
        ),
        ParseIssue(
            "epcisBody.eventList",
            "epcis.no_valid_event",
            "none of the 1 events could be read; the document is rejected",
            fatal=True,
        ),
    ]
    assert message.rejected is True


def test_the_non_standard_bizstep_document_passes_the_json_schema() -> None:
    document = json.loads(
        (FIXTURES / "invalid/openepcis_ObjectEvent_with_non_standard_bizStep.json").read_bytes()
    )
    assert list(document_validator().iter_errors(document)) == []
