"""What each live subscriber hears (pure): which outbox rows become changes, and which changes an interest
matches — the tenant is the hub's partition, everything else is decided here."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from typing import Any

import pytest

from api.live import Change, Interest, changes_of, is_live_topic
from domain.exceptions.models import ShipmentException
from domain.outbox.repository import OutboxRow
from domain.shipments.models import Shipment
from domain.tracking.service import TIMELINE_CHANGED
from domain.workflow import topics

AT = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)
ACCOUNT, OTHER_ACCOUNT = uuid.uuid4(), uuid.uuid4()
SHIPMENT, OTHER_SHIPMENT = uuid.uuid4(), uuid.uuid4()
EXCEPTION = uuid.uuid4()


def exception_payload(exception_id: uuid.UUID = EXCEPTION, **changes: Any) -> dict[str, Any]:
    return {
        "exception_id": str(exception_id),
        "shipment_id": str(SHIPMENT),
        "account_id": str(ACCOUNT),
        "type": "MILESTONE_LATE",
        "category": "delay",
        "status": "open",
        "severity": "high",
        **changes,
    }


def rows(*topic_payloads: tuple[str, dict[str, Any]]) -> list[OutboxRow]:
    return [OutboxRow(n, topic, payload, AT) for n, (topic, payload) in enumerate(topic_payloads, start=1)]


SHIPMENTS = {SHIPMENT: Shipment(id=SHIPMENT, account_id=ACCOUNT)}
EXCEPTIONS = {EXCEPTION: ShipmentException(id=EXCEPTION, account_id=ACCOUNT, shadow=False)}


def test_timeline_and_exception_rows_become_changes_with_the_payloads_facts() -> None:
    found = changes_of(
        rows(
            (TIMELINE_CHANGED, {"shipment_id": str(SHIPMENT), "status": "in_transit"}),
            (topics.OPENED, exception_payload()),
            ("exception.some_future_topic", exception_payload(severity="low")),
        ),
        EXCEPTIONS,
        SHIPMENTS,
    )
    assert found == [
        Change(1, TIMELINE_CHANGED, AT, SHIPMENT, ACCOUNT),
        Change(2, topics.OPENED, AT, SHIPMENT, ACCOUNT, EXCEPTION, "MILESTONE_LATE", "delay", "high"),
        Change(
            3,
            "exception.some_future_topic",
            AT,
            SHIPMENT,
            ACCOUNT,
            EXCEPTION,
            "MILESTONE_LATE",
            "delay",
            "low",
        ),
    ]


def test_rows_nobody_should_hear_about_are_left_out() -> None:
    shadow, gone = uuid.uuid4(), uuid.uuid4()
    exceptions = {**EXCEPTIONS, shadow: ShipmentException(id=shadow, account_id=ACCOUNT, shadow=True)}
    found = changes_of(
        rows(
            (TIMELINE_CHANGED, {"shipment_id": str(SHIPMENT), "reason": "re-evaluate"}),  # nothing changed
            (TIMELINE_CHANGED, {"shipment_id": str(OTHER_SHIPMENT), "status": "delivered"}),  # not readable
            (TIMELINE_CHANGED, {"shipment_id": "not-a-uuid"}),
            (TIMELINE_CHANGED, {}),
            (topics.OPENED, exception_payload(shadow)),
            (topics.OPENED, exception_payload(gone)),
            (topics.OPENED, exception_payload(exception_id=None)),  # type: ignore[arg-type]
        ),
        exceptions,
        SHIPMENTS,
    )
    assert found == []


def test_only_a_comment_for_the_customer_is_customer_visible_and_staff_changes_are_not() -> None:
    found = changes_of(
        rows(
            (topics.COMMENTED, exception_payload(customer_visible=True)),
            (topics.COMMENTED, exception_payload(customer_visible=False)),
            (topics.COMMENTED, exception_payload()),
            (topics.ACKNOWLEDGED, exception_payload()),
            (topics.ASSIGNED, exception_payload()),
            (topics.ESCALATED, exception_payload()),
        ),
        EXCEPTIONS,
        SHIPMENTS,
    )
    # the decision is domain.exceptions.rules.customer_sees_change, shared with notifications
    assert [change.customer_visible for change in found] == [True, False, False, True, False, False]


def test_live_topics_are_every_exception_topic_and_timeline_changes() -> None:
    assert all(is_live_topic(topic) for topic in topics.ALL_TOPICS)
    assert is_live_topic(TIMELINE_CHANGED)
    assert is_live_topic("exception.added_next_year")
    assert not is_live_topic("jobs.replay")
    assert not is_live_topic("shipment.created")


def change(**fields: Any) -> Change:
    base: dict[str, Any] = {
        "outbox_id": 1,
        "topic": topics.OPENED,
        "at": AT,
        "shipment_id": SHIPMENT,
        "account_id": ACCOUNT,
        "exception_id": EXCEPTION,
        "type": "MILESTONE_LATE",
        "category": "delay",
        "severity": "high",
    }
    return Change(**{**base, **fields})


TIMELINE = change(topic=TIMELINE_CHANGED, exception_id=None, type=None, category=None, severity=None)


@pytest.mark.parametrize(
    ("interest", "heard"),
    [
        # staff on exceptionEvents: every exception change, no timeline
        (Interest(exceptions=True, timeline=False), {"exception", "other account", "internal comment"}),
        # a shipper: their account's, and not internal comments
        (Interest(exceptions=True, timeline=False, account_id=ACCOUNT), {"exception"}),
        (Interest(exceptions=True, timeline=False, account_id=OTHER_ACCOUNT), {"other account"}),
        # shipmentUpdates with exception read: both kinds, one shipment
        (
            Interest(exceptions=True, timeline=True, shipment_id=SHIPMENT),
            {"exception", "timeline", "internal comment"},
        ),
        # ... without exception read (a partner with shipments:read only): the timeline
        (Interest(exceptions=False, timeline=True, shipment_id=SHIPMENT), {"timeline"}),
        (Interest(exceptions=True, timeline=True, shipment_id=OTHER_SHIPMENT), {"other account"}),
        # filters
        (Interest(exceptions=True, timeline=False, topics=frozenset({topics.RESOLVED})), set()),
        (
            Interest(exceptions=True, timeline=False, topics=frozenset({topics.OPENED, topics.COMMENTED})),
            {"exception", "other account", "internal comment"},
        ),
        (Interest(exceptions=True, timeline=False, severities=frozenset({"low"})), {"other account"}),
        (Interest(exceptions=True, timeline=False, categories=frozenset({"customs"})), set()),
        (
            Interest(
                exceptions=True, timeline=False, types=frozenset({"MILESTONE_LATE"}), account_id=ACCOUNT
            ),
            {"exception"},
        ),
    ],
)
def test_an_interest_hears_exactly_its_changes(interest: Interest, heard: set[str]) -> None:
    changes = {
        "exception": change(),
        "timeline": TIMELINE,
        "other account": change(
            account_id=OTHER_ACCOUNT, shipment_id=OTHER_SHIPMENT, exception_id=uuid.uuid4(), severity="low"
        ),
        "internal comment": change(topic=topics.COMMENTED, customer_visible=False),
    }
    assert {name for name, c in changes.items() if interest.matches(c)} == heard


def test_an_empty_filter_matches_everything_and_each_given_one_narrows() -> None:
    values = {"topics": topics.OPENED, "types": "MILESTONE_LATE", "severities": "high", "categories": "delay"}
    for chosen in itertools.chain.from_iterable(itertools.combinations(values, n) for n in range(5)):
        matching = Interest(exceptions=True, timeline=False, **{k: frozenset({values[k]}) for k in chosen})
        assert matching.matches(change())
        for key in chosen:
            wrong = {k: frozenset({values[k] if k != key else "nope"}) for k in chosen}
            assert not Interest(exceptions=True, timeline=False, **wrong).matches(change())
