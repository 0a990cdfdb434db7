"""merged leads: a repeat form fill that enrichment merged into an existing lead leaves the funnel

Revision ID: 20261123_0002
Revises: 20261123_0001
Create Date: 2026-11-23
"""

from alembic import op

revision = "20261123_0002"
down_revision = "20261123_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # IF NOT EXISTS: databases made before the first revision's DDL was frozen got the column there.
    op.execute("ALTER TABLE lead ADD COLUMN IF NOT EXISTS merged_into VARCHAR(64)")


def downgrade() -> None:
    op.execute("ALTER TABLE lead DROP COLUMN IF EXISTS merged_into")
