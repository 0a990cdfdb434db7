"""deal amounts on the lead's facts, currency rates and campaign spend (issue 19, revenue and spend)

Revision ID: 20261203_19_revenue
Revises: 20261203_18_lifecycle
Create Date: 2026-12-03
"""

from alembic import op

revision = "20261203_19_revenue"
down_revision = "20261203_18_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The first revision creates every table from the current tables.py, so all of this may exist already.
    op.execute("ALTER TABLE lead ADD COLUMN IF NOT EXISTS deal_amount NUMERIC(18, 4)")
    op.execute("ALTER TABLE lead ADD COLUMN IF NOT EXISTS deal_currency VARCHAR(3)")
    op.execute("ALTER TABLE lead ADD COLUMN IF NOT EXISTS lost_at TIMESTAMP WITH TIME ZONE")
    op.execute("""
        CREATE TABLE IF NOT EXISTS currency_rate (
            currency VARCHAR(3) PRIMARY KEY,
            rate NUMERIC(24, 10) NOT NULL,
            updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now()
        )""")
    op.execute("""
        CREATE TABLE IF NOT EXISTS campaign_spend (
            id VARCHAR(64) PRIMARY KEY,
            utm_campaign VARCHAR(255) NOT NULL,
            source VARCHAR(255) NOT NULL,
            period_from DATE NOT NULL,
            period_to DATE NOT NULL,
            amount NUMERIC(18, 4) NOT NULL,
            currency VARCHAR(3) NOT NULL,
            created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE INDEX IF NOT EXISTS ix_campaign_spend_period ON campaign_spend (period_from, period_to)")


def downgrade() -> None:
    op.drop_table("campaign_spend")
    op.drop_table("currency_rate")
    for column in ("lost_at", "deal_currency", "deal_amount"):
        op.drop_column("lead", column)

