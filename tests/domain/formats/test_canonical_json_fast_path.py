"""The fast paths of the canonical JSON adapter give exactly the answers of the precise ones.

``parse_events`` reads a valid message with a strict fast path and hands anything else to
``_parse_events_precisely``; ``parse_timestamp`` reads the common form with ``datetime.fromisoformat`` and
any other with ``_parse_timestamp_precisely``. Messages and times are generated from valid ones by
mutation, so both sides of every check are met, and the two answers compared whole.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.shipments.models import MilestoneCode, ReferenceKind
from domain.tracking.canonical import ParsedMessage
from domain.tracking.formats import canonical_json
from domain.tracking.formats.canonical_json import LOCATION_FIELDS, Timestamp, TimestampError, parse_events

NOW = dt.datetime(2026, 3, 3, 12, 0, tzinfo=dt.UTC)

VALID_EVENTS: list[dict[str, Any]] = [
    {  # the throughput benchmark's events
        "eventId": "t1-s0-e2",
        "references": [{"kind": "booking", "value": "BK100000000"}],
        "code": "ARRIVED",
        "classifier": "EST",
        "occurredAt": "2026-03-17T02:28:00+01:00",
        "location": {"locode": "NLRTM"},
        "carrierCode": "MAEU",
    },
    {  # docs/formats/events.md
        "eventId": "evt-0001",
        "references": [
            {"kind": "container", "value": "MSCU1234567"},
            {"kind": "booking", "value": "BK778812"},
        ],
        "code": "DEPARTED",
        "classifier": "ACT",
        "occurredAt": "2026-03-02T14:05:00+01:00",
        "location": {"locode": "NLRTM", "name": "Rotterdam Maasvlakte II"},
        "carrierCode": "MAEU",
        "detail": {"vessel": "MAERSK EMDEN", "voyage": "412W"},
    },
    {
        "references": [{"kind": "container", "value": "MSCU1234567"}],
        "code": "x12.status:AF",
        "classifier": "PLN",
        "occurredAt": "2026-03-20T06:00:00.250-04:00",
    },
    {
        "references": [
            {"kind": "house_bl", "value": " HBL-1 "},
            {"kind": "master_bl", "value": "MBL-1"},
            {"kind": "house_bl", "value": "HBL-1"},
            {"kind": "tracking_number", "value": "1Z999"},
        ],
        "code": "canonical:DELIVERED",
        "classifier": "ACT",
        "occurredAt": "2026-03-01T23:59:59.999999Z",
        "location": {
            "locode": "USNYC",
            "name": "Port Newark\tContainer Terminal",
            "city": "Newark",
            "state": "NJ",
            "country": "US",
            "postalCode": "07114",
            "facilityCode": "PNCT",
        },
        "carrierCode": " HLCU ",
        "detail": {
            "weight": {"value": 12.5, "unit": "t"},
            "seals": ["S1", "S2"],
            "note": "é\u2028ü",
            "x": None,
        },
    },
    {
        "eventId": None,
        "references": [{"kind": "air_waybill", "value": "176-12345675"}],
        "code": "aftership.subtag:InTransit_007",
        "classifier": "EST",
        "occurredAt": "2026-03-05 08:00+0530",
        "location": None,
        "carrierCode": None,
        "detail": None,
    },
    {
        "references": [{"kind": "pro", "value": "PRO-1"}, {"kind": "customer_reference", "value": "PO 778"}],
        "code": "OUT_FOR_DELIVERY",
        "classifier": "ACT",
        "occurredAt": "2026-03-03T12:00:00,123456789-14:00",
        "location": {"city": "Lyon", "country": "FR", "name": None},
        "detail": {},
    },
]

TEXTS = ["", " ", "\t\n", "x", " x ", "x y", "\\u0000"]
CHARACTERS = ["\x00", "\x01", "\x1f", "\x7f", "\x1c", "\x85", "\t", "\n", "\xa0", "\u2028", "\ufeff", "é"]
CODES = [
    *(code.value for code in MilestoneCode),
    " DELIVERED ",
    "Departed",
    "TELEPORTED",
    "canonical:DELIVERED",
    "canonical:TELEPORTED",
    "x12.status:AF",
    "X12.Status:AF",
    "x12.status: AF",
    "x12.status:",
    ":AF",
    "x12..status:AF",
    "a" * 32 + ":X",
    "a" * 33 + ":X",
    "x12.status:" + "A" * 64,
    "x12.status:" + "A" * 65,
    "x12.status:A\x01",
    "x12.status:A:B",
    "DEPARTED\n",
]
LOCODES = ["NLRTM", "nlrtm", "NL RTM", "NLRT1", "NLRT2", " DEHAM ", "NLRTM1", "NLRTM\n", "ÄÄRTM"]
COUNTRIES = ["NL", "nl", "NLD", " DE ", "N", "NL\n", "ÄÖ"]
NON_OBJECTS = [None, True, 0, 1.5, "x", [], ["x"]]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=6,
)


def texts(limit: int) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(TEXTS),
        st.builds(
            lambda before, character, after: before + character + after,
            st.sampled_from(["", "x", " "]),
            st.sampled_from(CHARACTERS),
            st.sampled_from(["", "y", " "]),
        ),
        st.integers(max(limit - 1, 0), limit + 1).map(lambda n: "a" * n),
        st.integers(max(limit - 1, 0), limit + 1).map(lambda n: f" {'a' * n}\t"),
        st.text(max_size=6),
        st.sampled_from(NON_OBJECTS),
    )


# One or two defects in an otherwise readable time, so that every check meets its edge on its own
TIME_DEFECTS = {
    "date": [
        "2024-02-29",
        "2025-02-29",
        "2026-04-31",
        "2026-13-01",
        "2026-00-10",
        "0000-01-01",
        "0001-01-01",
        "9999-12-31",
        "2026-3-02",
        "\u0662\u0660\u0662\u0666-03-02",  # Arabic-Indic digits, which \d matches
    ],
    "separator": [" ", "t", "_", ""],
    "clock": ["24:00:00", "23:60:00", "23:59:60", "7:00:00", "14:05", "14", "14:05:5", "99:99:99"],
    "fraction": [".", ",5", ".1234567", ".123456789", ".1234567890", ",123"],
    "offset": [
        "",
        "z",
        "+0100",
        "-0530",
        "+14:01",
        "-14:01",
        "+15:00",
        "+01:60",
        "+01:75",
        "+24:00",
        "+1:00",
        "+01:00:00",
    ],
    "suffix": ["\n", " ", "x", "\u2028", "Z"],
}
OFFSETS = ["Z", "+00:00", "-00:00", "+14:00", "-14:00", "+13:59", "-13:59", "+05:30", "-04:00"]


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    """Times near the event time window's edges and at the edges of what can be read."""
    day, clock = draw(
        st.one_of(
            st.tuples(st.dates(dt.date(1999, 12, 1), dt.date(2028, 4, 1)), st.times()),
            st.sampled_from(
                [
                    (dt.date(1999, 12, 31), dt.time(23, 59, 59)),
                    (dt.date(2000, 1, 1), dt.time()),
                    (dt.date(2026, 3, 4), dt.time(12)),  # NOW + 1 day: the latest actual
                    (dt.date(2026, 3, 4), dt.time(12, 0, 1)),
                    (dt.date(2028, 3, 2), dt.time(12)),  # NOW + 730 days: the latest plan
                    (dt.date(2028, 3, 2), dt.time(12, 0, 1)),
                    (dt.date(1, 1, 1), dt.time()),
                    (dt.date(9999, 12, 31), dt.time(23, 59, 59, 999999)),
                ]
            ),
            st.tuples(st.dates(), st.times()),
        )
    )
    digits = f"{clock.microsecond:06}{draw(st.integers(0, 999))}"[: draw(st.integers(0, 9))]
    parts = {
        "date": f"{day.year:04}-{day.month:02}-{day.day:02}",
        "separator": "T",
        "clock": f"{clock.hour:02}:{clock.minute:02}:{clock.second:02}",
        "fraction": f".{digits}" if digits else "",
        "offset": draw(
            st.one_of(
                st.sampled_from(OFFSETS),
                st.builds(
                    lambda sign, minutes: f"{sign}{minutes // 60:02}:{minutes % 60:02}",
                    st.sampled_from("+-"),
                    st.integers(0, 14 * 60 + 5),
                ),
            )
        ),
        "suffix": "",
    }
    for part in draw(st.lists(st.sampled_from(sorted(TIME_DEFECTS)), max_size=2)):
        parts[part] = draw(st.sampled_from(TIME_DEFECTS[part]))
    return "".join(parts.values())


