from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from domain.shipments.models import MilestoneCode
from domain.tracking.canonical import (
    CanonicalEvent,
    Classifier,
    ParsedMessage,
    ParseIssue,
    Place,
    Signal,
    SourceCode,
)
from domain.tracking.formats.aggregators import parse_aftership, parse_easypost
from domain.tracking.mapping import (
    CODELISTS_DIR,
    MAPPINGS_DIR,
    read_codelist,
    read_mapping_file,
    unmapped_codes,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "aggregators"
NOW = dt.datetime(2026, 3, 3, 12, 0, tzinfo=dt.UTC)
SYSTEMS = (
    "aftership.subtag",
    "aftership.expected_delivery",
    "easypost.status",
    "easypost.status_detail",
    "easypost.est_delivery_date",
)


def aftership_response() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (FIXTURES / "aftership_get_tracking_postnl-3s.response.json").read_text()
    )
    return document


def easypost_tracker() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (FIXTURES / "easypost_tracker_delivered.extracted.json").read_text()
    )
    return document


def webhook(tracking: dict[str, Any]) -> dict[str, Any]:
    return {
        "event": "tracking_update",
        "event_id": "c1b1f1e2",
        "is_tracking_first_tag": False,
        "msg": tracking,
    }


def checkpoint(**overrides: Any) -> dict[str, Any]:
    base = {
        "slug": "dhl",
        "checkpoint_time": "2026-03-01T09:15:00+01:00",
        "tag": "InTransit",
        "subtag": "InTransit_007",
        "subtag_message": "Departure Scan",
        "message": "Departed from facility",
        "city": "Leipzig",
        "state": None,
        "country_iso3": "DEU",
        "zip": "04435",
        "location": "Leipzig Hub",
    }
    base.update(overrides)
    return base


def tracking(*checkpoints: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "tracking_number": "JD014600006281230704",
        "slug": "dhl",
        "checkpoints": list(checkpoints),
    }
    base.update(overrides)
    return base


def tracking_detail(**overrides: Any) -> dict[str, Any]:
    base = {
        "object": "TrackingDetail",
        "message": "Departed USPS Regional Facility",
        "description": "",
        "status": "in_transit",
        "status_detail": "departed_facility",
        "datetime": "2026-03-01T08:15:00Z",
        "source": "USPS",
        "carrier_code": "",
        "tracking_location": {
            "object": "TrackingLocation",
            "city": "MEMPHIS",
            "state": "TN",
            "country": "US",
            "zip": "38118",
        },
    }
    base.update(overrides)
    return base


def tracker(*details: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "trk_1",
        "object": "Tracker",
        "tracking_code": "9400100208303109500782",
        "carrier": "USPS",
        "est_delivery_date": None,
        "tracking_details": list(details),
    }
    base.update(overrides)
    return base


# --- AfterShip ----------------------------------------------------------------------------------------------


def test_the_aftership_fixture_becomes_one_actual_event_per_checkpoint() -> None:
    result = parse_aftership(
        (FIXTURES / "aftership_get_tracking_postnl-3s.response.json").read_bytes(), now=NOW
    )
    assert result.issues == []
    assert [(e.code.code, e.occurred_at.isoformat(), e.utc_offset_minutes) for e in result.events] == [
        ("InfoReceived_001", "2021-03-20T14:29:27+00:00", 60),
        ("InfoReceived_001", "2021-03-20T14:29:56+00:00", 60),
        ("InTransit_001", "2021-03-20T14:32:37+00:00", 60),
        ("InTransit_001", "2021-03-22T17:33:57+00:00", 60),
        ("InTransit_001", "2021-03-22T17:36:04+00:00", 60),
        ("InTransit_004", "2021-03-25T09:59:00+00:00", 60),
    ]
    last = result.events[-1]
    assert last == CanonicalEvent(
        source="aftership",
        classifier=Classifier.ACTUAL,
        code=SourceCode("aftership.subtag", "InTransit_004"),
        occurred_at=dt.datetime(2021, 3, 25, 9, 59, tzinfo=dt.UTC),
        references=(("tracking_number", "3SKAAG5995399"),),
        position="data.tracking.checkpoints[5]",
        source_event_id=last.source_event_id,
        utc_offset_minutes=60,
        place=Place(name="ES, Spain", country="ESP"),
        carrier_code="postnl-3s",
        detail={
            "message": "Shipment received in country of destination",
            "tag": "InTransit",
            "subtag_message": "Arrived at destination country",
            "slug": "postnl-3s",
        },
    )
    assert result.events[0].place is None
    ids = [e.source_event_id for e in result.events]
    assert len(set(ids)) == 6
    assert all(isinstance(i, str) and len(i) == 64 for i in ids)


