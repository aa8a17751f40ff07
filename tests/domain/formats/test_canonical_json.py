from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest

from domain.shipments.models import MilestoneCode, ReferenceKind
from domain.tracking.canonical import CanonicalEvent, Classifier, ParsedMessage, ParseIssue, Place, SourceCode
from domain.tracking.formats import canonical_json
from domain.tracking.formats.canonical_json import (
    Timestamp,
    TimestampError,
    check_event_time,
    decode_json,
    parse_events,
    parse_timestamp,
)

NOW = dt.datetime(2026, 3, 3, 12, 0, tzinfo=dt.UTC)
SCHEMA_PATH = Path(canonical_json.__file__).parent / "schemas" / "events.schema.json"


def event(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "references": [{"kind": "container", "value": "MSCU1234567"}],
        "code": "DEPARTED",
        "classifier": "ACT",
        "occurredAt": "2026-03-02T14:05:00+01:00",
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not ...}


def parse(*events: dict[str, Any]) -> ParsedMessage:
    return parse_events(json.dumps({"events": list(events)}).encode(), now=NOW)


def only_issue(result: ParsedMessage) -> ParseIssue:
    assert result.events == []
    [issue] = result.issues
    return issue


# --- valid messages ----------------------------------------------------------------------------------------


def test_a_full_event_becomes_a_canonical_event() -> None:
    result = parse(
        event(
            eventId="evt-0001",
            references=[
                {"kind": "container", "value": " MSCU1234567 "},
                {"kind": "booking", "value": "BK778812"},
                {"kind": "container", "value": "MSCU1234567"},
            ],
            location={
                "locode": "NLRTM",
                "name": "Rotterdam Maasvlakte II",
                "country": "NL",
                "postalCode": "3199",
            },
            carrierCode="MAEU",
            detail={"vessel": "MAERSK EMDEN", "voyage": "412W", "teu": 2},
        )
    )
    assert result.issues == []
    assert result.events == [
        CanonicalEvent(
            source="events",
            classifier=Classifier.ACTUAL,
            code=SourceCode("canonical", "DEPARTED"),
            occurred_at=dt.datetime(2026, 3, 2, 13, 5, tzinfo=dt.UTC),
            references=(("container", "MSCU1234567"), ("booking", "BK778812")),
            position="events[0]",
            source_event_id="evt-0001",
            utc_offset_minutes=60,
            place=Place(locode="NLRTM", name="Rotterdam Maasvlakte II", country="NL", postal_code="3199"),
            carrier_code="MAEU",
            detail={"vessel": "MAERSK EMDEN", "voyage": "412W", "teu": 2},
        )
    ]


def test_a_minimal_event_and_a_mapping_code() -> None:
    result = parse(event(code="x12.status:AF", classifier="EST", occurredAt="2026-03-20T06:00:00-04:00"))
    assert result.issues == []
    assert result.events == [
        CanonicalEvent(
            source="events",
            classifier=Classifier.ESTIMATED,
            code=SourceCode("x12.status", "AF"),
            occurred_at=dt.datetime(2026, 3, 20, 10, 0, tzinfo=dt.UTC),
            references=(("container", "MSCU1234567"),),
            position="events[0]",
            utc_offset_minutes=-240,
        )
    ]


def test_an_empty_batch_is_accepted() -> None:
    assert parse_events(b'{"events": []}', now=NOW) == ParsedMessage()


def test_text_and_decoded_documents_are_accepted_too() -> None:
    document = {"events": [event()]}
    assert parse_events(document, now=NOW) == parse_events(json.dumps(document), now=NOW)
    assert len(parse_events(document, now=NOW).events) == 1


def test_a_bad_event_is_skipped_and_the_good_ones_are_kept() -> None:
    result = parse(
        event(eventId="a"), event(eventId="b", occurredAt="2026-02-30T10:00:00Z"), event(eventId="c")
    )
    assert [e.source_event_id for e in result.events] == ["a", "c"]
    assert [e.position for e in result.events] == ["events[0]", "events[2]"]
    assert result.issues == [
        ParseIssue("events[1].occurredAt", "invalid_time", "'2026-02-30' is not a date"),
    ]
    assert not result.rejected


