"""currency rates in force from a day on: a deal converts at the table in force on the day it was won, not at
today's (the rates already set become the table in force on every day, ALWAYS_IN_FORCE)

Revision ID: 20261206_22_dated_currency_rates
Revises: 20261204_21_lead_fillfactor
Create Date: 2026-12-06
"""

from alembic import op

revision = "20261206_22_dated_currency_rates"
down_revision = "20261204_21_lead_fillfactor"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE currency_rate ADD COLUMN effective_from DATE NOT NULL DEFAULT '0001-01-01'")
    op.execute("ALTER TABLE currency_rate ALTER COLUMN effective_from DROP DEFAULT")
    op.execute("ALTER TABLE currency_rate DROP CONSTRAINT currency_rate_pkey")
    op.execute("ALTER TABLE currency_rate ADD CONSTRAINT pk_currency_rate PRIMARY KEY (effective_from, currency)")


def downgrade() -> None:
    # Each currency keeps its latest rate, as a single table in force on every day.
    op.execute("""
        DELETE FROM currency_rate AS older USING currency_rate AS newer
        WHERE older.currency = newer.currency AND older.effective_from < newer.effective_from""")
    op.execute("ALTER TABLE currency_rate DROP CONSTRAINT pk_currency_rate")
    op.execute("ALTER TABLE currency_rate DROP COLUMN effective_from")
    op.execute("ALTER TABLE currency_rate ADD CONSTRAINT currency_rate_pkey PRIMARY KEY (currency)")