def test_a_webhook_and_a_response_for_the_same_checkpoints_give_the_same_event_ids() -> None:
    from_response = parse_aftership(aftership_response(), now=NOW)
    from_webhook = parse_aftership(webhook(aftership_response()["data"]["tracking"]), now=NOW)
    assert from_webhook.issues == []
    assert [e.position for e in from_webhook.events][:2] == ["msg.checkpoints[0]", "msg.checkpoints[1]"]
    assert [e.source_event_id for e in from_webhook.events] == [
        e.source_event_id for e in from_response.events
    ]


def test_newer_api_versions_put_the_tracking_directly_under_data() -> None:
    result = parse_aftership({"data": tracking(checkpoint())}, now=NOW)
    assert [e.position for e in result.events] == ["data.checkpoints[0]"]


def test_a_checkpoint_event_in_full() -> None:
    result = parse_aftership(webhook(tracking(checkpoint(id="cp-81"), order_id="SO-1001")), now=NOW)
    assert result.issues == []
    assert result.events == [
        CanonicalEvent(
            source="aftership",
            classifier=Classifier.ACTUAL,
            code=SourceCode("aftership.subtag", "InTransit_007"),
            occurred_at=dt.datetime(2026, 3, 1, 8, 15, tzinfo=dt.UTC),
            references=(("tracking_number", "JD014600006281230704"), ("customer_reference", "SO-1001")),
            position="msg.checkpoints[0]",
            source_event_id="cp-81",
            utc_offset_minutes=60,
            place=Place(name="Leipzig Hub", city="Leipzig", country="DEU", postal_code="04435"),
            carrier_code="dhl",
            detail={
                "message": "Departed from facility",
                "tag": "InTransit",
                "subtag_message": "Departure Scan",
                "slug": "dhl",
            },
        )
    ]


def test_event_ids_change_with_what_the_checkpoint_says() -> None:
    [first, same, later, elsewhere] = parse_aftership(
        webhook(
            tracking(
                checkpoint(),
                checkpoint(message="reworded by the carrier"),
                checkpoint(checkpoint_time="2026-03-01T09:16:00+01:00"),
                checkpoint(city="Halle"),
            )
        ),
        now=NOW,
    ).events
    assert first.source_event_id == same.source_event_id
    assert len({first.source_event_id, later.source_event_id, elsewhere.source_event_id}) == 3


def test_a_checkpoint_time_without_offset_is_taken_as_utc_and_flagged() -> None:
    result = parse_aftership(webhook(tracking(checkpoint(checkpoint_time="2026-03-01T09:15:00"))), now=NOW)
    [event] = result.events
    assert (event.occurred_at, event.utc_offset_minutes) == (
        dt.datetime(2026, 3, 1, 9, 15, tzinfo=dt.UTC),
        None,
    )
    assert result.issues == [
        ParseIssue(
            "msg.checkpoints[0].checkpoint_time",
            "no_utc_offset",
            "'2026-03-01T09:15:00' has no UTC offset; taken as UTC",
        )
    ]


def test_expected_delivery_becomes_an_estimate_of_delivery() -> None:
    result = parse_aftership(
        webhook(tracking(checkpoint(), expected_delivery="2026-03-05T18:00:00+01:00")), now=NOW
    )
    assert result.issues == []
    estimate = result.events[-1]
    assert estimate == CanonicalEvent(
        source="aftership",
        classifier=Classifier.ESTIMATED,
        code=SourceCode("aftership.expected_delivery", "expected_delivery"),
        occurred_at=dt.datetime(2026, 3, 5, 17, 0, tzinfo=dt.UTC),
        references=(("tracking_number", "JD014600006281230704"),),
        position="msg.expected_delivery",
        source_event_id=estimate.source_event_id,
        utc_offset_minutes=60,
        carrier_code="dhl",
        detail={"expected_delivery": "2026-03-05T18:00:00+01:00"},
    )


