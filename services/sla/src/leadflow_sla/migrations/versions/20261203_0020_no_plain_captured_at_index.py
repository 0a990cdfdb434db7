"""lead updates write one index fewer: every query on the capture time also leaves merged fills out, and the
search's partial (captured_at, lead_id) index serves it (issue 17)

Revision ID: 20261203_17_no_captured_at_index
Revises: 20261203_19_search
Create Date: 2026-12-03
"""

from alembic import op

revision = "20261203_17_no_captured_at_index"
down_revision = "20261203_19_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_lead_captured_at")


def downgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS ix_lead_captured_at ON lead (captured_at)")