# --- one bad event: precise issues ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "issues"),
    [
        (
            {"occurredAt": "2026-03-02T14:05:00"},
            [
                (
                    "events[0].occurredAt",
                    "invalid_time",
                    "'2026-03-02T14:05:00' has no UTC offset (add Z or +01:00, for example)",
                )
            ],
        ),
        (
            {"occurredAt": "2026-03-02"},
            [
                (
                    "events[0].occurredAt",
                    "invalid_time",
                    "'2026-03-02' has no time and UTC offset (e.g. 2026-03-02T17:00:00+01:00)",
                )
            ],
        ),
        (
            {"occurredAt": "yesterday"},
            [
                (
                    "events[0].occurredAt",
                    "invalid_time",
                    "'yesterday' is not an ISO 8601 date-time (e.g. 2026-03-01T14:30:00+01:00)",
                )
            ],
        ),
        (
            {"occurredAt": "2026-03-04T12:00:01Z"},
            [
                (
                    "events[0].occurredAt",
                    "future_event",
                    "an actual event at 2026-03-04T12:00:01+00:00 is more than 1 day after now "
                    "(2026-03-03T12:00:00+00:00)",
                )
            ],
        ),
        (
            {"occurredAt": "1999-12-31T23:59:59Z"},
            [("events[0].occurredAt", "implausible_time", "1999-12-31T23:59:59+00:00 is before 2000-01-01")],
        ),
        (
            {"classifier": "EST", "occurredAt": "2028-03-03T12:00:01Z"},
            [
                (
                    "events[0].occurredAt",
                    "implausible_time",
                    "2028-03-03T12:00:01+00:00 is more than 2 years after now (2026-03-03T12:00:00+00:00)",
                )
            ],
        ),
        (
            {"vessel": "EMDEN"},
            [
                (
                    "events[0].vessel",
                    "unknown_field",
                    "unknown field; an event has carrierCode, classifier, code, detail, eventId, location, "
                    "occurredAt, references",
                )
            ],
        ),
        ({"code": ...}, [("events[0].code", "missing", "is required")]),
        (
            {"code": None, "classifier": ...},
            [
                ("events[0].code", "missing", "is required"),
                ("events[0].classifier", "missing", "is required"),
            ],
        ),
        ({"code": 7}, [("events[0].code", "wrong_type", "must be a string, got number")]),
        (
            {"code": "Departed"},
            [
                (
                    "events[0].code",
                    "unknown_code",
                    "'Departed' is neither a canonical milestone nor a 'system:code' mapping code",
                )
            ],
        ),
        (
            {"code": "X12.Status:AF"},
            [
                (
                    "events[0].code",
                    "unknown_code",
                    "'X12.Status' is not a code system name (lower case, dotted, at most 32 characters)",
                )
            ],
        ),
        (
            {"code": "x12.status: "},
            [
                (
                    "events[0].code",
                    "unknown_code",
                    "'x12.status:' has an empty code or one with surrounding spaces or control characters",
                )
            ],
        ),
        (
            {"code": "canonical:TELEPORTED"},
            [("events[0].code", "unknown_code", "'TELEPORTED' is not a canonical milestone")],
        ),
        (
            {"classifier": "ACTUAL"},
            [("events[0].classifier", "unknown_classifier", "'ACTUAL' is not one of PLN, EST, ACT")],
        ),
        (
            {"classifier": ["ACT"]},
            [("events[0].classifier", "unknown_classifier", "a JSON array is not one of PLN, EST, ACT")],
        ),
        ({"references": []}, [("events[0].references", "empty", "needs at least one reference")]),
        (
            {"references": {"kind": "booking"}},
            [("events[0].references", "wrong_type", "must be an array, got object")],
        ),
        (
            {"references": [{"kind": "vin", "value": "X"}]},
            [
                (
                    "events[0].references[0].kind",
                    "unknown_kind",
                    "'vin' is not one of booking, house_bl, master_bl, container, tracking_number, pro, "
                    "air_waybill, customer_reference",
                )
            ],
        ),
        (
            {"references": [{"kind": "booking", "value": "  "}]},
            [("events[0].references[0].value", "empty", "must not be empty")],
        ),
        (
            {"references": [{"kind": "booking", "value": "B" * 129}]},
            [("events[0].references[0].value", "too_long", "129 characters, more than 128")],
        ),
        (
            {"references": [{"kind": "booking", "value": "BK1", "note": "x"}]},
            [
                (
                    "events[0].references[0].note",
                    "unknown_field",
                    "unknown field; a reference has kind and value",
                )
            ],
        ),
        (
            {"references": [{"kind": "booking"}]},
            [("events[0].references[0].value", "missing", "is required")],
        ),
        (
            {"references": ["BK1"]},
            [("events[0].references[0]", "wrong_type", "must be an object, got string")],
        ),
        (
            {"references": [{"kind": "booking", "value": f"B{i}"} for i in range(21)]},
            [("events[0].references", "too_many", "21 references, more than 20")],
        ),
        (
            {"references": [{"kind": "booking", "value": "BK\x001"}]},
            [("events[0].references[0].value", "control_character", "contains a control character")],
        ),
        (
            {"location": {"locode": "NL RTM"}},
            [("events[0].location.locode", "invalid_locode", "'NL RTM' is not a UN/LOCODE (e.g. NLRTM)")],
        ),
        (
            {"location": {"locode": "nlrtm1"}},
            [("events[0].location.locode", "invalid_locode", "'nlrtm1' is not a UN/LOCODE (e.g. NLRTM)")],
        ),
        (
            {"location": {"country": "NLD"}},
            [("events[0].location.country", "invalid_country", "'NLD' is not an ISO 3166-1 alpha-2 code")],
        ),
        (
            {"location": {"country": "nl"}},
            [("events[0].location.country", "invalid_country", "'nl' is not an ISO 3166-1 alpha-2 code")],
        ),
        (
            {"location": {"unlocode": "NLRTM"}},
            [
                (
                    "events[0].location.unlocode",
                    "unknown_field",
                    "unknown field; a location has locode, name, city, state, country, postalCode, facilityCode",
                )
            ],
        ),
        ({"location": "NLRTM"}, [("events[0].location", "wrong_type", "must be an object, got string")]),
        (
            {"location": {"name": "N" * 257}},
            [("events[0].location.name", "too_long", "257 characters, more than 256")],
        ),
        ({"eventId": "E" * 129}, [("events[0].eventId", "too_long", "129 characters, more than 128")]),
        ({"eventId": 12}, [("events[0].eventId", "wrong_type", "must be a string, got number")]),
        ({"carrierCode": "C" * 17}, [("events[0].carrierCode", "too_long", "17 characters, more than 16")]),
        ({"detail": ["x"]}, [("events[0].detail", "wrong_type", "must be an object, got array")]),
        (
            {"detail": {"remark": "r" * 4090}},
            [("events[0].detail", "too_long", "4104 characters as JSON, more than 4096")],
        ),
        (
            {"detail": {"remark": ["a\x00"]}},
            [("events[0].detail", "control_character", "contains a NUL character")],
        ),
        ({"occurredAt": True}, [("events[0].occurredAt", "wrong_type", "must be a string, got boolean")]),
    ],
)
def test_a_bad_event_is_reported_field_by_field(
    overrides: dict[str, Any], issues: list[tuple[str, str, str]]
) -> None:
    result = parse(event(**overrides))
    assert result.events == []
    assert result.issues == [ParseIssue(*issue) for issue in issues]
    assert not result.rejected


