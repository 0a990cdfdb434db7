"""initial: platform tables, forms and leads

Revision ID: 20261123_0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from leadflow_kit.migrations import create_platform_tables, drop_platform_tables

revision = "20261123_0001"
down_revision = None
branch_labels = None
depends_on = None


# The tables as they were at this revision: later revisions alter them, so they must not
# come from the live metadata in tables.py.
def upgrade() -> None:
    create_platform_tables(op)
    op.create_table(
        "form",
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("field_mapping", JSONB, nullable=False, server_default="{}"),
        sa.Column("required_fields", JSONB, nullable=False, server_default="[]"),
        sa.Column("active", sa.Boolean, nullable=False, server_default="true"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("key", name="pk_form"),
    )
    op.create_table(
        "lead",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("form_key", sa.String(100), nullable=False),
        sa.Column("contact", JSONB, nullable=False),
        sa.Column("custom_fields", JSONB, nullable=False, server_default="{}"),
        sa.Column("attribution", JSONB, nullable=False, server_default="{}"),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lead"),
    )
    op.create_index("ix_lead_form_key", "lead", ["form_key"])


def downgrade() -> None:
    op.drop_table("lead")
    op.drop_table("form")
    drop_platform_tables(op)
