"""webhook deliveries waiting out a backoff get an index of their own (issue 17: a success's record
probes them without reading a backlog of fresh rows)

Revision ID: 20261207_24_webhook_backed_off
Revises: 20261207_23_funnel_gauge_figures
Create Date: 2026-12-07
"""

from alembic import op

from leadflow_kit.webhooks import downgrade_webhook_tables_4, upgrade_webhook_tables_4

revision = "20261207_24_webhook_backed_off"
down_revision = "20261207_23_funnel_gauge_figures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    upgrade_webhook_tables_4(op)


def downgrade() -> None:
    downgrade_webhook_tables_4(op)
