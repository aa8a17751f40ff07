"""The exception types Milepost detects: their category, what they key on, and their default rule.

A type is the unit of configuration: a tenant's rules (``rule`` rows) set each type's thresholds and scope,
and a new tenant starts with :data:`DEFAULT_RULES`. Parameters are plain JSON so tenants edit them as data;
:func:`validate_parameters` checks a rule change against the type's parameter spec before it is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

from domain.exceptions.models import Category
from domain.shipments.models import MilestoneCode, Mode


class ExceptionType(StrEnum):
    MILESTONE_LATE = "MILESTONE_LATE"
    MILESTONE_MISSED = "MILESTONE_MISSED"
    ETA_SLIPPAGE = "ETA_SLIPPAGE"
    SLA_AT_RISK = "SLA_AT_RISK"
    NO_MOVEMENT = "NO_MOVEMENT"
    LOST_AFTER_HANDOFF = "LOST_AFTER_HANDOFF"
    CUSTOMS_HOLD = "CUSTOMS_HOLD"
    DOCUMENTS_MISSING = "DOCUMENTS_MISSING"
    DAMAGE_REPORTED = "DAMAGE_REPORTED"
    LOSS_REPORTED = "LOSS_REPORTED"
    DELIVERY_FAILED = "DELIVERY_FAILED"
    RETURN_TO_SENDER = "RETURN_TO_SENDER"
    ROUTE_DEVIATION = "ROUTE_DEVIATION"
    CARRIER_DISRUPTION = "CARRIER_DISRUPTION"
    EXTERNAL_DISRUPTION = "EXTERNAL_DISRUPTION"
    DATA_INCONSISTENCY = "DATA_INCONSISTENCY"


@dataclass(frozen=True)
class Parameter:
    """One threshold of a type: its JSON kind, default, and bounds (hours, counts)."""

    kind: type  # int, float, bool, str, list or dict
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""
    items: Callable[[str, Any], None] | None = None  # checks each element of a list


@dataclass(frozen=True)
class TypeSpec:
    type: ExceptionType
    category: Category
    description: str
    parameters: Mapping[str, Parameter] = field(default_factory=dict)


class ParameterError(ValueError):
    """A rule's parameters do not fit its type; the message names the parameter and why."""


def _requirement(where: str, item: Any) -> None:
    """A document requirement: ``{"document", "milestone", "offset_hours", "modes"?, "accounts"?}``."""
    if not isinstance(item, dict):
        raise ParameterError(f"{where}: expected an object")
    unknown = sorted(set(item) - {"document", "milestone", "offset_hours", "modes", "accounts"})
    if unknown:
        raise ParameterError(f"{where}: unknown key(s) {', '.join(unknown)}")
    document = item.get("document")
    if not isinstance(document, str) or not document or not document.replace("_", "").isalnum():
        raise ParameterError(f"{where}.document: expected a document type such as commercial_invoice")
    if item.get("milestone") not in set(MilestoneCode):
        raise ParameterError(f"{where}.milestone: {item.get('milestone')!r} is not a milestone code")
    offset = item.get("offset_hours", 0)
    if not isinstance(offset, int | float) or isinstance(offset, bool) or abs(offset) > 24 * 90:
        raise ParameterError(f"{where}.offset_hours: expected hours within ±2160")
    for key in ("modes", "accounts"):
        values = item.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ParameterError(f"{where}.{key}: expected a list of strings")


def _milestone_code(where: str, item: Any) -> None:
    if item not in set(MilestoneCode):
        raise ParameterError(f"{where}: {item!r} is not a milestone code")


_HOURS_PER_MODE = {Mode.OCEAN: 96, Mode.AIR: 24, Mode.ROAD: 24, Mode.PARCEL: 48, Mode.RAIL: 72}

