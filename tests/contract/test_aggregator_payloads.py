"""Recorded vendor payloads (written by AfterShip's and EasyPost's own SDK test suites) parse and map.

The fixtures in ``tests/fixtures/aggregators`` are copies, unchanged, of ``/work/shared/fixtures/aggregators``
(see its SOURCES.md); variants are derived here, never edited in place.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from domain.tracking.canonical import ParsedMessage
from domain.tracking.formats.aggregators import parse_aftership, parse_easypost
from domain.tracking.mapping import MappingTable, Resolution

FIXTURES = Path(__file__).parents[1] / "fixtures" / "aggregators"
AFTERSHIP = FIXTURES / "aftership_get_tracking_postnl-3s.response.json"
EASYPOST = FIXTURES / "easypost_tracker_delivered.extracted.json"
NOW = dt.datetime(2026, 3, 3, 12, 0, tzinfo=dt.UTC)


def resolutions(parsed: ParsedMessage) -> list[tuple[str, Resolution]]:
    table = MappingTable()
    return [(event.classifier.value, table.resolve_event(event)) for event in parsed.events]


def aftership_as_webhook() -> bytes:
    response: dict[str, Any] = json.loads(AFTERSHIP.read_text())
    return json.dumps({"event": "tracking_update", "msg": response["data"]["tracking"]}).encode()


def easypost_as_event() -> bytes:
    tracker = json.loads(EASYPOST.read_text())
    return json.dumps({"object": "Event", "description": "tracker.updated", "result": tracker}).encode()


@pytest.mark.parametrize(
    "document", [AFTERSHIP.read_bytes(), aftership_as_webhook()], ids=["response", "webhook"]
)
def test_every_aftership_checkpoint_maps(document: bytes) -> None:
    parsed = parse_aftership(document, now=NOW)
    assert parsed.issues == []
    assert resolutions(parsed) == [
        ("ACT", Resolution(milestone="BOOKED", signals=())),
        ("ACT", Resolution(milestone="BOOKED", signals=())),
        ("ACT", Resolution(milestone="PICKED_UP", signals=())),
        ("ACT", Resolution(milestone="PICKED_UP", signals=())),
        ("ACT", Resolution(milestone="PICKED_UP", signals=())),
        ("ACT", Resolution(milestone="ARRIVED", signals=())),
    ]


def test_the_aftership_tracking_level_subtag_is_a_listed_code() -> None:
    tracking = json.loads(AFTERSHIP.read_text())["data"]["tracking"]
    assert MappingTable().lookup("aftership.subtag", tracking["subtag"]) is not None


@pytest.mark.parametrize("document", [EASYPOST.read_bytes(), easypost_as_event()], ids=["tracker", "event"])
def test_every_easypost_tracking_detail_maps(document: bytes) -> None:
    parsed = parse_easypost(document, now=NOW)
    assert parsed.issues == []
    assert resolutions(parsed) == [
        ("ACT", Resolution(milestone="BOOKED", signals=())),
        ("ACT", Resolution(milestone="BOOKED", signals=())),
        ("ACT", Resolution(milestone="PICKED_UP", signals=())),
        ("ACT", Resolution(milestone="PICKED_UP", signals=())),
        ("ACT", Resolution(milestone="PICKED_UP", signals=())),
        ("ACT", Resolution(milestone="PICKED_UP", signals=())),
        ("ACT", Resolution(milestone="OUT_FOR_DELIVERY", signals=())),
        ("ACT", Resolution(milestone="DELIVERED", signals=())),
        ("EST", Resolution(milestone="DELIVERED", signals=())),
    ]


def test_the_easypost_tracker_level_status_and_detail_are_listed_codes() -> None:
    tracker = json.loads(EASYPOST.read_text())
    table = MappingTable()
    assert table.lookup("easypost.status", tracker["status"]) is not None
    assert table.lookup("easypost.status_detail", tracker["status_detail"]) is not None
