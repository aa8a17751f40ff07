"""Relay plumbing: opaque global ids, cursors and page-size rules."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar

import strawberry
from graphql import GraphQLError

from domain.shipments.repository import PageKey


class UserInputError(GraphQLError):
    """A request we understood but cannot satisfy as asked; shown to the caller as is."""

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        extensions: dict[str, object] = {"code": "BAD_USER_INPUT"}
        if argument:
            extensions["argument"] = argument
        super().__init__(message, extensions=extensions)


class Forbidden(GraphQLError):
    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "FORBIDDEN"})


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.encode()).decode()


def to_global_id(type_name: str, id_: uuid.UUID) -> strawberry.ID:
    return strawberry.ID(_b64(f"{type_name}:{id_}"))


def from_global_id(global_id: str, *, argument: str = "id") -> tuple[str, uuid.UUID]:
    try:
        type_name, _, raw = _unb64(global_id).partition(":")
        return type_name, uuid.UUID(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise UserInputError(
            f"{argument}: {global_id!r} is not an id issued by this API", argument=argument
        ) from None


def expect_global_id(global_id: str, type_name: str, *, argument: str = "id") -> uuid.UUID | None:
    """The uuid inside ``global_id`` when it names a ``type_name``; ``None`` for another type."""
    found_type, value = from_global_id(global_id, argument=argument)
    return value if found_type == type_name else None


def _cursor(key: PageKey | str) -> str:
    return key if isinstance(key, str) else encode_cursor(key)


# a typed position in an ordering other than newest-first: each value tagged with its kind
_KINDS: dict[str, Callable[[str], object]] = {
    "i": int,
    "t": dt.datetime.fromisoformat,
    "u": uuid.UUID,
}


def encode_position(order: str, values: Sequence[object]) -> str:
    """A cursor for position ``values`` (ints, aware datetimes, uuids) in the named order."""
    parts = []
    for value in values:
        kind = "i" if isinstance(value, int) else "t" if isinstance(value, dt.datetime) else "u"
        parts.append(f"{kind}{value.isoformat() if isinstance(value, dt.datetime) else value}")
    return _b64("|".join([order, *parts]))


def decode_position(cursor: str, order: str) -> tuple[object, ...]:
    """The position inside a cursor of :func:`encode_position` for ``order``; another order's cursor, or
    anything else, is refused as not issued by this API."""
    try:
        found, *parts = _unb64(cursor).split("|")
        if found != order or not parts:
            raise ValueError(f"a cursor of order {found!r}")
        values = tuple(_KINDS[part[0]](part[1:]) for part in parts)
        if any(isinstance(v, dt.datetime) and v.tzinfo is None for v in values):
            raise ValueError("naive time")
        return values
    except (ValueError, KeyError, IndexError, binascii.Error, UnicodeDecodeError):
        raise UserInputError(
            f"after: {cursor!r} is not a cursor issued by this API for this order", argument="after"
        ) from None


def encode_cursor(key: PageKey) -> str:
    return _b64(f"{key.created_at.isoformat()}|{key.id}")


def decode_cursor(cursor: str) -> PageKey:
    try:
        created_at, _, raw_id = _unb64(cursor).partition("|")
        moment = dt.datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise ValueError("naive time")
        return PageKey(created_at=moment, id=uuid.UUID(raw_id))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise UserInputError(
            f"after: {cursor!r} is not a cursor issued by this API", argument="after"
        ) from None


DEFAULT_PAGE_SIZE = 20


def check_page_size(first: int, maximum: int) -> int:
    if first < 1 or first > maximum:
        raise UserInputError(f"first: must be between 1 and {maximum}, got {first}", argument="first")
    return first


@strawberry.interface(description="An object with a globally unique, opaque id (Relay).")
class Node:
    id: strawberry.ID = strawberry.field(description="Globally unique opaque id; pass it to `node(id:)`.")


@strawberry.type(description="Relay pagination state of a connection.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="Whether more items follow `endCursor`.")
    has_previous_page: bool = strawberry.field(
        description="Whether items precede `startCursor` (always false: forward pagination only)."
    )
    start_cursor: str | None = strawberry.field(description="Cursor of the first edge of this page.")
    end_cursor: str | None = strawberry.field(description="Cursor of the last edge; pass as `after`.")


T = TypeVar("T")


def paginate(
    rows: Sequence[T], limit: int, key: Callable[[T], PageKey | str]
) -> tuple[list[tuple[str, T]], PageInfo]:
    """Cut a ``limit + 1`` fetch to one page: each row with its cursor (``key`` gives the row's
    newest-first position, or its cursor ready-made), and the page's ``PageInfo``."""
    cursored = [(_cursor(key(row)), row) for row in rows[:limit]]
    info = PageInfo(
        has_next_page=len(rows) > limit,
        has_previous_page=False,
        start_cursor=cursored[0][0] if cursored else None,
        end_cursor=cursored[-1][0] if cursored else None,
    )
    return cursored, info
