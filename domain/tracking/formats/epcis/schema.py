"""Validation against the GS1 EPCIS 2.0 JSON Schema vendored in ``vendor/`` (see ``vendor/NOTICE``).

The document envelope and each event are validated separately, so one bad event is reported (and
skipped) on its own while the others are kept.

Formats: ``date-time`` is checked (RFC 3339, offset required) with our own checker, the one time parser
of the adapter. ``uri`` stays an annotation, as JSON Schema formats are by default: checking it would
turn a bare non-CBV word into a schema error, and the CBV check (``vocabulary.py``) judges bizStep and
disposition values with a clearer reason.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match

SCHEMA_PATH = Path(__file__).resolve().parent / "vendor" / "EPCISDocument.schema.json"

_DATE_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)
_REASON_LENGTH = 300
_ALTERNATIVES = ("anyOf", "oneOf")


def parse_date_time(value: str) -> dt.datetime | None:
    """An RFC 3339 date-time as an aware datetime (fractions beyond microseconds cut), or None."""
    match = _DATE_TIME.match(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    offset = dt.timedelta(0)
    if not zulu:
        if int(off_h) > 23 or int(off_m) > 59:
            return None
        offset = dt.timedelta(hours=int(off_h), minutes=int(off_m)) * (-1 if sign == "-" else 1)
    try:
        return dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=dt.timezone(offset),
        )
    except ValueError:
        return None


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())

    @checker.checks("date-time")
    def is_date_time(instance: object) -> bool:
        return not isinstance(instance, str) or parse_date_time(instance) is not None

    return checker


@cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


@cache
def document_validator() -> Draft7Validator:
    return Draft7Validator(_schema(), format_checker=_format_checker())


@cache
def event_validator() -> Draft7Validator:
    schema = _schema()
    event_schema = {
        "$schema": schema["$schema"],
        "$id": schema["$id"],
        "definitions": schema["definitions"],
        "$ref": "#/definitions/EPCIS-Document-Event",
    }
    return Draft7Validator(event_schema, format_checker=_format_checker())


def schema_enum(definition: str) -> frozenset[str]:
    """The standard words a vocabulary definition of the schema (``bizStep``, ``disposition``) lists."""
    words: set[str] = set()
    for option in _schema()["definitions"][definition]["anyOf"]:
        words.update(option.get("enum", ()))
    return frozenset(words)


def format_path(path: Iterable[str | int]) -> str:
    """A JSON path as ``epcisBody.eventList[2].eventTime``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _shorten(text: str) -> str:
    return text if len(text) <= _REASON_LENGTH else text[: _REASON_LENGTH - 1] + "…"


def _describe(error: ValidationError) -> str:
    if error.validator in _ALTERNATIVES and error.context:
        by_form: dict[str | int, list[ValidationError]] = {}
        for inner in error.context:
            by_form.setdefault(inner.relative_schema_path[0], []).append(inner)
        reasons = []
        for form in by_form.values():
            inner = best_match(form)
            where = format_path(inner.relative_path)
            reasons.append(f"{where}: {inner.message}" if where else inner.message)
        return _shorten("matches none of the allowed forms: " + " | ".join(dict.fromkeys(reasons)))
    if error.validator == "format":
        return _shorten(
            f"{error.instance!r} is not a valid {error.validator_value} (RFC 3339, with an offset)"
        )
    if error.validator == "propertyNames":
        return _shorten(f"property name {error.instance!r} is not allowed here")
    return _shorten(error.message)


def _pointed_path(error: ValidationError) -> list[str | int]:
    """Where an error points: the missing member itself for ``required``, else the failing value."""
    path: list[str | int] = list(error.absolute_path)
    if (
        error.validator == "required"
        and isinstance(error.instance, dict)
        and isinstance(error.validator_value, list)
    ):
        for name in error.validator_value:
            if name not in error.instance and error.message.startswith(repr(name)):
                return [*path, name]
    return path


def schema_errors(
    validator: Draft7Validator, instance: object, prefix: Sequence[str | int]
) -> Iterator[tuple[str, str]]:
    """(position, reason) for each schema violation, deduplicated, in a stable order."""
    errors = list(validator.iter_errors(instance))
    # An "any of these forms" failure whose closest form fails where a plain error already points says
    # nothing more ("action: 'MOVE' does not match '^OBSERVE$'" next to "'MOVE' is not one of ...").
    plain = {tuple(_pointed_path(error)) for error in errors if error.validator not in _ALTERNATIVES}
    found: set[tuple[str, str]] = set()
    for error in errors:
        if (
            error.validator in _ALTERNATIVES
            and error.context
            and tuple(_pointed_path(best_match(error.context))) in plain
        ):
            continue
        pointed = _pointed_path(error)
        if error.validator == "required" and len(pointed) > len(error.absolute_path):
            reason = f"{pointed[-1]} is required"
        else:
            reason = _describe(error)
        found.add((format_path([*prefix, *pointed]), reason))
    yield from sorted(found)
