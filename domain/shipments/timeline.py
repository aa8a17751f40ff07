"""Building a shipment's timeline from its plan and every event it has received.

The timeline is a function of the *set* of events, never of their arrival order, so a late, duplicated or
reordered feed gives the same answer as a clean one. Per milestone and classifier one event wins:

- ACT: the earliest time it is reported to have happened (later duplicates from other sources don't move it);
- EST and PLN: the most recently issued one when the source says when it issued it (``version``: DCSA
  ``eventUpdatedDateTime``), otherwise the latest time announced — when we cannot tell which estimate is
  newer, we keep the more pessimistic one.
Ties break on the event's dedup key, so the choice is total.

A code planned more than once (transshipments) is matched by location, else to its first planned instance.
Codes that are not in the plan become unplanned milestones after the planned ones, in time order.

Each milestone keeps which events won (their keys, and the versions of the plan and estimate), so that
capture can *advance* a timeline by comparing new events with the winners alone, in one set-based
statement for a whole message (``domain/tracking/service.py`` ``_ADVANCE``, the same rules in SQL) — the
same answer as this rebuild from every event, as long as no event was withdrawn or replaced meanwhile
(tested with generated feeds).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from domain.tracking.canonical import Classifier

UNPLANNED_SEQUENCE_START = 100
_OLDEST = dt.datetime.min.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class PlanStep:
    code: str
    sequence: int
    location_locode: str | None = None
    planned_at: dt.datetime | None = None
    planned_source: str | None = None


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    key: str  # the event's dedup key: unique, and the final tie-break
    classifier: Classifier
    milestone: str
    occurred_at: dt.datetime
    source: str
    location_locode: str | None = None
    utc_offset_minutes: int | None = None
    version: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class MilestoneState:
    code: str
    sequence: int
    location_locode: str | None = None
    planned_at: dt.datetime | None = None
    planned_source: str | None = None
    estimated_at: dt.datetime | None = None
    estimated_source: str | None = None
    actual_at: dt.datetime | None = None
    actual_source: str | None = None
    utc_offset_minutes: int | None = None
    # the winning events: a later event only needs comparing with these (None: nothing won, e.g. the plan
    # is still the booked baseline)
    planned_event_key: str | None = None
    planned_version_at: dt.datetime | None = None
    estimated_event_key: str | None = None
    estimated_version_at: dt.datetime | None = None
    actual_event_key: str | None = None


def _later_issue_wins(event: TimelineEvent) -> tuple[dt.datetime, dt.datetime, str]:
    return (event.version or _OLDEST, event.occurred_at, event.key)


def _earliest_wins(event: TimelineEvent) -> tuple[dt.datetime, str]:
    return (event.occurred_at, event.key)


def build_timeline(plan: Sequence[PlanStep], events: Iterable[TimelineEvent]) -> list[MilestoneState]:
    instances: dict[int, MilestoneState] = {
        step.sequence: MilestoneState(
            step.code, step.sequence, step.location_locode, step.planned_at, step.planned_source
        )
        for step in plan
    }
    by_code = _sequences_by_code(instances.values())

    assigned: dict[int, list[TimelineEvent]] = defaultdict(list)
    unplanned: dict[str, list[TimelineEvent]] = defaultdict(list)
    for event in events:
        target = _target(instances, by_code, event)
        if target is None:
            unplanned[event.milestone].append(event)
        else:
            assigned[target].append(event)

    next_sequence = max([UNPLANNED_SEQUENCE_START - 1, *instances]) + 1
    first_seen = {code: min(_earliest_wins(e) for e in group) for code, group in unplanned.items()}
    for code in sorted(unplanned, key=lambda c: first_seen[c]):
        group = unplanned[code]
        earliest = min(group, key=_earliest_wins)
        instances[next_sequence] = MilestoneState(code, next_sequence, earliest.location_locode)
        assigned[next_sequence] = group
        next_sequence += 1

    for sequence, group in assigned.items():
        instances[sequence] = _apply(instances[sequence], group)
    return [instances[s] for s in sorted(instances)]


def _sequences_by_code(planned: Iterable[MilestoneState]) -> dict[str, list[int]]:
    by_code: dict[str, list[int]] = defaultdict(list)
    for state in sorted(planned, key=lambda s: s.sequence):
        by_code[state.code].append(state.sequence)
    return by_code


def _target(
    planned: Mapping[int, MilestoneState], by_code: Mapping[str, list[int]], event: TimelineEvent
) -> int | None:
    """The planned milestone an event lands on: the first of its code at its location, else the first of its
    code; ``None`` when its code is not planned."""
    candidates = by_code.get(event.milestone)
    if not candidates:
        return None
    at_location = [s for s in candidates if planned[s].location_locode == event.location_locode]
    return at_location[0] if event.location_locode and at_location else candidates[0]


def _apply(state: MilestoneState, events: list[TimelineEvent]) -> MilestoneState:
    """The planned ``state`` with, per classifier, the winner among ``events``."""
    actuals = [e for e in events if e.classifier == Classifier.ACTUAL]
    estimates = [e for e in events if e.classifier == Classifier.ESTIMATED]
    plans = [e for e in events if e.classifier == Classifier.PLANNED]
    if plans:
        plan = max(plans, key=_later_issue_wins)
        state = replace(
            state,
            planned_at=plan.occurred_at,
            planned_source=plan.source,
            planned_event_key=plan.key,
            planned_version_at=plan.version,
        )
    if estimates:
        estimate = max(estimates, key=_later_issue_wins)
        state = replace(
            state,
            estimated_at=estimate.occurred_at,
            estimated_source=estimate.source,
            estimated_event_key=estimate.key,
            estimated_version_at=estimate.version,
        )
    if actuals:
        actual = min(actuals, key=_earliest_wins)
        state = replace(
            state,
            actual_at=actual.occurred_at,
            actual_source=actual.source,
            utc_offset_minutes=actual.utc_offset_minutes,
            actual_event_key=actual.key,
        )
    return state