def test_an_expected_delivery_date_means_the_end_of_that_day() -> None:
    result = parse_aftership(webhook(tracking(expected_delivery="2026-03-05")), now=NOW)
    [estimate] = result.events
    assert (estimate.occurred_at, estimate.utc_offset_minutes, estimate.detail) == (
        dt.datetime(2026, 3, 5, 23, 59, 59, tzinfo=dt.UTC),
        None,
        {"expected_delivery": "2026-03-05", "precision": "date"},
    )
    assert result.issues == [
        ParseIssue(
            "msg.expected_delivery",
            "no_utc_offset",
            "'2026-03-05' is a date; taken as the end of that day in UTC",
        )
    ]


def test_a_changed_expected_delivery_is_a_new_estimate() -> None:
    first = parse_aftership(webhook(tracking(expected_delivery="2026-03-05")), now=NOW).events[0]
    again = parse_aftership(webhook(tracking(expected_delivery="2026-03-05")), now=NOW).events[0]
    moved = parse_aftership(webhook(tracking(expected_delivery="2026-03-06")), now=NOW).events[0]
    assert first.source_event_id == again.source_event_id != moved.source_event_id


def test_the_signer_is_kept_on_delivered_checkpoints() -> None:
    result = parse_aftership(
        webhook(
            tracking(checkpoint(), checkpoint(subtag="Delivered_003", tag="Delivered"), signed_by="J. SMITH")
        ),
        now=NOW,
    )
    assert ["signed_by" in e.detail for e in result.events] == [False, True]
    assert result.events[1].detail["signed_by"] == "J. SMITH"


def test_a_checkpoint_with_only_a_tag_is_kept_raw_and_flagged() -> None:
    result = parse_aftership(webhook(tracking(checkpoint(subtag=None))), now=NOW)
    assert [e.code for e in result.events] == [SourceCode("aftership.subtag", "InTransit")]
    assert result.issues == [
        ParseIssue("msg.checkpoints[0].subtag", "missing", "no subtag; tag 'InTransit' kept as the code")
    ]


@pytest.mark.parametrize(
    ("overrides", "issue"),
    [
        (
            {"subtag": None, "tag": None},
            ParseIssue(
                "msg.checkpoints[0].subtag", "missing", "a checkpoint needs a subtag (or at least a tag)"
            ),
        ),
        (
            {"checkpoint_time": None},
            ParseIssue("msg.checkpoints[0].checkpoint_time", "missing", "is required"),
        ),
        (
            {"checkpoint_time": "2026-02-30T10:00:00+01:00"},
            ParseIssue("msg.checkpoints[0].checkpoint_time", "invalid_time", "'2026-02-30' is not a date"),
        ),
        (
            {"checkpoint_time": 1772355300},
            ParseIssue("msg.checkpoints[0].checkpoint_time", "wrong_type", "must be a string, got number"),
        ),
        (
            {"checkpoint_time": "2026-03-05T10:00:00+00:00"},
            ParseIssue(
                "msg.checkpoints[0].checkpoint_time",
                "future_event",
                "an actual event at 2026-03-05T10:00:00+00:00 is more than 1 day after now "
                "(2026-03-03T12:00:00+00:00)",
            ),
        ),
        (
            {"subtag": "InTransit_" + "0" * 70},
            ParseIssue("msg.checkpoints[0].subtag", "too_long", "80 characters, more than 64"),
        ),
        (
            {"subtag": ["InTransit_007"]},
            ParseIssue("msg.checkpoints[0].subtag", "wrong_type", "must be a string, got array"),
        ),
    ],
)
def test_an_unusable_checkpoint_is_skipped_and_the_others_kept(
    overrides: dict[str, Any], issue: ParseIssue
) -> None:
    result = parse_aftership(
        webhook(tracking(checkpoint(**overrides), checkpoint(subtag="Delivered_001"))), now=NOW
    )
    assert [e.code.code for e in result.events] == ["Delivered_001"]
    assert [e.position for e in result.events] == ["msg.checkpoints[1]"]
    assert result.issues[-1] == issue
    assert not result.rejected


def test_a_checkpoint_that_is_not_an_object_is_skipped() -> None:
    result = parse_aftership(webhook(tracking("InTransit_001")), now=NOW)  # type: ignore[arg-type]
    assert result == ParsedMessage(
        issues=[ParseIssue("msg.checkpoints[0]", "wrong_type", "a checkpoint must be an object, got string")]
    )