def test_every_problem_of_one_event_is_reported() -> None:
    result = parse(
        {"references": [], "code": "FOO", "classifier": "NOW", "occurredAt": "2026-13-01T00:00:00Z"}
    )
    assert [(issue.position, issue.code) for issue in result.issues] == [
        ("events[0].references", "empty"),
        ("events[0].code", "unknown_code"),
        ("events[0].classifier", "unknown_classifier"),
        ("events[0].occurredAt", "invalid_time"),
    ]


def test_an_event_that_is_not_an_object() -> None:
    result = parse_events(b'{"events": [["DEPARTED"]]}', now=NOW)
    assert only_issue(result) == ParseIssue(
        "events[0]", "wrong_type", "an event must be an object, got array"
    )


def test_future_estimates_and_plans_are_normal() -> None:
    result = parse(
        event(classifier="EST", occurredAt="2026-06-01T00:00:00Z"),
        event(classifier="PLN", occurredAt="2027-01-01T00:00:00Z"),
    )
    assert result.issues == []
    assert len(result.events) == 2


def test_an_actual_event_just_inside_the_tolerance_is_kept() -> None:
    result = parse(event(occurredAt="2026-03-04T12:00:00Z"))
    assert result.issues == []
    assert result.events[0].occurred_at == NOW + dt.timedelta(days=1)