TYPES: dict[ExceptionType, TypeSpec] = {
    spec.type: spec
    for spec in (
        TypeSpec(
            ExceptionType.MILESTONE_LATE,
            Category.DELAY,
            "The latest estimate of a milestone lies beyond its plan plus a tolerance.",
            {
                "tolerance_hours": Parameter(float, 6, 0, 24 * 30, "how far past plan an estimate may lie"),
                "milestones": Parameter(
                    list, [], description="milestone codes to watch; empty: all", items=_milestone_code
                ),
            },
        ),
        TypeSpec(
            ExceptionType.MILESTONE_MISSED,
            Category.DELAY,
            "A milestone's planned time plus a grace period has passed and it has not happened.",
            {
                "grace_hours": Parameter(float, 6, 0, 24 * 30, "how long after plan we wait for the actual"),
                "milestones": Parameter(
                    list, [], description="milestone codes to watch; empty: all", items=_milestone_code
                ),
            },
        ),
        TypeSpec(
            ExceptionType.ETA_SLIPPAGE,
            Category.DELAY,
            "Successive estimates of the arrival or delivery keep moving later.",
            {
                "min_slips": Parameter(int, 2, 1, 50, "how many later-moving estimates in a row"),
                "min_total_slip_hours": Parameter(float, 12, 0, 24 * 60, "how far they moved in all"),
                "milestones": Parameter(
                    list, ["ARRIVED", "DELIVERED"], description="milestones watched", items=_milestone_code
                ),
            },
        ),
        TypeSpec(
            ExceptionType.SLA_AT_RISK,
            Category.DELAY,
            "The expected delivery lies beyond the delivery promised to the customer.",
            {"margin_hours": Parameter(float, 0, -24 * 30, 24 * 30, "slack kept before the promise")},
        ),
        TypeSpec(
            ExceptionType.NO_MOVEMENT,
            Category.DELAY,
            "No event has arrived for a shipment in transit for longer than its mode allows.",
            {"hours_by_mode": Parameter(dict, dict(_HOURS_PER_MODE), 1, 24 * 60, "silence allowed per mode")},
        ),
        TypeSpec(
            ExceptionType.LOST_AFTER_HANDOFF,
            Category.LOSS,
            "Booked or label created, but no carrier scan followed within the allowed time.",
            {"hours": Parameter(float, 48, 1, 24 * 30, "time from hand-off to the first carrier scan")},
        ),
        TypeSpec(
            ExceptionType.CUSTOMS_HOLD,
            Category.CUSTOMS,
            "Customs holds the shipment and has not released it.",
            {},
        ),
        TypeSpec(
            ExceptionType.DOCUMENTS_MISSING,
            Category.DOCUMENTATION,
            "A required document was not received by its deadline (or the carrier asks for it).",
            {
                "requirements": Parameter(
                    list,
                    [
                        {
                            "document": "commercial_invoice",
                            "milestone": "DEPARTED",
                            "offset_hours": -48,
                            "modes": ["ocean", "air"],
                        },
                        {
                            "document": "packing_list",
                            "milestone": "DEPARTED",
                            "offset_hours": -48,
                            "modes": ["ocean"],
                        },
                    ],
                    description="documents with a deadline relative to a milestone's plan, per mode",
                    items=_requirement,
                )
            },
        ),
        TypeSpec(ExceptionType.DAMAGE_REPORTED, Category.DAMAGE, "A carrier reported damage.", {}),
        TypeSpec(ExceptionType.LOSS_REPORTED, Category.LOSS, "A carrier reported the shipment lost.", {}),
        TypeSpec(
            ExceptionType.DELIVERY_FAILED,
            Category.ADDRESS,
            "A delivery attempt failed, was refused, or the address was wrong.",
            {},
        ),
        TypeSpec(
            ExceptionType.RETURN_TO_SENDER,
            Category.DELAY,
            "The shipment is being returned to the sender.",
            {},
        ),
        TypeSpec(
            ExceptionType.ROUTE_DEVIATION,
            Category.ROUTE,
            "An event happened at a place that is not on the planned route.",
            {
                "same_country_ok": Parameter(
                    bool, True, description="a place in a route country is on route"
                ),
            },
        ),
        TypeSpec(
            ExceptionType.CARRIER_DISRUPTION,
            Category.CARRIER,
            "The carrier reported a delay for a reason of its own (equipment, capacity, schedule).",
            {},
        ),
        TypeSpec(
            ExceptionType.EXTERNAL_DISRUPTION,
            Category.EXTERNAL,
            "Weather, port congestion or a strike: from the carrier's delay reason or a disruption notice.",
            {},
        ),
        TypeSpec(
            ExceptionType.DATA_INCONSISTENCY,
            Category.DATA_QUALITY,
            "The data contradicts itself: impossible order or times, or codes nobody maps.",
            {
                "future_tolerance_hours": Parameter(
                    float, 1, 0, 48, "how far in the future an actual may lie"
                ),
            },
        ),
    )
}


def validate_parameters(exception_type: ExceptionType, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """``parameters`` checked against the type's spec, with defaults filled in for what is missing."""
    spec = TYPES[exception_type].parameters
    unknown = sorted(set(parameters) - set(spec))
    if unknown:
        known = ", ".join(sorted(spec)) or "none"
        raise ParameterError(f"{exception_type}: unknown parameter(s) {', '.join(unknown)}; known: {known}")
    result: dict[str, Any] = {}
    for name, parameter in spec.items():
        value = parameters.get(name, parameter.default)
        result[name] = _checked(f"{exception_type}.{name}", parameter, value)
    return result


def _checked(where: str, parameter: Parameter, value: Any) -> Any:
    kind = parameter.kind
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        raise ParameterError(f"{where}: expected {kind.__name__}, got {type(value).__name__}")
    numbers: list[Any] = []
    if kind is dict:
        numbers = list(cast(dict[str, Any], value).values())
    elif kind in (int, float):
        numbers = [value]
    for number in numbers:
        if not isinstance(number, int | float) or isinstance(number, bool):
            raise ParameterError(f"{where}: values must be numbers, got {number!r}")
        if parameter.minimum is not None and number < parameter.minimum:
            raise ParameterError(f"{where}: {number} is below the minimum {parameter.minimum:g}")
        if parameter.maximum is not None and number > parameter.maximum:
            raise ParameterError(f"{where}: {number} is above the maximum {parameter.maximum:g}")
    if parameter.items is not None:
        for index, item in enumerate(cast(list[Any], value)):
            parameter.items(f"{where}[{index}]", item)
    return value


@dataclass(frozen=True)
class DefaultRule:
    exception_type: ExceptionType
    name: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    scope: Mapping[str, Any] = field(default_factory=dict)


DEFAULT_RULES = tuple(DefaultRule(t, "default") for t in ExceptionType)
"""A new tenant gets one enabled rule per type with the type's default parameters and no scope."""
