"""Capture speed: milestones keep the events that won them, so new events are compared with those alone.

Rows written before this revision have no winners recorded; the service notices (a time without its
event's key) and rebuilds such a shipment from its events the next time one arrives.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 15:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

KEYS = ("planned_event_key", "estimated_event_key", "actual_event_key")
VERSIONS = ("planned_version_at", "estimated_version_at")


def upgrade() -> None:
    for name in KEYS:
        op.add_column("milestone", sa.Column(name, sa.String(length=128), nullable=True))
    for name in VERSIONS:
        op.add_column("milestone", sa.Column(name, sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for name in (*KEYS, *VERSIONS):
        op.drop_column("milestone", name)
