"""routing's replica of sla's SLA policies and reps' calendars (the sla.policies topic)

Revision ID: 20261203_19_sla_replica
Revises: 20261203_18_handoff
Create Date: 2026-12-03
"""

from alembic import op

from leadflow_routing.tables import sla_calendar_replica, sla_policy_replica

revision = "20261203_19_sla_replica"
down_revision = "20261203_18_handoff"
branch_labels = None
depends_on = None

TABLES = (sla_policy_replica, sla_calendar_replica)


def upgrade() -> None:
    for table in TABLES:
        table.create(op.get_bind())


def downgrade() -> None:
    for table in reversed(TABLES):
        table.drop(op.get_bind())
