"""Milestone templates: which milestones a shipment of a mode is planned to pass, and when.

A template step is anchored on the booking's ETD or ETA with an offset; explicit dates from the booking win.
Tenants override the built-in templates per mode (and service level), for everyone or for one account.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from domain.shipments.models import MilestoneCode as M
from domain.shipments.service import PlannedMilestone

Anchor = Literal["etd", "eta"]
Side = Literal["origin", "destination"]


@dataclass(frozen=True, slots=True)
class TemplateStep:
    code: str
    anchor: Anchor
    offset_hours: float
    at: Side


def _steps(*rows: tuple[str, Anchor, float, Side]) -> tuple[TemplateStep, ...]:
    return tuple(TemplateStep(code, anchor, offset, side) for code, anchor, offset, side in rows)


DAY = 24.0

# (mode, service level) → steps; the first template of a mode is its default.
BUILTIN_TEMPLATES: Mapping[tuple[str, str], tuple[TemplateStep, ...]] = {
    ("ocean", "FCL"): _steps(
        (M.BOOKED, "etd", -14 * DAY, "origin"),
        (M.GATE_IN_ORIGIN, "etd", -2 * DAY, "origin"),
        (M.LOADED, "etd", -6, "origin"),
        (M.DEPARTED, "etd", 0, "origin"),
        (M.ARRIVED, "eta", 0, "destination"),
        (M.DISCHARGED, "eta", 12, "destination"),
        (M.CUSTOMS_RELEASED, "eta", 2 * DAY, "destination"),
        (M.GATE_OUT_DESTINATION, "eta", 3 * DAY, "destination"),
        (M.DELIVERED, "eta", 5 * DAY, "destination"),
    ),
    ("ocean", "LCL"): _steps(
        (M.BOOKED, "etd", -14 * DAY, "origin"),
        (M.PICKED_UP, "etd", -7 * DAY, "origin"),
        (M.GATE_IN_ORIGIN, "etd", -3 * DAY, "origin"),
        (M.LOADED, "etd", -6, "origin"),
        (M.DEPARTED, "etd", 0, "origin"),
        (M.ARRIVED, "eta", 0, "destination"),
        (M.DISCHARGED, "eta", 12, "destination"),
        (M.CUSTOMS_RELEASED, "eta", 3 * DAY, "destination"),
        (M.AVAILABLE_FOR_PICKUP, "eta", 4 * DAY, "destination"),
        (M.DELIVERED, "eta", 6 * DAY, "destination"),
    ),
    ("air", "standard"): _steps(
        (M.BOOKED, "etd", -2 * DAY, "origin"),
        (M.PICKED_UP, "etd", -1 * DAY, "origin"),
        (M.GATE_IN_ORIGIN, "etd", -12, "origin"),
        (M.LOADED, "etd", -2, "origin"),
        (M.DEPARTED, "etd", 0, "origin"),
        (M.ARRIVED, "eta", 0, "destination"),
        (M.CUSTOMS_RELEASED, "eta", 12, "destination"),
        (M.OUT_FOR_DELIVERY, "eta", 1 * DAY, "destination"),
        (M.DELIVERED, "eta", 1 * DAY + 6, "destination"),
    ),
    ("road", "FTL"): _steps(
        (M.BOOKED, "etd", -2 * DAY, "origin"),
        (M.PICKUP_ARRIVED, "etd", -1, "origin"),
        (M.PICKED_UP, "etd", 0, "origin"),
        (M.ARRIVED, "eta", -1, "destination"),
        (M.DELIVERED, "eta", 0, "destination"),
    ),
    ("road", "LTL"): _steps(
        (M.BOOKED, "etd", -2 * DAY, "origin"),
        (M.PICKED_UP, "etd", 0, "origin"),
        (M.GATE_IN_ORIGIN, "etd", 4, "origin"),
        (M.DEPARTED, "etd", 8, "origin"),
        (M.ARRIVED, "eta", -12, "destination"),
        (M.OUT_FOR_DELIVERY, "eta", -4, "destination"),
        (M.DELIVERED, "eta", 0, "destination"),
    ),
    ("parcel", "standard"): _steps(
        (M.BOOKED, "etd", -1 * DAY, "origin"),
        (M.PICKED_UP, "etd", 0, "origin"),
        (M.DEPARTED, "etd", 6, "origin"),
        (M.ARRIVED, "eta", -12, "destination"),
        (M.OUT_FOR_DELIVERY, "eta", -6, "destination"),
        (M.DELIVERED, "eta", 0, "destination"),
    ),
    ("rail", "standard"): _steps(
        (M.BOOKED, "etd", -5 * DAY, "origin"),
        (M.GATE_IN_ORIGIN, "etd", -1 * DAY, "origin"),
        (M.LOADED, "etd", -6, "origin"),
        (M.DEPARTED, "etd", 0, "origin"),
        (M.ARRIVED, "eta", 0, "destination"),
        (M.DISCHARGED, "eta", 6, "destination"),
        (M.GATE_OUT_DESTINATION, "eta", 1 * DAY, "destination"),
        (M.DELIVERED, "eta", 2 * DAY, "destination"),
    ),
}


@dataclass(frozen=True, slots=True)
class TemplateOverride:
    """A tenant's own template for a mode (and optionally a service level and one account)."""

    mode: str
    steps: tuple[TemplateStep, ...]
    service_level: str | None = None
    account_id: uuid.UUID | None = None


def choose_template(
    mode: str,
    service_level: str | None,
    account_id: uuid.UUID | None = None,
    overrides: Sequence[TemplateOverride] = (),
) -> tuple[TemplateStep, ...]:
    """The most specific template: account + service level, account, tenant + service level, tenant,
    then the built-in one for the service level, then the mode's default."""

    for account, level in (
        (account_id, service_level),
        (account_id, None),
        (None, service_level),
        (None, None),
    ):
        for override in overrides:
            if (override.mode, override.account_id, override.service_level) == (mode, account, level):
                return override.steps
    if service_level is not None and (mode, service_level) in BUILTIN_TEMPLATES:
        return BUILTIN_TEMPLATES[(mode, service_level)]
    for (template_mode, _), steps in BUILTIN_TEMPLATES.items():
        if template_mode == mode:
            return steps
    raise ValueError(f"no milestone template for mode {mode!r}")


def plan_timeline(
    steps: Sequence[TemplateStep],
    *,
    etd: dt.datetime | None,
    eta: dt.datetime | None,
    origin_locode: str | None,
    destination_locode: str | None,
    explicit: Mapping[str, dt.datetime] | None = None,
) -> list[PlannedMilestone]:
    """Planned milestones from a template: explicit dates first, else anchor + offset, else unplanned."""
    explicit = explicit or {}
    anchors = {"etd": etd, "eta": eta}
    planned = []
    for step in steps:
        anchor_time = anchors[step.anchor]
        when = explicit.get(step.code)
        if when is None and anchor_time is not None:
            when = anchor_time + dt.timedelta(hours=step.offset_hours)
        place = origin_locode if step.at == "origin" else destination_locode
        planned.append(PlannedMilestone(step.code, when, place))
    return planned
