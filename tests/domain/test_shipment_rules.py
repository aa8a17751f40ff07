from __future__ import annotations

import datetime as dt

import pytest

from domain.shipments.rules import MilestoneStatus, milestone_status

PLAN = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("planned", "estimated", "actual", "now", "expected"),
    [
        (PLAN, None, PLAN, PLAN, MilestoneStatus.ON_TIME),
        (PLAN, None, PLAN - 5 * H, PLAN, MilestoneStatus.ON_TIME),
        (PLAN, None, PLAN + 2 * H, PLAN + 9 * H, MilestoneStatus.ON_TIME),  # at the tolerance edge
        (PLAN, None, PLAN + 2 * H + dt.timedelta(seconds=1), PLAN, MilestoneStatus.LATE),
        (PLAN, PLAN + 9 * H, PLAN, PLAN + 9 * H, MilestoneStatus.ON_TIME),  # the actual wins over estimates
        (PLAN, None, None, PLAN - H, MilestoneStatus.PENDING),
        (PLAN, None, None, PLAN + 2 * H, MilestoneStatus.PENDING),
        (PLAN, None, None, PLAN + 3 * H, MilestoneStatus.LATE),
        (PLAN, PLAN + H, None, PLAN - 10 * H, MilestoneStatus.PENDING),
        (PLAN, PLAN + 3 * H, None, PLAN - 10 * H, MilestoneStatus.LATE),  # expected late already
        (None, None, None, PLAN, MilestoneStatus.PENDING),
        (None, PLAN, None, PLAN + 99 * H, MilestoneStatus.PENDING),
        (None, None, PLAN, PLAN, MilestoneStatus.ON_TIME),
    ],
)
def test_milestone_status(
    planned: dt.datetime | None,
    estimated: dt.datetime | None,
    actual: dt.datetime | None,
    now: dt.datetime,
    expected: MilestoneStatus,
) -> None:
    assert milestone_status(planned, estimated, actual, now) == expected


def test_tolerance_is_a_parameter() -> None:
    assert milestone_status(PLAN, None, PLAN + H, PLAN, tolerance=dt.timedelta(0)) == MilestoneStatus.LATE
