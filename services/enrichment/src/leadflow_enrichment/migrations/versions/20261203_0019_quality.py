"""data quality: each fill keeps its source, its quality reasons and the provider's answer

Revision ID: 20261203_19_quality
Revises: 20261203_outbox_no_notify
Create Date: 2026-12-03
"""

from alembic import op

revision = "20261203_19_quality"
down_revision = "20261203_outbox_no_notify"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Fills enriched before this revision count as having no source, no flagged reason and no provider lookup.
    op.execute("ALTER TABLE lead_fill ADD COLUMN IF NOT EXISTS source varchar(255)")
    op.execute("ALTER TABLE lead_fill ADD COLUMN IF NOT EXISTS reasons jsonb NOT NULL DEFAULT '[]'::jsonb")
    op.execute("ALTER TABLE lead_fill ADD COLUMN IF NOT EXISTS provider_outcome varchar(32)")
    op.execute("CREATE INDEX IF NOT EXISTS ix_lead_fill_submitted_at ON lead_fill (submitted_at)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_lead_fill_submitted_at")
    op.execute("ALTER TABLE lead_fill DROP COLUMN IF EXISTS provider_outcome")
    op.execute("ALTER TABLE lead_fill DROP COLUMN IF EXISTS reasons")
    op.execute("ALTER TABLE lead_fill DROP COLUMN IF EXISTS source")
