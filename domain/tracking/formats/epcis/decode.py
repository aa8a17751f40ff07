"""Bytes to JSON, refusing what would hurt: nesting deeper than ``MAX_DEPTH``, NaN/Infinity, bad UTF-8.

The depth is measured before ``json.loads`` runs, because the decoder itself recurses and a few thousand
``[`` would raise ``RecursionError``.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64

# A JSON string, unrolled so that long strings cost no backtracking.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


class DecodeError(ValueError):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def text_depth(text: str) -> int:
    """How deeply arrays and objects nest in a JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def value_depth(value: Any) -> int:
    """How deeply lists and dicts nest in decoded JSON, without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _no_constant(name: str) -> Any:
    raise DecodeError("epcis.json", f"{name} is not a JSON value")


def decode(document: bytes | bytearray | memoryview | str) -> Any:
    """The decoded JSON of an EPCIS message. Raises :class:`DecodeError` with an issue code and reason."""
    if isinstance(document, str):
        text = document
    else:
        try:
            text = bytes(document).decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise DecodeError("epcis.json", f"not UTF-8 text: {error.reason} at byte {error.start}") from None
    depth = text_depth(text)
    if depth > MAX_DEPTH:
        raise DecodeError(
            "epcis.too_deep", f"JSON nests {depth} levels deep; at most {MAX_DEPTH} are accepted"
        )
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise DecodeError(
            "epcis.json", f"not JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
