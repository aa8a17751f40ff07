from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from domain.shipments.timeline import (
    MilestoneState,
    PlanStep,
    TimelineEvent,
    build_timeline,
)
from domain.tracking.canonical import Classifier

T = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
PLAN = [
    PlanStep("DEPARTED", 1, "CNSHA", T, "booking"),
    PlanStep("TRANSSHIPMENT_ARRIVED", 2, "SGSIN", T + 100 * H, "booking"),
    PlanStep("ARRIVED", 3, "NLRTM", T + 500 * H, "booking"),
    PlanStep("DELIVERED", 4, "NLRTM", T + 600 * H, "booking"),
]


def ev(key: str, classifier: Classifier, milestone: str, at: dt.datetime, **kw: object) -> TimelineEvent:
    return TimelineEvent(
        key=key,
        classifier=classifier,
        milestone=milestone,
        occurred_at=at,
        source=kw.pop("source", "dcsa"),
        **kw,
    )  # type: ignore[arg-type]


ACT, EST, PLN = Classifier.ACTUAL, Classifier.ESTIMATED, Classifier.PLANNED


def test_plan_only() -> None:
    assert build_timeline(PLAN, []) == [
        MilestoneState("DEPARTED", 1, "CNSHA", T, "booking"),
        MilestoneState("TRANSSHIPMENT_ARRIVED", 2, "SGSIN", T + 100 * H, "booking"),
        MilestoneState("ARRIVED", 3, "NLRTM", T + 500 * H, "booking"),
        MilestoneState("DELIVERED", 4, "NLRTM", T + 600 * H, "booking"),
    ]


def test_actual_estimate_and_replan_land_on_their_milestones() -> None:
    timeline = build_timeline(
        PLAN,
        [
            ev("a", ACT, "DEPARTED", T + 2 * H, utc_offset_minutes=480),
            ev("b", EST, "ARRIVED", T + 530 * H),
            ev("c", PLN, "DELIVERED", T + 640 * H, source="x12"),
        ],
    )
    assert timeline[0] == MilestoneState(
        "DEPARTED", 1, "CNSHA", T, "booking", None, None, T + 2 * H, "dcsa", 480, actual_event_key="a"
    )
    assert (timeline[2].estimated_at, timeline[2].estimated_source) == (T + 530 * H, "dcsa")
    assert (timeline[3].planned_at, timeline[3].planned_source) == (T + 640 * H, "x12")
    # each milestone names the events that won it
    assert (timeline[2].estimated_event_key, timeline[3].planned_event_key) == ("b", "c")


def test_first_actual_wins_and_latest_issued_estimate_wins() -> None:
    timeline = build_timeline(
        PLAN,
        [
            ev("late-dup", ACT, "DEPARTED", T + 5 * H, source="aftership"),
            ev("first", ACT, "DEPARTED", T + 3 * H),
            ev("old-est", EST, "ARRIVED", T + 560 * H, version=T),
            ev("new-est", EST, "ARRIVED", T + 520 * H, version=T + 10 * H),
        ],
    )
    assert (timeline[0].actual_at, timeline[0].actual_source) == (T + 3 * H, "dcsa")
    assert timeline[2].estimated_at == T + 520 * H


def test_unversioned_estimates_keep_the_more_pessimistic_one() -> None:
    timeline = build_timeline(
        PLAN, [ev("e1", EST, "ARRIVED", T + 520 * H), ev("e2", EST, "ARRIVED", T + 540 * H)]
    )
    assert timeline[2].estimated_at == T + 540 * H


def test_repeated_codes_match_by_location_and_unplanned_codes_are_appended_in_time_order() -> None:
    plan = [*PLAN, PlanStep("TRANSSHIPMENT_ARRIVED", 5, "LKCMB", T + 200 * H, "booking")]
    timeline = build_timeline(
        plan,
        [
            ev("t2", ACT, "TRANSSHIPMENT_ARRIVED", T + 210 * H, location_locode="LKCMB"),
            ev("t1", ACT, "TRANSSHIPMENT_ARRIVED", T + 101 * H, location_locode="SGSIN"),
            ev("hold", ACT, "CUSTOMS_HOLD", T + 505 * H, location_locode="NLRTM"),
            ev("disc", ACT, "DISCHARGED", T + 502 * H, location_locode="NLRTM"),
        ],
    )
    assert [(m.code, m.sequence, m.actual_at) for m in timeline] == [
        ("DEPARTED", 1, None),
        ("TRANSSHIPMENT_ARRIVED", 2, T + 101 * H),
        ("ARRIVED", 3, None),
        ("DELIVERED", 4, None),
        ("TRANSSHIPMENT_ARRIVED", 5, T + 210 * H),
        ("DISCHARGED", 100, T + 502 * H),
        ("CUSTOMS_HOLD", 101, T + 505 * H),
    ]


def timeline_events(*, hours: int, versions: int, max_size: int) -> st.SearchStrategy[list[TimelineEvent]]:
    return st.lists(
        st.builds(
            ev,
            key=st.text(alphabet="abcdefgh", min_size=1, max_size=4),
            classifier=st.sampled_from([ACT, EST, PLN]),
            milestone=st.sampled_from(
                ["DEPARTED", "ARRIVED", "DELIVERED", "CUSTOMS_HOLD", "TRANSSHIPMENT_ARRIVED"]
            ),
            at=st.integers(0, hours).map(lambda h: T + h * H),
            location_locode=st.sampled_from([None, "SGSIN", "NLRTM", "LKCMB"]),
            version=st.one_of(st.none(), st.integers(0, versions).map(lambda h: T + h * H)),
            source=st.sampled_from(["dcsa", "x12"]),
            utc_offset_minutes=st.sampled_from([None, 60, 480]),
        ),
        max_size=max_size,
        unique_by=lambda e: e.key,
    )


events = timeline_events(hours=1000, versions=50, max_size=25)


@given(events, st.randoms())
def test_the_timeline_does_not_depend_on_arrival_order(batch: list[TimelineEvent], rnd: object) -> None:
    shuffled = list(batch)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert build_timeline(PLAN, shuffled) == build_timeline(PLAN, batch)


@given(events)
def test_repeating_events_changes_nothing(batch: list[TimelineEvent]) -> None:
    assert build_timeline(PLAN, batch + batch) == build_timeline(PLAN, batch)
