"""Typed access to one DCSA event's JSON that records a precise issue instead of raising.

Every getter takes the object, the path of that object inside the event (``""`` for the event itself,
``"transportCall"``, ``"payload.transportCall.vessel"``...) and the key, so an issue names the exact field:
``events[3].transportCall.UNLocationCode``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from domain.tracking.canonical import ParseIssue
from domain.tracking.formats.canonical_json import json_type as json_kind

LOCODE = re.compile(r"[A-Z]{2}[A-Z2-9]{3}")
# RFC 3339 (the profile of ISO 8601 DCSA's `format: date-time` means); [0-9], not \d, which takes any digit
_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_WITHOUT_OFFSET = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?")
_MAX_OFFSET_MINUTES = 14 * 60  # the widest offset in use (UTC+14); the tracking service refuses wider


@dataclass(frozen=True, slots=True)
class Instant:
    utc: dt.datetime
    offset_minutes: int | None  # None for RFC 3339's "-00:00": the time is UTC, the local offset unknown


def parse_instant(text: str) -> Instant | str:
    """The instant ``text`` names, or why it names none (a reason for a ``ParseIssue``)."""
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        if _WITHOUT_OFFSET.fullmatch(text):
            return f"{text!r} has no UTC offset; expected e.g. 2021-01-09T14:12:56+01:00 or ...Z"
        return f"{text!r} is not an ISO 8601 date-time with a UTC offset (e.g. 2021-01-09T14:12:56+01:00)"
    year, month, day, hour, minute, second = (int(match[index]) for index in range(1, 7))
    microsecond = int(((match[7] or "") + "000000")[:6])
    offset_minutes: int | None = 0
    if match[8] is None:
        sign = -1 if match[9] == "-" else 1
        hours, minutes = int(match[10]), int(match[11])
        if minutes > 59:
            return f"{text!r} has an invalid UTC offset"
        offset_minutes = sign * (hours * 60 + minutes)
        if abs(offset_minutes) > _MAX_OFFSET_MINUTES:
            return f"{text!r} has a UTC offset beyond ±14:00"
        if offset_minutes == 0 and sign < 0:
            offset_minutes = None
    zone = dt.timezone(dt.timedelta(minutes=offset_minutes or 0))
    try:
        local = dt.datetime(year, month, day, hour, minute, second, microsecond, tzinfo=zone)
    except ValueError as error:
        return f"{text!r} is not a date-time that exists ({error})"
    return Instant(local.astimezone(dt.UTC), offset_minutes)


def join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


class EventReader:
    """Reads the fields of the event at ``position`` (``events[3]``) and collects what is wrong with it."""

    def __init__(self, position: str) -> None:
        self.position = position
        self.issues: list[ParseIssue] = []

    def path(self, where: str) -> str:
        return f"{self.position}.{where}" if where else self.position

    def issue(self, where: str, code: str, reason: str) -> None:
        self.issues.append(ParseIssue(self.path(where), code, reason))

    def _present(self, obj: dict[str, Any], where: str, key: str, required: bool) -> Any:
        value = obj.get(key)
        if value is None and required:
            self.issue(join(where, key), "missing_field", f"{key} is required")
        return value

    def _wrong_type(self, where: str, key: str, expected: str, value: Any) -> None:
        self.issue(join(where, key), "wrong_type", f"{key} must be {expected}, got {json_kind(value)}")

    def text(self, obj: dict[str, Any], where: str, key: str, *, required: bool = False) -> str | None:
        value = self._present(obj, where, key, required)
        if value is None:
            return None
        if not isinstance(value, str):
            self._wrong_type(where, key, "a string", value)
            return None
        value = value.strip()
        if not value:
            if required:
                self.issue(join(where, key), "missing_field", f"{key} is required and empty")
            return None
        return value

    def integer(self, obj: dict[str, Any], where: str, key: str, *, required: bool = False) -> int | None:
        value = self._present(obj, where, key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self._wrong_type(where, key, "an integer", value)
            return None
        return value

    def boolean(self, obj: dict[str, Any], where: str, key: str, *, required: bool = False) -> bool | None:
        value = self._present(obj, where, key, required)
        if value is None:
            return None
        if not isinstance(value, bool):
            self._wrong_type(where, key, "true or false", value)
            return None
        return value

    def object(
        self, obj: dict[str, Any], where: str, key: str, *, required: bool = False
    ) -> dict[str, Any] | None:
        value = self._present(obj, where, key, required)
        if value is None:
            return None
        if not isinstance(value, dict):
            self._wrong_type(where, key, "an object", value)
            return None
        return value

    def objects(self, obj: dict[str, Any], where: str, key: str) -> list[tuple[str, dict[str, Any]]]:
        """The objects of an optional array, each with its path; anything else in it is an issue."""
        value = self._present(obj, where, key, False)
        if value is None:
            return []
        if not isinstance(value, list):
            self._wrong_type(where, key, "an array", value)
            return []
        items = []
        for index, item in enumerate(value):
            item_where = f"{join(where, key)}[{index}]"
            if isinstance(item, dict):
                items.append((item_where, item))
            else:
                self.issue(item_where, "wrong_type", f"{key} items must be objects, got {json_kind(item)}")
        return items

    def texts(self, obj: dict[str, Any], where: str, key: str) -> list[str]:
        value = self._present(obj, where, key, False)
        if value is None:
            return []
        if not isinstance(value, list):
            self._wrong_type(where, key, "an array", value)
            return []
        texts = []
        for index, item in enumerate(value):
            if isinstance(item, str) and item.strip():
                texts.append(item.strip())
            else:
                self.issue(
                    f"{join(where, key)}[{index}]",
                    "wrong_type",
                    f"{key} items must be non-empty strings, got {json_kind(item)}",
                )
        return texts

    def instant(self, obj: dict[str, Any], where: str, key: str, *, required: bool = False) -> Instant | None:
        value = self.text(obj, where, key, required=required)
        if value is None:
            return None
        parsed = parse_instant(value)
        if isinstance(parsed, str):
            self.issue(join(where, key), "invalid_datetime", parsed)
            return None
        return parsed

    def locode(self, obj: dict[str, Any], where: str, key: str = "UNLocationCode") -> str | None:
        value = self.text(obj, where, key)
        if value is not None and not LOCODE.fullmatch(value):
            self.issue(
                join(where, key),
                "invalid_locode",
                f"{value!r} is not a UN/LOCODE (2-letter country code and 3 letters or digits 2-9)",
            )
            return None
        return value