def references() -> st.SearchStrategy[Any]:
    reference = st.fixed_dictionaries(
        {},
        optional={
            "kind": st.one_of(st.sampled_from([kind.value for kind in ReferenceKind]), texts(8)),
            "value": st.one_of(st.sampled_from(["BK1", "BK2", " BK1 "]), texts(128)),
            "note": st.just("x"),
        },
    )
    return st.one_of(
        st.lists(st.one_of(reference, st.sampled_from(NON_OBJECTS)), max_size=3),
        st.integers(19, 22).map(lambda n: [{"kind": "booking", "value": f"B{i % 19}"} for i in range(n)]),
        st.sampled_from(NON_OBJECTS),
    )


def nested(depth: int, leaf: Any = 1, *, as_list: bool = False) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if as_list else {"a": value}
    return value


def details() -> st.SearchStrategy[Any]:
    # a detail object is at depth 4 of the message, so 61 levels in it are the most that are allowed
    return st.one_of(
        json_values,
        st.dictionaries(st.text(max_size=3), json_values, max_size=3),
        st.builds(lambda depth: {"d": nested(depth)}, st.integers(60, 62)),
        st.builds(lambda depth: {"d": nested(depth, as_list=True)}, st.integers(60, 62)),
        st.integers(4085, 4089).map(lambda n: {"r": "r" * n}),
        st.integers(4085, 4089).map(lambda n: {"r": "é" * n}),
        st.sampled_from(
            [
                {"a\x00": 1},
                {"a": ["x\x00"]},
                {"a": "\\u0000"},
                {"a": "\\"},
                {"\u0000": None},
                {"a": {"b": "\x00"}},
            ]
        ),
    )