def test_an_overlong_message_is_cut_not_refused() -> None:
    result = parse_aftership(webhook(tracking(checkpoint(message="m" * 2000, location="L" * 300))), now=NOW)
    [event] = result.events
    assert (len(event.detail["message"]), event.place and len(event.place.name or "")) == (1024, 256)
    assert result.issues == [
        ParseIssue("msg.checkpoints[0].location", "truncated", "300 characters, cut to 256"),
        ParseIssue("msg.checkpoints[0].message", "truncated", "2000 characters, cut to 1024"),
    ]


@pytest.mark.parametrize(
    ("document", "issue"),
    [
        (
            b'{"msg": {',
            ParseIssue(
                "line 1 column 10",
                "malformed_json",
                "Expecting property name enclosed in double quotes",
                fatal=True,
            ),
        ),
        (b"[]", ParseIssue("$", "wrong_type", "must be a JSON object, got array", fatal=True)),
        (
            b'{"meta": {"code": 200}}',
            ParseIssue(
                "$",
                "wrong_shape",
                'expected an AfterShip tracking: {"msg": {...}} or {"data": {"tracking": {...}}}',
                fatal=True,
            ),
        ),
        (
            b'{"msg": []}',
            ParseIssue("msg", "wrong_shape", "the tracking must be an object, got array", fatal=True),
        ),
        (
            b'{"msg": {"checkpoints": []}}',
            ParseIssue("msg.tracking_number", "missing", "is required", fatal=True),
        ),
        (
            b'{"msg": {"tracking_number": 123}}',
            ParseIssue("msg.tracking_number", "wrong_type", "must be a string, got number", fatal=True),
        ),
        (
            json.dumps({"msg": {"tracking_number": "T" * 129}}).encode(),
            ParseIssue("msg.tracking_number", "too_long", "129 characters, more than 128", fatal=True),
        ),
        (
            b'{"msg": {"tracking_number": "T1", "checkpoints": {}}}',
            ParseIssue("msg.checkpoints", "wrong_type", "must be an array, got object", fatal=True),
        ),
        (
            json.dumps({"msg": {"tracking_number": "T1", "checkpoints": [{}] * 1001}}).encode(),
            ParseIssue("msg.checkpoints", "too_many", "1001 entries, more than 1000", fatal=True),
        ),
        (
            b'{"msg": ' * 70 + b"{}" + b"}" * 70,
            ParseIssue("$", "too_deep", "nested more than 64 levels deep", fatal=True),
        ),
        (b"[" * 50_000, ParseIssue("$", "too_deep", "nested more than 64 levels deep", fatal=True)),
    ],
)
def test_an_aftership_payload_that_cannot_be_used_is_rejected(document: bytes, issue: ParseIssue) -> None:
    result = parse_aftership(document, now=NOW)
    assert result == ParsedMessage(issues=[issue])
    assert result.rejected


# --- EasyPost -----------------------------------------------------------------------------------------------


def test_the_easypost_fixture_becomes_actual_events_and_an_estimate() -> None:
    result = parse_easypost((FIXTURES / "easypost_tracker_delivered.extracted.json").read_bytes(), now=NOW)
    assert result.issues == []
    assert [(e.classifier, e.code.code, e.code.qualifier, e.position) for e in result.events] == [
        (Classifier.ACTUAL, "pre_transit", "status_update", "tracking_details[0]"),
        (Classifier.ACTUAL, "pre_transit", "status_update", "tracking_details[1]"),
        (Classifier.ACTUAL, "in_transit", "arrived_at_facility", "tracking_details[2]"),
        (Classifier.ACTUAL, "in_transit", "arrived_at_facility", "tracking_details[3]"),
        (Classifier.ACTUAL, "in_transit", "arrived_at_facility", "tracking_details[4]"),
        (Classifier.ACTUAL, "in_transit", "status_update", "tracking_details[5]"),
        (Classifier.ACTUAL, "out_for_delivery", "out_for_delivery", "tracking_details[6]"),
        (Classifier.ACTUAL, "delivered", "arrived_at_destination", "tracking_details[7]"),
        (Classifier.ESTIMATED, "est_delivery_date", None, "est_delivery_date"),
    ]
    delivered = result.events[7]
    assert delivered == CanonicalEvent(
        source="easypost",
        classifier=Classifier.ACTUAL,
        code=SourceCode("easypost.status", "delivered", "easypost.status_detail", "arrived_at_destination"),
        occurred_at=dt.datetime(2025, 2, 9, 9, 42, 47, tzinfo=dt.UTC),
        references=(("tracking_number", "9400100208303109500782"),),
        position="tracking_details[7]",
        source_event_id=delivered.source_event_id,
        utc_offset_minutes=None,
        place=Place(city="CHARLESTON", state="SC", postal_code="29407"),
        carrier_code="USPS",
        detail={
            "message": "Delivered",
            "source": "USPS",
            "tracker_id": "trk_977a3085fc654ae3955af46ac298e43c",
            "shipment_id": "shp_34cd3af0099a4d5c815a44c1a408f095",
            "signed_by": "John Tester",
        },
    )
    assert result.events[0].place is None
    assert result.events[-1] == CanonicalEvent(
        source="easypost",
        classifier=Classifier.ESTIMATED,
        code=SourceCode("easypost.est_delivery_date", "est_delivery_date"),
        occurred_at=dt.datetime(2025, 3, 6, 19, 51, 47, tzinfo=dt.UTC),
        references=(("tracking_number", "9400100208303109500782"),),
        position="est_delivery_date",
        source_event_id=result.events[-1].source_event_id,
        carrier_code="USPS",
        detail={"est_delivery_date": "2025-03-06T19:51:47Z"},
    )
    assert len({e.source_event_id for e in result.events}) == 9