# --- rejected messages ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "issue"),
    [
        (b'{"events": [', ParseIssue("line 1 column 13", "malformed_json", "Expecting value", fatal=True)),
        (b"", ParseIssue("line 1 column 1", "malformed_json", "Expecting value", fatal=True)),
        (
            b'{"events": [], "events": []}',
            ParseIssue("$", "duplicate_key", "key 'events' appears twice", fatal=True),
        ),
        (
            b'{"events": [{"x": NaN}]}',
            ParseIssue("$", "malformed_json", "NaN is not a JSON number", fatal=True),
        ),
        (b"\xff\xfe{}", ParseIssue("byte 0", "not_utf8", "the document is not valid UTF-8", fatal=True)),
        (
            b"[]",
            ParseIssue("$", "wrong_type", 'a message is an object {"events": [...]}, got array', fatal=True),
        ),
        (b"{}", ParseIssue("events", "missing", "is required", fatal=True)),
        (b'{"events": {}}', ParseIssue("events", "wrong_type", "must be an array, got object", fatal=True)),
        (
            b'{"events": [], "shipments": []}',
            ParseIssue(
                "shipments", "unknown_field", 'unknown field; a message has only "events"', fatal=True
            ),
        ),
        (
            b"[" * 100_000 + b"]" * 100_000,
            ParseIssue("$", "too_deep", "nested more than 64 levels deep", fatal=True),
        ),
        (
            b'{"events": [{"detail": ' + b'{"a": ' * 63 + b"1" + b"}" * 63 + b"}]}",
            ParseIssue("$", "too_deep", "nested more than 64 levels deep", fatal=True),
        ),
        (
            b'{"events": [{"eventId": ' + b"1" * 5000 + b"}]}",
            ParseIssue(
                "$",
                "malformed_json",
                "Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits; "
                "use sys.set_int_max_str_digits() to increase the limit",
                fatal=True,
            ),
        ),
    ],
)
def test_a_message_that_cannot_be_read_is_rejected(document: bytes, issue: ParseIssue) -> None:
    result = parse_events(document, now=NOW)
    assert result == ParsedMessage(issues=[issue])
    assert result.rejected


def test_more_than_ten_thousand_events_is_rejected() -> None:
    document = {"events": [event()] * 10_001}
    assert parse_events(document, now=NOW) == ParsedMessage(
        issues=[ParseIssue("events", "too_many", "10001 events, more than 10000 in one message", fatal=True)]
    )
    accepted = parse_events({"events": [event()] * 10_000}, now=NOW)
    assert (len(accepted.events), accepted.issues) == (10_000, [])


def test_nesting_is_limited_to_64_levels() -> None:
    expected: list[Any] = []
    for _ in range(63):
        expected = [expected]
    assert decode_json("[" * 64 + "]" * 64) == (expected, None)
    assert decode_json("[" * 65 + "]" * 65)[1] == ParseIssue(
        "$", "too_deep", "nested more than 64 levels deep", fatal=True
    )
    nested: dict[str, Any] = {}
    deep = nested
    for _ in range(200):
        deep["a"] = {}
        deep = deep["a"]
    assert decode_json(nested) == (
        None,
        ParseIssue("$", "too_deep", "nested more than 64 levels deep", fatal=True),
    )


def test_a_bom_is_tolerated() -> None:
    assert parse_events(b'\xef\xbb\xbf{"events": []}', now=NOW) == ParsedMessage()