def locations() -> st.SearchStrategy[Any]:
    fields: dict[str, st.SearchStrategy[Any]] = {
        name: texts(limit) | st.none() for name, (_, limit) in LOCATION_FIELDS.items()
    }
    fields["locode"] = st.sampled_from(LOCODES) | fields["locode"]
    fields["country"] = st.sampled_from(COUNTRIES) | fields["country"]
    return st.one_of(
        st.fixed_dictionaries({}, optional=fields),
        st.fixed_dictionaries({"unlocode": st.just("NLRTM")}, optional=fields),
        st.sampled_from(NON_OBJECTS),
    )


Mutation = Callable[[st.DrawFn, dict[str, Any]], None]


def setting(name: str, values: st.SearchStrategy[Any]) -> Mutation:
    def mutate(draw: st.DrawFn, event: dict[str, Any]) -> None:
        event[name] = draw(values)

    mutate.__name__ = f"setting_{name}"
    return mutate


def dropping(draw: st.DrawFn, event: dict[str, Any]) -> None:
    if event:
        event.pop(draw(st.sampled_from(sorted(event))))


def changing_a_reference(draw: st.DrawFn, event: dict[str, Any]) -> None:
    refs = event.get("references")
    if isinstance(refs, list) and refs and isinstance(refs[0], dict):
        refs[0][draw(st.sampled_from(["kind", "value", "extra"]))] = draw(texts(128))


def changing_the_location(draw: st.DrawFn, event: dict[str, Any]) -> None:
    location = event.setdefault("location", {})
    if isinstance(location, dict):
        name = draw(st.sampled_from([*LOCATION_FIELDS, "Locode"]))
        values = {"locode": st.sampled_from(LOCODES), "country": st.sampled_from(COUNTRIES)}
        location[name] = draw(values.get(name, texts(LOCATION_FIELDS.get(name, (None, 64))[1])))


