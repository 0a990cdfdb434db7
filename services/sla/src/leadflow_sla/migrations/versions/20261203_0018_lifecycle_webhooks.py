"""webhook subscriptions filter on the lead's tier, team and form (issue 18, the lifecycle webhooks)

Revision ID: 20261203_18_lifecycle
Revises: 20261203_outbox_no_notify
Create Date: 2026-12-03
"""

from alembic import op

from leadflow_kit.webhooks import downgrade_webhook_tables_3, upgrade_webhook_tables_3

revision = "20261203_18_lifecycle"
down_revision = "20261203_outbox_no_notify"
branch_labels = None
depends_on = None


def upgrade() -> None:
    upgrade_webhook_tables_3(op)


def downgrade() -> None:
    downgrade_webhook_tables_3(op)
