"""Tenant isolation enforced by PostgreSQL itself, checked from the catalog and by behaviour."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from domain.db import TenantScope, apply_scope
from domain.models import Base
from domain.shipments.service import ShipmentDraft, create_shipment
from milepost.database import Database
from milepost.settings import Settings
from tests.shipment_factories import add_tenant, committed_tenant

TENANT_TABLES = """
SELECT c.oid, c.relname, c.relrowsecurity, c.relforcerowsecurity,
       (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
  AND (EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
               AND NOT a.attisdropped) OR c.relname = 'tenant')
ORDER BY c.relname
"""


async def test_every_tenant_table_has_forced_row_level_security_and_a_policy(
    owner_engine: AsyncEngine,
) -> None:
    async with owner_engine.connect() as conn:
        rows = (await conn.execute(text(TENANT_TABLES))).all()
    expected = {t.name for t in Base.metadata.sorted_tables if "tenant_id" in t.c} | {"tenant"}
    assert {r.relname for r in rows} == expected
    assert "carrier" not in expected
    unprotected = [r.relname for r in rows if not (r.relrowsecurity and r.relforcerowsecurity and r.policies)]
    assert unprotected == []


async def test_every_shipper_condition_is_the_case_the_planner_estimates(owner_engine: AsyncEngine) -> None:
    """The account condition of a policy is ``CASE WHEN <no account> THEN true ELSE ... END``
    (``migrations.security.account_condition``), never an OR the planner misjudges as 0.5% of the rows."""
    query = text(
        """
        SELECT c.relname, pg_get_expr(p.polqual, p.polrelid) AS qual
        FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
        WHERE pg_get_expr(p.polqual, p.polrelid) LIKE '%app.account_id%'
        """
    )
    async with owner_engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    assert {r.relname for r in rows} >= {"shipment", "shipment_exception", "account", "webhook_delivery"}
    quals = {r.relname: " ".join(r.qual.split()) for r in rows}  # pg_get_expr breaks lines
    assert [(name, qual) for name, qual in quals.items() if "CASE WHEN" not in qual or " OR " in qual] == []


async def test_every_key_and_unique_index_on_a_tenant_table_includes_tenant_id(
    owner_engine: AsyncEngine,
) -> None:
    query = text(
        """
        SELECT c.relname AS table_name, i.relname AS index_name
        FROM pg_index x
        JOIN pg_class c ON c.oid = x.indrelid
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND x.indisunique
          AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
          AND NOT EXISTS (
              SELECT 1 FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND a.attnum = ANY(x.indkey))
        """
    )
    async with owner_engine.connect() as conn:
        offenders = (await conn.execute(query)).all()
    assert offenders == []


async def test_every_foreign_key_between_tenant_tables_includes_tenant_id(owner_engine: AsyncEngine) -> None:
    # A foreign key to a tenant table must carry tenant_id on both sides; one to shared reference data
    # (carrier) has none to carry.
    query = text(
        """
        SELECT con.conname
        FROM pg_constraint con
        JOIN pg_class src ON src.oid = con.conrelid
        JOIN pg_class dst ON dst.oid = con.confrelid
        WHERE con.contype = 'f'
          AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = src.oid AND a.attname = 'tenant_id')
          AND (dst.relname = 'tenant' OR EXISTS (
                SELECT 1 FROM pg_attribute a WHERE a.attrelid = dst.oid AND a.attname = 'tenant_id'))
          AND NOT EXISTS (
              SELECT 1 FROM pg_attribute a
              WHERE a.attrelid = src.oid AND a.attname = 'tenant_id' AND a.attnum = ANY(con.conkey))
        """
    )
    async with owner_engine.connect() as conn:
        offenders = (await conn.execute(query)).scalars().all()
    assert offenders == []


async def test_the_application_role_owns_nothing_and_cannot_bypass_security(
    owner_engine: AsyncEngine, settings: Settings
) -> None:
    async with owner_engine.connect() as conn:
        role = (
            await conn.execute(
                text(
                    "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = :r"
                ),
                {"r": settings.app_role},
            )
        ).one()
        owned = (
            (
                await conn.execute(
                    text(
                        "SELECT c.relname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
                        "WHERE r.rolname = :r"
                    ),
                    {"r": settings.app_role},
                )
            )
            .scalars()
            .all()
        )
    assert tuple(role) == (False, False, False, False)
    assert owned == []


async def test_a_query_without_any_tenant_filter_sees_only_the_current_tenant(session: AsyncSession) -> None:
    first = await add_tenant(session, accounts=2, shipments_per_account=2, label="a")
    second = await add_tenant(session, accounts=1, shipments_per_account=3, label="b")
    count = text("SELECT count(*) FROM shipment")

    await apply_scope(session, first.scope)
    assert (await session.execute(count)).scalar_one() == 4
    await apply_scope(session, second.scope)
    assert (await session.execute(count)).scalar_one() == 3
    await apply_scope(session, TenantScope(first.scope.tenant_id, first.accounts[1].id))
    assert (await session.execute(count)).scalar_one() == 2
    assert (await session.execute(text("SELECT count(*) FROM milestone"))).scalar_one() == 20
    await session.execute(text("SELECT set_config('app.tenant_id', '', true)"))
    assert (await session.execute(count)).scalar_one() == 0
    assert (await session.execute(text("SELECT count(*) FROM tenant"))).scalar_one() == 0


async def test_writing_into_another_tenant_is_refused(session: AsyncSession) -> None:
    first = await add_tenant(session, accounts=1, shipments_per_account=0, label="a")
    second = await add_tenant(session, accounts=1, shipments_per_account=0, label="b")
    await apply_scope(session, first.scope)
    draft = ShipmentDraft(account_id=second.accounts[0].id, mode="air")
    with pytest.raises(DBAPIError, match="row-level security"):
        await create_shipment(session, second.scope, draft)


async def test_the_tenant_setting_does_not_survive_into_the_next_transaction(
    database: Database, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=2)
    engine = create_async_engine(database.app_url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn, conn.begin():
            backend = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            await conn.execute(
                text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(world.scope.tenant_id)}
            )
            assert (await conn.execute(text("SELECT count(*) FROM shipment"))).scalar_one() == 2
        async with engine.connect() as conn, conn.begin():
            # the same pooled server connection, a new transaction: nothing of the old scope is left
            assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() == backend
            setting = (await conn.execute(text("SELECT current_setting('app.tenant_id', true)"))).scalar_one()
            assert setting in ("", None)
            assert (await conn.execute(text("SELECT count(*) FROM shipment"))).scalar_one() == 0
    finally:
        await engine.dispose()


async def test_a_tenant_is_found_by_slug_only_through_the_lookup_setting(session: AsyncSession) -> None:
    world = await add_tenant(session, accounts=0, shipments_per_account=0)
    await session.execute(text("SELECT set_config('app.tenant_id', '', true)"))
    by_slug = text("SELECT id FROM tenant WHERE slug = :s")
    assert (await session.execute(by_slug, {"s": world.slug})).all() == []
    await session.execute(text("SELECT set_config('app.tenant_slug', :s, true)"), {"s": world.slug})
    assert (await session.execute(by_slug, {"s": world.slug})).scalar_one() == world.scope.tenant_id
    assert (await session.execute(text("SELECT count(*) FROM tenant"))).scalar_one() == 1
    assert uuid.UUID(str(world.scope.tenant_id))