MUTATIONS: list[Mutation] = [
    setting("eventId", texts(128)),
    setting("references", references()),
    setting("code", st.sampled_from(CODES) | texts(97)),
    setting("classifier", st.sampled_from(["PLN", "EST", "ACT", "act", " ACT", "ACTUAL"]) | texts(3)),
    setting("occurredAt", timestamps()),
    setting("occurredAt", timestamps()),
    setting("location", locations()),
    setting("carrierCode", texts(16)),
    setting("detail", details()),
    setting("vessel", json_values),
    dropping,
    changing_a_reference,
    changing_the_location,
]


def rarely(draw: st.DrawFn) -> bool:
    return draw(st.sampled_from([False] * 20 + [True]))


@st.composite
def event_lists(draw: st.DrawFn) -> list[Any]:
    """Valid events with a few changes, mostly to one of them, so that a message is often valid but for
    the one problem (and then read by the fast path until it meets it)."""
    events = [copy.deepcopy(event) for event in draw(st.lists(st.sampled_from(VALID_EVENTS), max_size=4))]
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), max_size=3)) if events else []:
        index = draw(st.integers(0, len(events) - 1))
        if isinstance(events[index], dict):
            mutation(draw, events[index])
        if rarely(draw):
            events[index] = draw(st.sampled_from(NON_OBJECTS))
    return events


def _object(value: dict[str, Any], duplicate: str | None = None) -> str:
    pairs = [f"{json.dumps(key)}: {_json(item)}" for key, item in value.items()]
    if duplicate is not None:
        pairs.append(f"{json.dumps(duplicate)}: null")
    return "{" + ", ".join(pairs) + "}"


def _json(value: Any) -> str:
    return _object(value) if isinstance(value, dict) else json.dumps(value, ensure_ascii=False)


@st.composite
def documents(draw: st.DrawFn) -> Any:
    """A message as bytes, text, or decoded; rarely one of the wrong shape or with a duplicate key."""
    message: dict[str, Any] = {"events": draw(event_lists())}
    shape = draw(st.sampled_from(["plain"] * 30 + ["extra field", "not a list", "unreadable"]))
    if shape == "extra field":
        message["shipments"] = []
    elif shape == "not a list":
        message["events"] = draw(st.sampled_from(NON_OBJECTS) | st.builds(dict))
    elif shape == "unreadable":
        return draw(st.sampled_from([b"[]", b'"x"', b"null", b"{}", b'{"events": [NaN]}', b'{"events": [']))
    encoding = draw(st.sampled_from(["bytes", "bytes", "text", "decoded"]))
    if encoding == "decoded":
        return message
    items = message["events"]
    if isinstance(items, list) and items and isinstance(items[0], dict) and items[0] and rarely(draw):
        first = _object(items[0], duplicate=draw(st.sampled_from(sorted(items[0]))))
        text = '{"events": [' + ", ".join([first, *(_json(item) for item in items[1:])]) + "]}"
    else:
        text = json.dumps(message, ensure_ascii=draw(st.booleans()))
    return text.encode() if encoding == "bytes" else text


def precisely(document: Any) -> ParsedMessage:
    return canonical_json._parse_events_precisely(document, NOW)


def assert_same(found: ParsedMessage, expected: ParsedMessage) -> None:
    assert found == expected
    assert repr(found) == repr(expected)  # time zones, dict order, and everything == does not compare


@settings(max_examples=1000, deadline=None)
@given(documents())
def test_the_fast_path_gives_the_precise_answer(document: Any) -> None:
    assert_same(parse_events(document, now=NOW), precisely(document))


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda mutation: mutation.__name__)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_one_problem_in_a_valid_message(mutation: Mutation, data: st.DataObject) -> None:
    events = [
        copy.deepcopy(event) for event in data.draw(st.lists(st.sampled_from(VALID_EVENTS), min_size=1))
    ]
    mutation(data.draw, events[data.draw(st.integers(0, len(events) - 1))])
    document = json.dumps({"events": events}).encode()
    assert_same(parse_events(document, now=NOW), precisely(document))


