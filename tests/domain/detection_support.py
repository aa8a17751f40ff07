"""Builders for detection states: plain data, no database."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace
from typing import Any

from domain.exceptions.models import RuleMode
from domain.exceptions.rules import RuleConfig
from domain.exceptions.state import EventView, LegView, MilestoneView, NoticeView, ShipmentState
from domain.exceptions.taxonomy import ExceptionType, validate_parameters

T0 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
ACCOUNT = uuid.UUID("00000000-0000-0000-0000-00000000a001")


def milestone(
    code: str,
    sequence: int,
    *,
    planned: dt.datetime | None = None,
    estimated: dt.datetime | None = None,
    actual: dt.datetime | None = None,
    at: str | None = None,
) -> MilestoneView:
    return MilestoneView(
        code,
        sequence,
        at,
        planned,
        planned,
        "booking" if planned else None,
        estimated,
        "carrier" if estimated else None,
        actual,
        "carrier" if actual else None,
    )


_counter = iter(range(1, 10**9))


def event(
    code: str | None,
    *,
    classifier: str = "ACT",
    at: dt.datetime = T0,
    received: dt.datetime | None = None,
    signals: tuple[str, ...] = (),
    place: str | None = None,
    raw: str = "X1",
    reason: str | None = None,
    unknown: tuple[str, ...] = (),
    version: dt.datetime | None = None,
) -> EventView:
    return EventView(
        id=uuid.UUID(int=next(_counter)),
        source="x12",
        classifier=classifier,
        milestone_code=code,
        raw_code=raw,
        occurred_at=at,
        received_at=received or at,
        raw_reason=reason,
        code_system="x12.status",
        signals=signals,
        unknown_codes=unknown,
        location_locode=place,
        version_at=version,
    )


def ocean_milestones(**overrides: dict[str, Any]) -> tuple[MilestoneView, ...]:
    """BOOKED (T0, Shanghai), DEPARTED (+4 d), ARRIVED (+30 d, Rotterdam), DELIVERED (+34 d)."""
    plan = [
        ("BOOKED", 1, T0, "CNSHA"),
        ("DEPARTED", 2, T0 + 96 * H, "CNSHA"),
        ("ARRIVED", 3, T0 + 720 * H, "NLRTM"),
        ("DELIVERED", 4, T0 + 816 * H, "NLRTM"),
    ]
    return tuple(
        milestone(code, sequence, planned=planned, at=place, **overrides.get(code, {}))
        for code, sequence, planned, place in plan
    )


def shipment(**changes: Any) -> ShipmentState:
    base = ShipmentState(
        id=uuid.UUID("00000000-0000-0000-0000-000000000501"),
        account_id=ACCOUNT,
        mode="ocean",
        status="in_transit",
        created_at=T0 - 24 * H,
        carrier_code="MAEU",
        origin_locode="CNSHA",
        destination_locode="NLRTM",
        milestones=ocean_milestones(),
        legs=(LegView(1, "ocean", "MAEU", "CNSHA", "NLRTM", "MAERSK KOLKATA", "245W"),),
    )
    return replace(base, **changes)


def params(exception_type: ExceptionType, **overrides: Any) -> dict[str, Any]:
    return validate_parameters(exception_type, overrides)


def rule(
    exception_type: ExceptionType,
    *,
    name: str = "default",
    mode: RuleMode = RuleMode.ENABLED,
    version: int = 1,
    scope: dict[str, Any] | None = None,
    **parameters: Any,
) -> RuleConfig:
    return RuleConfig(
        uuid.uuid5(uuid.NAMESPACE_URL, f"{exception_type}/{name}/{version}"),
        exception_type,
        name,
        version,
        mode,
        params(exception_type, **parameters),
        scope or {},
    )


def notice(place: str, starts: dt.datetime, ends: dt.datetime, cause: str = "strike") -> NoticeView:
    return NoticeView(uuid.UUID(int=next(_counter)), cause, f"{cause} at {place}", place, starts, ends)