# --- times -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-02T14:05:00Z", Timestamp(dt.datetime(2026, 3, 2, 14, 5, tzinfo=dt.UTC), 0)),
        ("2026-03-02T14:05Z", Timestamp(dt.datetime(2026, 3, 2, 14, 5, tzinfo=dt.UTC), 0)),
        ("2026-03-02 14:05:00+05:30", Timestamp(dt.datetime(2026, 3, 2, 8, 35, tzinfo=dt.UTC), 330)),
        ("2026-03-02T14:05:00-0300", Timestamp(dt.datetime(2026, 3, 2, 17, 5, tzinfo=dt.UTC), -180)),
        (
            "2026-03-02T14:05:00.123456789+00:00",
            Timestamp(dt.datetime(2026, 3, 2, 14, 5, 0, 123456, tzinfo=dt.UTC), 0),
        ),
        ("2024-02-29T00:00:00+14:00", Timestamp(dt.datetime(2024, 2, 28, 10, 0, tzinfo=dt.UTC), 840)),
    ],
)
def test_timestamps_are_read_to_utc_keeping_their_offset(text: str, expected: Timestamp) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2025-02-29T00:00:00Z", "'2025-02-29' is not a date"),
        ("2026-04-31T00:00:00Z", "'2026-04-31' is not a date"),
        ("2026-03-02T24:00:00Z", "'2026-03-02T24:00:00Z' is not a valid time of day"),
        ("2026-03-02T23:59:60Z", "'2026-03-02T23:59:60Z' is not a valid time of day"),
        ("2026-03-02T10:00:00+15:00", "'2026-03-02T10:00:00+15:00' has a UTC offset outside -14:00..+14:00"),
        ("2026-03-02T10:00:00+01:75", "'2026-03-02T10:00:00+01:75' has an invalid UTC offset"),
        (
            "20260302T100000Z",
            "'20260302T100000Z' is not an ISO 8601 date-time (e.g. 2026-03-01T14:30:00+01:00)",
        ),
        ("0001-01-01T00:00:00+01:00", "'0001-01-01T00:00:00+01:00' is out of range"),
    ],
)
def test_impossible_timestamps_are_refused(text: str, message: str) -> None:
    with pytest.raises(TimestampError) as error:
        parse_timestamp(text)
    assert str(error.value) == message


def test_naive_and_date_only_times_only_when_allowed() -> None:
    assert parse_timestamp("2026-03-02T10:00:00", allow_naive=True) == Timestamp(
        dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC), None
    )
    assert parse_timestamp("2026-03-02", allow_date_only=True) == Timestamp(
        dt.datetime(2026, 3, 2, tzinfo=dt.UTC), None, date_only=True
    )


def test_event_time_window() -> None:
    assert check_event_time(Classifier.ACTUAL, NOW + dt.timedelta(days=1), NOW) is None
    assert check_event_time(Classifier.ACTUAL, NOW + dt.timedelta(days=1, seconds=1), NOW) == (
        "future_event",
        "an actual event at 2026-03-04T12:00:01+00:00 is more than 1 day after now (2026-03-03T12:00:00+00:00)",
    )
    assert check_event_time(Classifier.PLANNED, NOW + dt.timedelta(days=730), NOW) is None
    assert check_event_time(Classifier.ESTIMATED, dt.datetime(2000, 1, 1, tzinfo=dt.UTC), NOW) is None


# --- the published schema documents what the code accepts ------------------------------------------------


def test_the_schema_is_draft_2020_12_and_matches_the_code() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["events"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["events"]["maxItems"] == canonical_json.MAX_EVENTS
    definition = schema["$defs"]["event"]
    assert set(definition["properties"]) == canonical_json.EVENT_FIELDS
    assert definition["required"] == list(canonical_json.REQUIRED_EVENT_FIELDS)
    assert definition["additionalProperties"] is False
    assert definition["properties"]["code"]["anyOf"][0]["enum"] == [code.value for code in MilestoneCode]
    assert definition["properties"]["classifier"]["enum"] == [c.value for c in Classifier]
    reference = schema["$defs"]["reference"]
    assert reference["properties"]["kind"]["enum"] == [kind.value for kind in ReferenceKind]
    assert reference["properties"]["value"]["maxLength"] == canonical_json.MAX_REFERENCE
    assert definition["properties"]["references"]["maxItems"] == canonical_json.MAX_REFERENCES
    assert list(schema["$defs"]["location"]["properties"]) == list(canonical_json.LOCATION_FIELDS)
    for name, (_, limit) in canonical_json.LOCATION_FIELDS.items():
        field = schema["$defs"]["location"]["properties"][name]
        assert field.get("maxLength", limit) == limit
        if name in ("locode", "country"):
            assert "pattern" in field


def test_the_schema_examples_are_accepted() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    for example in schema["examples"]:
        result = parse_events(example, now=NOW)
        assert result.issues == []
        assert len(result.events) == len(example["events"])


def test_the_documented_example_is_accepted() -> None:
    text = (Path(__file__).parents[3] / "docs" / "formats" / "events.md").read_text()
    [example] = re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL)
    result = parse_events(example, now=NOW)
    assert result.issues == []
    assert [(e.code.code, e.references) for e in result.events] == [
        ("DEPARTED", (("container", "MSCU1234567"), ("booking", "BK778812")))
    ]
