"""initial: platform tables, leads and their fills, the account directory

Revision ID: 20261123_0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from leadflow_kit.migrations import create_platform_tables, drop_platform_tables

revision = "20261123_0001"
down_revision = None
branch_labels = None
depends_on = None


# The tables as they were at this revision: later revisions alter them, so they must not
# come from the live metadata in tables.py.
def upgrade() -> None:
    create_platform_tables(op)
    _create_leads()
    _create_accounts()


def _create_leads() -> None:
    op.create_table(
        "lead",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("form_key", sa.String(100), nullable=False),
        sa.Column("original", JSONB, nullable=False),
        sa.Column("profile", JSONB, nullable=False),
        sa.Column("account", JSONB),
        sa.Column("quality", JSONB, nullable=False),
        sa.Column("partial", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("partial_reasons", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("custom_fields", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("fill_count", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("enrichment_ms", sa.Float),
        sa.Column("first_submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_lead"),
        sa.UniqueConstraint("email", name="uq_lead_email"),
    )
    op.create_table(
        "lead_fill",
        sa.Column("captured_lead_id", sa.String(64), nullable=False),
        sa.Column("lead_id", sa.String(64), nullable=False),
        sa.Column("form_key", sa.String(100), nullable=False),
        sa.Column("original", JSONB, nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duplicate", sa.Boolean, nullable=False),
        sa.Column("enriched_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("captured_lead_id", name="pk_lead_fill"),
        sa.ForeignKeyConstraint(["lead_id"], ["lead.id"], name="fk_lead_fill_lead_id_lead"),
    )
    op.create_index("ix_lead_fill_lead_id", "lead_fill", ["lead_id"])


def _create_accounts() -> None:
    op.create_table(
        "account",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("name_key", sa.String(255), nullable=False),
        sa.Column("domains", ARRAY(sa.String(255)), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("industry", sa.String(255)),
        sa.Column("employee_count", sa.Integer),
        sa.Column("annual_revenue", sa.Float),
        sa.Column("country", sa.String(2)),
        sa.Column("owner_rep_id", sa.String(64)),
        sa.Column("tier", sa.String(32)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_account"),
    )
    op.create_index("ix_account_name_key", "account", ["name_key"])
    op.create_table(
        "account_domain",
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("domain", name="pk_account_domain"),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"], name="fk_account_domain_account_id_account",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_account_domain_account_id", "account_domain", ["account_id"])
    op.create_table(
        "account_directory",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("id", name="pk_account_directory"),
    )
    op.execute("INSERT INTO account_directory (id, version) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table("account_directory")
    op.drop_table("account_domain")
    op.drop_table("account")
    op.drop_table("lead_fill")
    op.drop_table("lead")
    drop_platform_tables(op)
