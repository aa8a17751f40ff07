"""Pure timeline rules: plain data and an injected clock in, answers out."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

# How far past plan a milestone may happen and still count as on time.
DEFAULT_ON_TIME_TOLERANCE = dt.timedelta(hours=2)


class MilestoneStatus(StrEnum):
    ON_TIME = "on_time"
    LATE = "late"
    PENDING = "pending"


def milestone_status(
    planned_at: dt.datetime | None,
    estimated_at: dt.datetime | None,
    actual_at: dt.datetime | None,
    now: dt.datetime,
    tolerance: dt.timedelta = DEFAULT_ON_TIME_TOLERANCE,
) -> MilestoneStatus:
    """On time, late or pending, judged against the plan.

    - happened: on time when within ``tolerance`` of the plan (or when there was no plan to miss);
    - not yet happened: late once the plan plus tolerance has passed, or when the latest estimate
      already lies beyond it; otherwise pending.
    """
    if planned_at is None:
        return MilestoneStatus.ON_TIME if actual_at is not None else MilestoneStatus.PENDING
    deadline = planned_at + tolerance
    if actual_at is not None:
        return MilestoneStatus.ON_TIME if actual_at <= deadline else MilestoneStatus.LATE
    if now > deadline or (estimated_at is not None and estimated_at > deadline):
        return MilestoneStatus.LATE
    return MilestoneStatus.PENDING