def test_an_easypost_event_webhook_carries_the_tracker_in_result() -> None:
    event = {
        "object": "Event",
        "id": "evt_1",
        "mode": "production",
        "description": "tracker.updated",
        "previous_attributes": {"status": "out_for_delivery"},
        "result": easypost_tracker(),
    }
    from_event = parse_easypost(json.dumps(event), now=NOW)
    bare = parse_easypost(easypost_tracker(), now=NOW)
    assert from_event.issues == []
    assert [e.position for e in from_event.events][-2:] == [
        "result.tracking_details[7]",
        "result.est_delivery_date",
    ]
    assert [e.source_event_id for e in from_event.events] == [e.source_event_id for e in bare.events]


def test_other_easypost_events_are_ignored_without_rejecting() -> None:
    result = parse_easypost(
        {"object": "Event", "description": "batch.updated", "result": {"object": "Batch"}}, now=NOW
    )
    assert result == ParsedMessage(
        issues=[
            ParseIssue("description", "not_tracking", "event 'batch.updated' is not about a tracker; ignored")
        ]
    )
    assert not result.rejected


def test_a_detail_without_status_detail_has_no_qualifier() -> None:
    result = parse_easypost(tracker(tracking_detail(status_detail=None, tracking_location=None)), now=NOW)
    [event] = result.events
    assert (event.code, event.place) == (SourceCode("easypost.status", "in_transit"), None)
    assert result.issues == []


def test_a_full_easypost_tracking_detail() -> None:
    result = parse_easypost(
        tracker(tracking_detail(carrier_code="OF", description="Your item departed")), now=NOW
    )
    assert result.issues == []
    [event] = result.events
    assert event == CanonicalEvent(
        source="easypost",
        classifier=Classifier.ACTUAL,
        code=SourceCode("easypost.status", "in_transit", "easypost.status_detail", "departed_facility"),
        occurred_at=dt.datetime(2026, 3, 1, 8, 15, tzinfo=dt.UTC),
        references=(("tracking_number", "9400100208303109500782"),),
        position="tracking_details[0]",
        source_event_id=event.source_event_id,
        place=Place(city="MEMPHIS", state="TN", country="US", postal_code="38118"),
        carrier_code="USPS",
        detail={
            "message": "Departed USPS Regional Facility",
            "description": "Your item departed",
            "source": "USPS",
            "carrier_status_code": "OF",
            "tracker_id": "trk_1",
        },
    )


@pytest.mark.parametrize(
    ("overrides", "issue"),
    [
        ({"status": None}, ParseIssue("tracking_details[0].status", "missing", "is required")),
        (
            {"status": 3},
            ParseIssue("tracking_details[0].status", "wrong_type", "must be a string, got number"),
        ),
        ({"datetime": None}, ParseIssue("tracking_details[0].datetime", "missing", "is required")),
        (
            {"datetime": "2026-02-29T10:00:00Z"},
            ParseIssue("tracking_details[0].datetime", "invalid_time", "'2026-02-29' is not a date"),
        ),
        (
            {"datetime": "2026-03-09T10:00:00Z"},
            ParseIssue(
                "tracking_details[0].datetime",
                "future_event",
                "an actual event at 2026-03-09T10:00:00+00:00 is more than 1 day after now "
                "(2026-03-03T12:00:00+00:00)",
            ),
        ),
    ],
)
def test_an_unusable_tracking_detail_is_skipped(overrides: dict[str, Any], issue: ParseIssue) -> None:
    result = parse_easypost(
        tracker(tracking_detail(**overrides), tracking_detail(status="delivered")), now=NOW
    )
    assert [e.position for e in result.events] == ["tracking_details[1]"]
    assert result.issues == [issue]


