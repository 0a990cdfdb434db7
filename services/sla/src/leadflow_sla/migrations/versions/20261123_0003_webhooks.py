"""webhooks: subscription, delivery and attempt tables for SLA notifications

Revision ID: 20261123_0003
Revises: 20261123_0002
Create Date: 2026-11-23
"""

from alembic import op

from leadflow_kit.webhooks import create_webhook_tables, drop_webhook_tables

revision = "20261123_0003"
down_revision = "20261123_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_webhook_tables(op)


def downgrade() -> None:
    drop_webhook_tables(op)
