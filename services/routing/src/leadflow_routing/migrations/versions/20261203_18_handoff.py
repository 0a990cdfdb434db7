"""the hand-off policy of a rule set (first fill or MQL) and a lead's nurture cool-down

Revision ID: 20261203_18_handoff
Revises: 20261203_18_lifecycle
Create Date: 2026-12-03
"""

from alembic import op

revision = "20261203_18_handoff"
down_revision = "20261203_18_lifecycle"
branch_labels = None
depends_on = None


# IF NOT EXISTS: the initial revision creates the tables as tables.py defines them today.
def upgrade() -> None:
    # Rule sets saved before hand-off policies routed every lead at its first fill; they keep doing so.
    op.execute("ALTER TABLE routing_ruleset ADD COLUMN IF NOT EXISTS handoff varchar(16) NOT NULL"
               " DEFAULT 'first_fill'")
    op.execute("ALTER TABLE lead ADD COLUMN IF NOT EXISTS handoff_after timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE lead DROP COLUMN IF EXISTS handoff_after")
    op.execute("ALTER TABLE routing_ruleset DROP COLUMN IF EXISTS handoff")
