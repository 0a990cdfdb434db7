"""outbox without the NOTIFY trigger: the writing process sends its rows, the relay polls for stale ones

Revision ID: 20261203_outbox_no_notify
Revises: 20261203_0002
Create Date: 2026-12-03
"""

from alembic import op

from leadflow_kit.migrations import drop_outbox_notify, restore_outbox_notify

revision = "20261203_outbox_no_notify"
down_revision = "20261203_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    drop_outbox_notify(op)


def downgrade() -> None:
    restore_outbox_notify(op)
