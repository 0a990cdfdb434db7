"""scored leads parked while another transaction holds their team's or rep's row

Revision ID: 20261204_21_parked_lead
Revises: 20261203_20_outbox_topic_key
Create Date: 2026-12-04
"""

from alembic import op

from leadflow_routing.tables import parked_lead

revision = "20261204_21_parked_lead"
down_revision = "20261203_20_outbox_topic_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    parked_lead.create(op.get_bind())


def downgrade() -> None:
    parked_lead.drop(op.get_bind())