@pytest.mark.parametrize("count", [10_000, 10_001])
def test_a_full_message_and_one_too_many(count: int) -> None:
    document = json.dumps({"events": [VALID_EVENTS[i % len(VALID_EVENTS)] for i in range(count)]}).encode()
    assert_same(parse_events(document, now=NOW), precisely(document))


def test_deep_documents_are_refused_without_recursion_errors() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    for document in [
        {"events": [dict(VALID_EVENTS[0], detail=cyclic)]},
        b"[" * 100_000 + b"]" * 100_000,
        json.dumps({"events": [VALID_EVENTS[0]]})[:-3].encode()
        + b', "detail": '
        + b'{"a": ' * 5_000
        + b"1"
        + b"}" * 5_000
        + b"}]}",
        {"events": [dict(VALID_EVENTS[0], detail=nested(100_000))]},
    ]:
        result = parse_events(document, now=NOW)
        assert result.rejected
        assert_same(result, precisely(document))


def test_valid_messages_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(document: Any, now: dt.datetime) -> ParsedMessage:
        raise AssertionError("the precise path was taken")

    monkeypatch.setattr(canonical_json, "_parse_events_precisely", fail)
    for document, count in [
        (json.dumps({"events": VALID_EVENTS}).encode(), len(VALID_EVENTS)),
        (json.dumps({"events": VALID_EVENTS}, ensure_ascii=False), len(VALID_EVENTS)),
        ({"events": VALID_EVENTS}, len(VALID_EVENTS)),
        (b'\xef\xbb\xbf{"events": []}', 0),
    ]:
        result = parse_events(document, now=NOW)
        assert (len(result.events), result.issues) == (count, [])


def test_a_message_with_a_problem_is_read_again_precisely(monkeypatch: pytest.MonkeyPatch) -> None:
    documents: list[Any] = []
    precise = canonical_json._parse_events_precisely

    def record(document: Any, now: dt.datetime) -> ParsedMessage:
        documents.append(document)
        return precise(document, now)

    monkeypatch.setattr(canonical_json, "_parse_events_precisely", record)
    document = json.dumps({"events": [*VALID_EVENTS, dict(VALID_EVENTS[0], classifier="NOW")]}).encode()
    result = parse_events(document, now=NOW)
    assert documents == [document]
    assert len(result.events) == len(VALID_EVENTS)
    assert [issue.position for issue in result.issues] == [f"events[{len(VALID_EVENTS)}].classifier"]


# --- times -------------------------------------------------------------------------------------------------


def _reading(read: Callable[[], Timestamp]) -> tuple[Any, ...]:
    try:
        stamp = read()
    except TimestampError as error:
        return ("refused", str(error))
    return ("read", stamp, repr(stamp), stamp.at.tzinfo, stamp.at.fold)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(timestamps(), st.text(max_size=30)), st.booleans(), st.booleans())
def test_the_fast_timestamp_reading_gives_the_precise_answer(text: str, date_only: bool, naive: bool) -> None:
    found = _reading(
        lambda: canonical_json.parse_timestamp(text, allow_date_only=date_only, allow_naive=naive)
    )
    expected = _reading(
        lambda: canonical_json._parse_timestamp_precisely(text, allow_date_only=date_only, allow_naive=naive)
    )
    assert found == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-02T14:05:00Z",
        "2026-03-02T14:05:00.1+01:00",
        "2026-03-02T14:05:00.123456-14:00",
        "2026-03-02T23:59:59+14:00",
        "2026-03-02T00:00:00-00:30",
    ],
)
def test_the_common_form_is_read_by_the_fast_branch(text: str) -> None:
    fast = canonical_json._common_timestamp(text)
    assert fast is not None
    precise = canonical_json._parse_timestamp_precisely(text, allow_date_only=False, allow_naive=False)
    assert Timestamp(*fast) == precise
    assert fast[0].tzinfo is precise.at.tzinfo is dt.UTC
