"""Shipments in promised-delivery order: an index for the keyset (soonest promise first, none last).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-21 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_shipment_promised",
        "shipment",
        [
            "tenant_id",
            sa.text("coalesce(promised_delivery_at, '9999-01-01T00:00:00+00:00'::timestamptz)"),
            "id",
        ],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_shipment_promised", table_name="shipment")
