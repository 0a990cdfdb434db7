"""webhook secrets encrypted at rest, send leases, per-subscription claims in per-lead order

Revision ID: 20261203_0002
Revises: 20261203_api_key_public_id
Create Date: 2026-12-03
"""

from alembic import op

from leadflow_kit.webhooks import downgrade_webhook_tables_2, upgrade_webhook_tables_2

revision = "20261203_0002"
down_revision = "20261203_api_key_public_id"
branch_labels = None
depends_on = None


def upgrade() -> None:
    upgrade_webhook_tables_2(op)


def downgrade() -> None:
    downgrade_webhook_tables_2(op)
