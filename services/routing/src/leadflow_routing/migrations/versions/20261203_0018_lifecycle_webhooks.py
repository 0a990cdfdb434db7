"""webhook subscriptions filter on the lead's tier, team and form; lead.mql is sent once per lead
(issue 18, the lifecycle webhooks)

Revision ID: 20261203_18_lifecycle
Revises: 20261203_18_queues
Create Date: 2026-12-03
"""

from alembic import op

from leadflow_kit.webhooks import downgrade_webhook_tables_3, upgrade_webhook_tables_3

revision = "20261203_18_lifecycle"
down_revision = "20261203_18_queues"
branch_labels = None
depends_on = None


def upgrade() -> None:
    upgrade_webhook_tables_3(op)
    # The first revision creates routing's tables as tables.py defines them now (the column included).
    op.execute("ALTER TABLE lead ADD COLUMN IF NOT EXISTS mql_notified_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE lead DROP COLUMN IF EXISTS mql_notified_at")
    downgrade_webhook_tables_3(op)
