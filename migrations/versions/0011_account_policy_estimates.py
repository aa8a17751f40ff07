"""Row-level security: the shipper condition as a CASE the planner can estimate (see
``migrations.security.account_condition``), so staff lists read their indexes instead of scanning.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-21 22:00:00
"""

from __future__ import annotations

from alembic import op

from migrations import security

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# every policy with a shipper condition (none of them has a lookup clause)
BY_ACCOUNT = {
    "account": "id",
    "app_user": "account_id",
    "shipment": "account_id",
    "milestone_template": "account_id",
    "shipment_exception": "account_id",
    "exception_resolution": "account_id",
    "webhook_endpoint": "account_id",
    "webhook_delivery": "account_id",
}


def upgrade() -> None:
    for table, column in BY_ACCOUNT.items():
        op.execute(f"DROP POLICY tenant_isolation ON {table}")
        security.create_tenant_policy(table, account_column=column)


def downgrade() -> None:
    for table, column in BY_ACCOUNT.items():
        account = security.CURRENT_ACCOUNT
        condition = f"tenant_id = {security.CURRENT_TENANT} AND ({account} IS NULL OR {column} = {account})"
        op.execute(f"DROP POLICY tenant_isolation ON {table}")
        op.execute(f"CREATE POLICY tenant_isolation ON {table} USING ({condition}) WITH CHECK ({condition})")