def test_an_unreadable_status_detail_leaves_the_status() -> None:
    result = parse_easypost(tracker(tracking_detail(status_detail="x" * 65)), now=NOW)
    assert [e.code for e in result.events] == [SourceCode("easypost.status", "in_transit")]
    assert result.issues == [
        ParseIssue("tracking_details[0].status_detail", "too_long", "65 characters, more than 64")
    ]


def test_a_detail_time_without_offset_is_taken_as_utc_and_flagged() -> None:
    result = parse_easypost(tracker(tracking_detail(datetime="2026-03-01T08:15:00")), now=NOW)
    assert result.events[0].occurred_at == dt.datetime(2026, 3, 1, 8, 15, tzinfo=dt.UTC)
    assert result.issues == [
        ParseIssue(
            "tracking_details[0].datetime",
            "no_utc_offset",
            "'2026-03-01T08:15:00' has no UTC offset; taken as UTC",
        )
    ]


def test_a_bad_location_or_estimate_is_reported() -> None:
    result = parse_easypost(
        tracker(tracking_detail(tracking_location="MEMPHIS TN"), est_delivery_date="next week"), now=NOW
    )
    assert len(result.events) == 1
    assert result.issues == [
        ParseIssue("tracking_details[0].tracking_location", "wrong_type", "must be an object, got string"),
        ParseIssue(
            "est_delivery_date",
            "invalid_time",
            "'next week' is not an ISO 8601 date-time (e.g. 2026-03-01T14:30:00+01:00)",
        ),
    ]


@pytest.mark.parametrize(
    ("document", "issue"),
    [
        (
            b"{",
            ParseIssue(
                "line 1 column 2",
                "malformed_json",
                "Expecting property name enclosed in double quotes",
                fatal=True,
            ),
        ),
        (b'"Tracker"', ParseIssue("$", "wrong_type", "must be a JSON object, got string", fatal=True)),
        (
            b'{"object": "Shipment"}',
            ParseIssue(
                "$",
                "wrong_shape",
                'expected an EasyPost Event {"object": "Event", ...} or a Tracker {"object": "Tracker", ...}',
                fatal=True,
            ),
        ),
        (
            b'{"object": "Event", "description": "tracker.updated", "result": null}',
            ParseIssue(
                "result", "wrong_shape", "the event result must be a Tracker object, got null", fatal=True
            ),
        ),
        (b'{"object": "Tracker"}', ParseIssue("tracking_code", "missing", "is required", fatal=True)),
        (
            b'{"object": "Event", "description": "tracker.created", "result": {"object": "Tracker", "tracking_code": ""}}',
            ParseIssue("result.tracking_code", "missing", "is required", fatal=True),
        ),
        (
            b'{"object": "Tracker", "tracking_code": "T1", "tracking_details": "none"}',
            ParseIssue("tracking_details", "wrong_type", "must be an array, got string", fatal=True),
        ),
        (
            b'{"object": "Tracker", "tracking_code": "T1", "x": ' + b"[" * 64 + b"]" * 64 + b"}",
            ParseIssue("$", "too_deep", "nested more than 64 levels deep", fatal=True),
        ),
        (b"\xc3\x28", ParseIssue("byte 0", "not_utf8", "the document is not valid UTF-8", fatal=True)),
    ],
)
def test_an_easypost_payload_that_cannot_be_used_is_rejected(document: bytes, issue: ParseIssue) -> None:
    result = parse_easypost(document, now=NOW)
    assert result == ParsedMessage(issues=[issue])
    assert result.rejected


def test_a_tracker_with_no_details_yet_has_no_events() -> None:
    assert parse_easypost(tracker(), now=NOW) == ParsedMessage()
    assert parse_easypost(tracker(tracking_details=None), now=NOW) == ParsedMessage()


def test_fixture_copies_are_unchanged() -> None:
    shared = Path("/work/shared/fixtures/aggregators")
    if not shared.exists():
        pytest.skip("the shared fixture folder is not on this machine")
    for path in FIXTURES.iterdir():
        assert path.read_bytes() == (shared / path.name).read_bytes()


