"""queues people work: the last SLA state routing saw per lead, and an index over a queue's waiting leads

Revision ID: 20261203_18_queues
Revises: 20261203_18_notifications
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "20261203_18_queues"
down_revision = "20261203_18_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lead_sla",
        sa.Column("lead_id", sa.String(64), nullable=False),
        sa.Column("clock_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("breach_count", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_lead_sla")),
    )
    # IF NOT EXISTS: the first revision creates the lead table from tables.py, index included.
    op.execute("CREATE INDEX IF NOT EXISTS ix_lead_queued_routed_at ON lead (queue, routed_at, id) "
               "WHERE status = 'queued'")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_lead_queued_routed_at")
    op.drop_table("lead_sla")
