"""initial: platform and webhook tables, teams, reps, queues, rules, leads, assignments, touches

Revision ID: 20261123_0001
Revises:
Create Date: 2026-11-23
"""

from alembic import op

from leadflow_kit.migrations import create_platform_tables, drop_platform_tables
from leadflow_kit.webhooks import create_webhook_tables, drop_webhook_tables
from leadflow_routing.tables import assignment, lead, queue, rep, routing_ruleset, team, touch

revision = "20261123_0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = (team, rep, queue, routing_ruleset, lead, assignment, touch)


def upgrade() -> None:
    create_platform_tables(op)
    create_webhook_tables(op)
    for table in TABLES:
        table.create(op.get_bind())


def downgrade() -> None:
    for table in reversed(TABLES):
        table.drop(op.get_bind())
    drop_webhook_tables(op)
    drop_platform_tables(op)
