"""Notify: in-app visibility of a notification (a digest-only one is not listed in the app), and a pause per
webhook endpoint (a failing endpoint gets one delivery at a time on the backoff schedule).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21 19:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "notification", sa.Column("in_app", sa.Boolean(), server_default=sa.text("true"), nullable=False)
    )
    op.add_column("webhook_endpoint", sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("webhook_endpoint", "retry_at")
    op.drop_column("notification", "in_app")
