"""outbox: an index of its rows by key, for the direct publisher's check for an older row of a key

Revision ID: 20261203_20_outbox_topic_key
Revises: 20261203_17_no_captured_at_index
Create Date: 2026-12-03
"""

from alembic import op

from leadflow_kit.migrations import add_outbox_key_index, drop_outbox_key_index

revision = "20261203_20_outbox_topic_key"
down_revision = "20261203_17_no_captured_at_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_outbox_key_index(op)


def downgrade() -> None:
    drop_outbox_key_index(op)
