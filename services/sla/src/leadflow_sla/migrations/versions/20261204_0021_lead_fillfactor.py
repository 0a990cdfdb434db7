"""a lead's row keeps room on its page for its next versions (fillfactor 70): most of a lead's versions (the
lock each of its events takes, the changes of unindexed columns) change no indexed column, and such a
version on the same page writes none of the lead's sixteen indexes (a HOT update); a version that finds
its page full writes all of them (issue 17)

Revision ID: 20261204_21_lead_fillfactor
Revises: 20261203_20_outbox_topic_key
Create Date: 2026-12-04
"""

from alembic import op

revision = "20261204_21_lead_fillfactor"
down_revision = "20261203_20_outbox_topic_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Pages written from now on keep the room; existing ones get it as they are rewritten (VACUUM FULL
    # or pg_repack would do all at once, under a lock: not done in a migration).
    op.execute("ALTER TABLE lead SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute("ALTER TABLE lead RESET (fillfactor)")
