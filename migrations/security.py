"""Row-level security and the application role, applied by migrations (which run as the table owner).

Policies compare against the transaction-local settings written by ``domain.db.apply_scope``. Two narrow
"lookup" clauses let a transaction find one row by a key it already holds before it knows the tenant:
a tenant by its slug (user login) and an API client by its ``client_id`` (OAuth2 client credentials).
Background tasks that work tenant by tenant (outbox dispatch, the detection sweep) may list the tenant rows
with ``app.system_task`` set (``domain.db.system_transaction``); every other table stays scoped to one tenant.
"""

from __future__ import annotations

import os

from alembic import op

CURRENT_TENANT = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"
CURRENT_ACCOUNT = "NULLIF(current_setting('app.account_id', true), '')::uuid"


def app_role() -> str:
    role = os.environ.get("MILEPOST_APP_ROLE", "milepost_app")
    if not role.replace("_", "").isalnum():
        raise ValueError(f"MILEPOST_APP_ROLE must be an identifier, got {role!r}")
    return role


def create_app_role() -> None:
    """The role the application connects as: owns nothing, not superuser, no BYPASSRLS."""
    role = app_role()
    op.execute(
        f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
            CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
          END IF;
        EXCEPTION
          -- roles are cluster-wide: a migration of another database may create it at the same moment
          WHEN duplicate_object OR unique_violation THEN NULL;
        END $$
        """
    )
    password = os.environ.get("MILEPOST_APP_DB_PASSWORD")
    if password:
        escaped = password.replace("'", "''")
        op.execute(f"ALTER ROLE {role} PASSWORD '{escaped}'")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
    op.execute(f"GRANT SELECT ON alembic_version TO {role}")


def grant_read_write(*tables: str) -> None:
    for table in tables:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {app_role()}")


def grant_read(*tables: str) -> None:
    for table in tables:
        op.execute(f"GRANT SELECT ON {table} TO {app_role()}")


def enable_tenant_rls(
    table: str, *, tenant_column: str = "tenant_id", account_column: str | None = None, lookup: str = ""
) -> None:
    """ENABLE and FORCE row-level security with one policy for reads and writes (see
    :func:`create_tenant_policy`)."""
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    create_tenant_policy(table, tenant_column=tenant_column, account_column=account_column, lookup=lookup)


def account_condition(account_column: str) -> str:
    """The shipper condition: a staff transaction (no account set) sees every account's rows, a shipper's its
    own. Written as a CASE, not ``(account IS NULL OR column = account)``: the planner cannot estimate that
    OR and guessed that it keeps 0.5% of the tenant's rows, which turned every page of a staff list into a
    sequential scan and a sort; a CASE it estimates at one half, and the indexes in the list's order win.
    Shippers' queries also name their account explicitly (``domain.db.scoped``), so their indexes still
    apply."""
    return f"CASE WHEN {CURRENT_ACCOUNT} IS NULL THEN true ELSE {account_column} = {CURRENT_ACCOUNT} END"


def create_tenant_policy(
    table: str, *, tenant_column: str = "tenant_id", account_column: str | None = None, lookup: str = ""
) -> None:
    """The ``tenant_isolation`` policy: ``account_column`` adds the shipper condition; ``lookup`` is an extra
    OR-ed clause for reads before the tenant is known (see the module docstring); writes never use it."""
    condition = f"{tenant_column} = {CURRENT_TENANT}"
    if account_column:
        condition += f" AND {account_condition(account_column)}"
    using = f"({condition}) OR ({lookup})" if lookup else condition
    op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({using}) WITH CHECK ({condition})")
