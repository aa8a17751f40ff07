"""The database base class and the one place where tenant scope reaches PostgreSQL.

Two layers keep tenants apart, on purpose both:
- PostgreSQL row-level security (policies on ``app.tenant_id`` / ``app.account_id``), set per transaction
  by :func:`apply_scope` with ``set_config(..., true)`` so it can never outlive the transaction on a pooled
  connection;
- every query is also filtered explicitly through :func:`scoped`, so a mistake in one layer is caught by
  the other. A lint test forbids hand-written ``tenant_id ==`` filters anywhere else.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from sqlalchemy import BigInteger, ColumnElement, MetaData, Select, Text, Uuid, and_, bindparam, text, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


@dataclass(frozen=True, slots=True)
class TenantScope:
    """Whose data a unit of work may see: a tenant, and for shipper principals one of its accounts."""

    tenant_id: uuid.UUID
    account_id: uuid.UUID | None = None


_SET_SCOPE = text(
    "SELECT set_config('app.tenant_id', :tenant_id, true), set_config('app.account_id', :account_id, true)"
)


async def apply_scope(session: AsyncSession, scope: TenantScope) -> None:
    """Bind the current transaction to ``scope``; the setting ends with the transaction."""
    await session.execute(
        _SET_SCOPE,
        {
            "tenant_id": str(scope.tenant_id),
            "account_id": str(scope.account_id) if scope.account_id else "",
        },
    )


@asynccontextmanager
async def scoped_transaction(
    session_factory: async_sessionmaker[AsyncSession], scope: TenantScope
) -> AsyncIterator[AsyncSession]:
    """One transaction bound to ``scope``: committed on success, rolled back on error.

    This is what the edges (HTTP requests, actors, CLI commands) use; services below them only flush.
    """
    async with session_factory() as session, session.begin():
        await apply_scope(session, scope)
        yield session


_SYSTEM_TASK = text("SELECT set_config('app.system_task', 'on', true)")


@asynccontextmanager
async def system_transaction(
    session_factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A transaction for a background task that works tenant by tenant (outbox dispatch, the sweep).

    It may list the tenant rows and nothing else: every other table still answers only to a tenant scope,
    so the task opens a :func:`scoped_transaction` per tenant for the actual work.
    """
    async with session_factory() as session, session.begin():
        await session.execute(_SYSTEM_TASK)
        yield session


def uuid_array(values: Iterable[uuid.UUID]) -> Any:
    """One ``uuid[]`` parameter (``col = ANY(...)``) instead of thousands of IN parameters: less to send,
    parse and plan."""
    return bindparam(None, list(values), type_=ARRAY(Uuid))


def text_array(values: Iterable[str]) -> Any:
    return bindparam(None, list(values), type_=ARRAY(Text))


def bigint_array(values: Iterable[int]) -> Any:
    return bindparam(None, list(values), type_=ARRAY(BigInteger))


SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])


def tenant_condition(model: Any, scope: TenantScope) -> ColumnElement[bool]:
    """The WHERE condition that keeps ``model``'s rows to ``scope`` (for UPDATE/DELETE; SELECTs use
    :func:`scoped`): the tenant, and the account where the row has one."""
    # the tenant table itself is keyed by ``id``; it says so with ``__tenant_key__``
    tenant_column = getattr(model, getattr(model, "__tenant_key__", "tenant_id"))
    condition: ColumnElement[bool] = tenant_column == scope.tenant_id
    if scope.account_id is not None:
        account_column = getattr(model, "account_id", None)
        if account_column is not None:
            condition = and_(condition, account_column == scope.account_id)
    return condition


def scoped(statement: SelectT, model: Any, scope: TenantScope) -> SelectT:
    """Filter ``statement`` on ``model`` to ``scope``: the tenant, and the account where the row has one."""
    return statement.where(tenant_condition(model, scope))


# Where an ordering puts a missing time: after every real one.
FAR_FUTURE = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)


def keyset(
    statement: SelectT,
    columns: tuple[Any, ...],
    descending: bool,
    after: tuple[Any, ...] | None,
    *,
    parameter: str | None = None,
) -> SelectT:
    """``statement`` ordered by ``columns`` (all descending or all ascending; the last one unique, e.g. the
    id) and continued after the position ``after``: keyset pagination, stable under inserts, one row
    comparison an index on the same columns answers. With ``parameter``, the position's values are the
    named parameters ``<parameter>_0``, ``<parameter>_1``, ..."""
    statement = statement.order_by(*(c.desc() if descending else c for c in columns))
    if after is None:
        return statement
    values = [
        bindparam(f"{parameter}_{index}", value, type_=column.type) if parameter else value
        for index, (column, value) in enumerate(zip(columns, after, strict=True))
    ]
    position = tuple_(*columns)
    return statement.where(position < tuple_(*values) if descending else position > tuple_(*values))


def json_text(value: Any, default: Any = None) -> str:
    """JSON text for a ``jsonb`` value: orjson (several times faster; capture writes one per event), or the
    standard library for what orjson refuses (integers beyond 64 bits), which raises as before for what
    neither can write. The engines' ``json_serializer``."""
    try:
        return orjson.dumps(value, default=default, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, default=default)
