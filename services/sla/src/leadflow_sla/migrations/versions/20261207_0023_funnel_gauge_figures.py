"""the funnel gauges' figures, computed by one replica a refresh interval and published by every one

Revision ID: 20261207_23_funnel_gauge_figures
Revises: 20261206_22_dated_currency_rates
Create Date: 2026-12-07
"""

from alembic import op

revision = "20261207_23_funnel_gauge_figures"
down_revision = "20261206_22_dated_currency_rates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE funnel_gauge_figures (
            id INTEGER NOT NULL,
            computed_at TIMESTAMP WITH TIME ZONE,
            computing_until TIMESTAMP WITH TIME ZONE,
            figures JSONB,
            CONSTRAINT pk_funnel_gauge_figures PRIMARY KEY (id)
        )""")


def downgrade() -> None:
    op.execute("DROP TABLE funnel_gauge_figures")