def test_parsing_does_not_change_the_document() -> None:
    document = easypost_tracker()
    before = copy.deepcopy(document)
    parse_easypost(document, now=NOW)
    assert document == before


# --- mapping tables and code lists ----------------------------------------------------------------------


@pytest.mark.parametrize("system", SYSTEMS)
def test_every_listed_code_has_exactly_one_valid_row(system: str) -> None:
    rows = read_mapping_file(MAPPINGS_DIR / f"{system}.csv")  # refuses invalid rows
    codes = read_codelist(CODELISTS_DIR / f"{system}.txt")
    assert unmapped_codes([system]) == {}
    assert sorted(rows) == sorted(codes)
    assert len(codes) == len(set(codes))
    for code, row in rows.items():
        assert row.milestone is None or row.milestone in set(MilestoneCode), code
        assert row.signal is None or row.signal in set(Signal), code
        assert row.milestone or row.signal or row.raw_only, code
        assert row.description, code


def test_codelists_cite_their_origin() -> None:
    for system in SYSTEMS:
        header = [
            line
            for line in (CODELISTS_DIR / f"{system}.txt").read_text().splitlines()
            if line.startswith("#")
        ]
        assert any("origin: https://" in line for line in header), system


def test_the_aftership_code_list_is_complete() -> None:
    codes = read_codelist(CODELISTS_DIR / "aftership.subtag.txt")
    assert len(codes) == 49
    assert {code.split("_")[0] for code in codes} == {
        "Pending",
        "InfoReceived",
        "InTransit",
        "OutForDelivery",
        "AttemptFail",
        "Delivered",
        "AvailableForPickup",
        "Exception",
        "Expired",
    }
    assert [c for c in codes if c.startswith("InTransit_")] == [f"InTransit_00{i}" for i in range(1, 10)]
    assert [c for c in codes if c.startswith("Exception_")] == [
        *(f"Exception_{i:03}" for i in range(1, 14)),
        *(f"Exception_{i:03}" for i in range(16, 22)),
    ]


def test_the_easypost_code_lists_are_complete() -> None:
    assert read_codelist(CODELISTS_DIR / "easypost.status.txt") == [
        "unknown",
        "pre_transit",
        "in_transit",
        "out_for_delivery",
        "delivered",
        "available_for_pickup",
        "return_to_sender",
        "failure",
        "cancelled",
        "error",
    ]
    assert len(read_codelist(CODELISTS_DIR / "easypost.status_detail.txt")) == 28


@pytest.mark.parametrize(
    ("system", "code", "milestone", "signal"),
    [
        ("aftership.subtag", "Exception_004", "CUSTOMS_HOLD", "CUSTOMS_HOLD"),
        ("aftership.subtag", "Exception_007", None, "ADDRESS_ISSUE"),
        ("aftership.subtag", "Exception_011", "RETURNED", "RETURN_TO_SENDER"),
        ("aftership.subtag", "Exception_012", None, "DAMAGE"),
        ("aftership.subtag", "Exception_013", None, "LOSS"),
        ("aftership.subtag", "Exception_017", None, "WEATHER"),
        ("aftership.subtag", "AttemptFail_002", "DELIVERY_ATTEMPTED", "DELIVERY_FAILED"),
        ("aftership.subtag", "Delivered_001", "DELIVERED", None),
        ("aftership.expected_delivery", "expected_delivery", "DELIVERED", None),
        ("easypost.status", "return_to_sender", None, "RETURN_TO_SENDER"),
        ("easypost.status", "delivered", "DELIVERED", None),
        ("easypost.status_detail", "damaged", None, "DAMAGE"),
        ("easypost.status_detail", "lost", None, "LOSS"),
        ("easypost.status_detail", "weather_delay", None, "WEATHER"),
        ("easypost.status_detail", "refused", None, "REFUSED"),
        ("easypost.status_detail", "address_correction", None, "ADDRESS_ISSUE"),
        ("easypost.est_delivery_date", "est_delivery_date", "DELIVERED", None),
    ],
)
def test_key_codes_map_as_intended(system: str, code: str, milestone: str | None, signal: str | None) -> None:
    row = read_mapping_file(MAPPINGS_DIR / f"{system}.csv")[code]
    assert (row.milestone, row.signal) == (milestone, signal)
