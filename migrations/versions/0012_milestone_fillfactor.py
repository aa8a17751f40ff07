"""Milestones keep free space in their pages (fillfactor 70) so that the updates capture makes to them —
several per milestone as estimates and actuals arrive — stay heap-only (HOT): the updated columns are not
indexed, so with room on the page no index entry is written.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-21 23:45:00
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # applies to pages written from now on; existing pages gain the space as they are rewritten
    op.execute("ALTER TABLE milestone SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute("ALTER TABLE milestone RESET (fillfactor)")
