"""form definitions, consent and attribution on leads, idempotency keys, activities

Revision ID: 20261123_0002
Revises: 20261123_0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "20261123_0002"
down_revision = "20261123_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("form", sa.Column("allowed_origins", JSONB, nullable=False, server_default="[]"))
    op.add_column("form", sa.Column("success_url", sa.Text))
    op.add_column("form", sa.Column("error_url", sa.Text))
    op.add_column("form", sa.Column("consent_required", sa.Boolean, nullable=False, server_default="false"))
    op.add_column("form", sa.Column("consent_text", sa.Text))
    op.add_column("form", sa.Column("consent_version", sa.String(64)))
    op.add_column("form", sa.Column("honeypot_field", sa.String(100), nullable=False, server_default="_hp"))
    op.add_column("form", sa.Column("min_fill_seconds", sa.Float, nullable=False, server_default="0"))
    op.add_column(
        "form", sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())
    )
    op.add_column("form", sa.Column("archived_at", sa.DateTime(timezone=True)))
    # Forms made before this revision were only ever reachable from the dev stack.
    op.execute("UPDATE form SET archived_at = now() WHERE NOT active")
    op.drop_column("form", "active")

    op.add_column("lead", sa.Column("email_normalized", sa.String(320)))
    op.add_column("lead", sa.Column("consent", JSONB))
    op.add_column("lead", sa.Column("visitor_id", sa.String(128)))
    op.add_column("lead", sa.Column("ip", sa.String(64)))
    op.add_column("lead", sa.Column("user_agent", sa.Text))
    op.execute("UPDATE lead SET email_normalized = lower(contact->>'email') WHERE contact ? 'email'")
    op.create_index("ix_lead_double_submit", "lead", ["form_key", "email_normalized", "submitted_at"])

    op.create_table(
        "idempotency_key",
        sa.Column("scope", sa.String(150), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("headers", JSONB, nullable=False, server_default="{}"),
        sa.Column("body", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("scope", "key", name="pk_idempotency_key"),
    )
    op.create_index("ix_idempotency_key_created_at", "idempotency_key", ["created_at"])

    op.create_table(
        "activity",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("activity_type", sa.String(64), nullable=False),
        sa.Column("lead_id", sa.String(64)),
        sa.Column("email", sa.String(320)),
        sa.Column("visitor_id", sa.String(128)),
        sa.Column("page_url", sa.Text),
        sa.Column("properties", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_activity"),
    )


def downgrade() -> None:
    op.add_column("form", sa.Column("active", sa.Boolean, nullable=False, server_default="true"))
    op.execute("UPDATE form SET active = archived_at IS NULL")
    op.drop_table("activity")
    op.drop_table("idempotency_key")
    op.drop_index("ix_lead_double_submit", table_name="lead")
    for column in ("user_agent", "ip", "visitor_id", "consent", "email_normalized"):
        op.drop_column("lead", column)
    for column in ("archived_at", "updated_at", "min_fill_seconds", "honeypot_field", "consent_version",
                   "consent_text", "consent_required", "error_url", "success_url", "allowed_origins"):
        op.drop_column("form", column)
