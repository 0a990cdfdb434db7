"""notice by lead: counting a lead's breaches must not scan every notice

Revision ID: 20261123_0004
Revises: 20261123_0003
Create Date: 2026-11-23
"""

from alembic import op

revision = "20261123_0004"
down_revision = "20261123_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # IF NOT EXISTS: databases made before the first revision's DDL was frozen got the index there.
    op.execute("CREATE INDEX IF NOT EXISTS ix_sla_notice_lead_id_kind ON sla_notice (lead_id, kind)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_sla_notice_lead_id_kind")
