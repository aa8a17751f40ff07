from __future__ import annotations

import datetime as dt
import uuid

import pytest

from domain.shipments.models import Mode
from domain.shipments.service import PlannedMilestone
from domain.shipments.templates import (
    BUILTIN_TEMPLATES,
    TemplateOverride,
    TemplateStep,
    choose_template,
    plan_timeline,
)

ETD = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
ETA = dt.datetime(2026, 4, 5, 6, 0, tzinfo=dt.UTC)
ACCOUNT = uuid.UUID(int=7)
TENANT_FCL = (TemplateStep("BOOKED", "etd", -1, "origin"),)
TENANT_OCEAN = (TemplateStep("DEPARTED", "etd", 0, "origin"),)
ACCOUNT_OCEAN = (TemplateStep("ARRIVED", "eta", 0, "destination"),)


def test_every_mode_has_a_builtin_template() -> None:
    assert {mode for mode, _ in BUILTIN_TEMPLATES} == set(Mode)
    for mode in Mode:
        assert choose_template(mode, None) == next(s for (m, _), s in BUILTIN_TEMPLATES.items() if m == mode)


def test_service_level_picks_the_builtin_variant() -> None:
    assert choose_template("ocean", "LCL") == BUILTIN_TEMPLATES[("ocean", "LCL")]
    assert choose_template("road", "LTL") == BUILTIN_TEMPLATES[("road", "LTL")]
    assert choose_template("road", "express") == BUILTIN_TEMPLATES[("road", "FTL")]


@pytest.mark.parametrize(
    ("service_level", "account_id", "expected"),
    [
        ("FCL", None, TENANT_FCL),
        ("LCL", None, TENANT_OCEAN),
        (None, None, TENANT_OCEAN),
        ("FCL", ACCOUNT, ACCOUNT_OCEAN),
        ("LCL", uuid.UUID(int=8), TENANT_OCEAN),
    ],
)
def test_overrides_most_specific_first(
    service_level: str | None, account_id: uuid.UUID | None, expected: tuple[TemplateStep, ...]
) -> None:
    overrides = [
        TemplateOverride("ocean", TENANT_FCL, service_level="FCL"),
        TemplateOverride("ocean", TENANT_OCEAN),
        TemplateOverride("ocean", ACCOUNT_OCEAN, account_id=ACCOUNT),
        TemplateOverride("air", ACCOUNT_OCEAN),
    ]
    assert choose_template("ocean", service_level, account_id, overrides) == expected


def test_plan_uses_offsets_from_etd_and_eta_and_explicit_dates_first() -> None:
    explicit = {"CUSTOMS_RELEASED": dt.datetime(2026, 4, 6, 9, 30, tzinfo=dt.UTC)}
    plan = plan_timeline(
        BUILTIN_TEMPLATES[("ocean", "FCL")],
        etd=ETD,
        eta=ETA,
        origin_locode="CNSHA",
        destination_locode="NLRTM",
        explicit=explicit,
    )
    assert plan == [
        PlannedMilestone("BOOKED", dt.datetime(2026, 2, 24, 12, 0, tzinfo=dt.UTC), "CNSHA"),
        PlannedMilestone("GATE_IN_ORIGIN", dt.datetime(2026, 3, 8, 12, 0, tzinfo=dt.UTC), "CNSHA"),
        PlannedMilestone("LOADED", dt.datetime(2026, 3, 10, 6, 0, tzinfo=dt.UTC), "CNSHA"),
        PlannedMilestone("DEPARTED", ETD, "CNSHA"),
        PlannedMilestone("ARRIVED", ETA, "NLRTM"),
        PlannedMilestone("DISCHARGED", dt.datetime(2026, 4, 5, 18, 0, tzinfo=dt.UTC), "NLRTM"),
        PlannedMilestone("CUSTOMS_RELEASED", dt.datetime(2026, 4, 6, 9, 30, tzinfo=dt.UTC), "NLRTM"),
        PlannedMilestone("GATE_OUT_DESTINATION", dt.datetime(2026, 4, 8, 6, 0, tzinfo=dt.UTC), "NLRTM"),
        PlannedMilestone("DELIVERED", dt.datetime(2026, 4, 10, 6, 0, tzinfo=dt.UTC), "NLRTM"),
    ]


def test_without_an_anchor_steps_stay_unplanned() -> None:
    plan = plan_timeline(
        BUILTIN_TEMPLATES[("road", "FTL")], etd=ETD, eta=None, origin_locode=None, destination_locode="USCHI"
    )
    assert [(p.code, p.planned_at) for p in plan] == [
        ("BOOKED", dt.datetime(2026, 3, 8, 12, 0, tzinfo=dt.UTC)),
        ("PICKUP_ARRIVED", dt.datetime(2026, 3, 10, 11, 0, tzinfo=dt.UTC)),
        ("PICKED_UP", ETD),
        ("ARRIVED", None),
        ("DELIVERED", None),
    ]
