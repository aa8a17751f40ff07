"""Partner OAuth2: client secret rotation with a grace period, per-client token lifetimes, the closed scope
list as a CHECK, revocations of clients and tokens, and signing keys kept in the database (encrypted).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from migrations import security

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# the closed list of domain/tenancy/rules.py Scope, as of this revision
SCOPES = (
    "billing:read",
    "exceptions:read",
    "exceptions:write",
    "ingest",
    "shipments:read",
    "shipments:write",
    "webhooks:manage",
)
# offered before, never granted anything (detection is staff-only), so no client loses a permission
DROPPED_SCOPES = ("rules:read", "rules:write")


def upgrade() -> None:
    op.add_column("api_client", sa.Column("access_token_ttl_seconds", sa.Integer(), nullable=True))
    op.add_column("api_client", sa.Column("secret_rotated_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("api_client", sa.Column("previous_secret_hash", sa.Text(), nullable=True))
    op.add_column(
        "api_client", sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True)
    )
    # like migration 0003's backfill, this sees every row only as a superuser or BYPASSRLS owner
    for scope in DROPPED_SCOPES:
        op.execute(f"UPDATE api_client SET scopes = array_remove(scopes, '{scope}')")  # noqa: S608 - constants
    op.create_check_constraint(
        op.f("ck_api_client_scopes"),
        "api_client",
        f"scopes <@ ARRAY[{', '.join(repr(s) for s in SCOPES)}]::text[]",
    )
    op.create_check_constraint(
        op.f("ck_api_client_access_token_ttl"),
        "api_client",
        "access_token_ttl_seconds IS NULL OR access_token_ttl_seconds BETWEEN 60 AND 86400",
    )
    op.create_check_constraint(
        op.f("ck_api_client_previous_secret"),
        "api_client",
        "(previous_secret_hash IS NULL) = (previous_secret_expires_at IS NULL)",
    )

    op.create_table(
        "credential_revocation",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('client', 'token')", name=op.f("ck_credential_revocation_kind")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            name=op.f("fk_credential_revocation_tenant_id_tenant"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "kind", "subject", name=op.f("pk_credential_revocation")),
    )
    op.create_index(
        op.f("ix_credential_revocation_expires_at"), "credential_revocation", ["expires_at"], unique=False
    )
    # every API process reads all revocations in force in one query (ids and times only), in a
    # system transaction; writes stay bound to one tenant
    security.enable_tenant_rls(
        "credential_revocation", lookup="current_setting('app.system_task', true) = 'on'"
    )
    security.grant_read_write("credential_revocation")

    op.create_table(
        "signing_key",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("public_jwk", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("private_key_jwe", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("activates_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retire_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_signing_key")),
    )
    # platform data without tenant_id, like carrier; the private halves are sealed under a key the
    # database never sees. No DELETE: a key's record stays after it retires.
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON signing_key TO {security.app_role()}")


def downgrade() -> None:
    op.drop_table("signing_key")
    op.drop_index(op.f("ix_credential_revocation_expires_at"), table_name="credential_revocation")
    op.drop_table("credential_revocation")
    op.drop_constraint(op.f("ck_api_client_previous_secret"), "api_client", type_="check")
    op.drop_constraint(op.f("ck_api_client_access_token_ttl"), "api_client", type_="check")
    op.drop_constraint(op.f("ck_api_client_scopes"), "api_client", type_="check")
    op.drop_column("api_client", "previous_secret_expires_at")
    op.drop_column("api_client", "previous_secret_hash")
    op.drop_column("api_client", "secret_rotated_at")
    op.drop_column("api_client", "access_token_ttl_seconds")
