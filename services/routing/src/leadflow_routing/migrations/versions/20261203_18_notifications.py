"""reps told at once: reps' notification settings, teams' Slack webhooks (encrypted), pending notifications

Revision ID: 20261203_18_notifications
Revises: 20261203_outbox_no_notify
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "20261203_18_notifications"
down_revision = "20261203_outbox_no_notify"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rep_notification_settings",
        sa.Column("rep_id", sa.String(64), sa.ForeignKey("rep.id"), primary_key=True),
        sa.Column("email", sa.String(320)),
        sa.Column("slack_user_id", sa.String(32)),
        sa.Column("channels", ARRAY(sa.String(16)), nullable=False, server_default="{}"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "team_slack_webhook",
        sa.Column("team_id", sa.String(64), sa.ForeignKey("team.id"), primary_key=True),
        sa.Column("url_ciphertext", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "rep_notification",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("cause_event_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("rep_id", sa.String(64), nullable=False),
        sa.Column("team_id", sa.String(64)),
        sa.Column("lead_id", sa.String(64), nullable=False),
        sa.Column("content", JSONB, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_rep_notification_lead_id", "rep_notification", ["lead_id"])
    op.create_index("uq_rep_notification_cause", "rep_notification", ["cause_event_id", "rep_id", "channel"],
                    unique=True)
    op.create_index("ix_rep_notification_due", "rep_notification", ["next_attempt_at"],
                    postgresql_where=sa.text("status = 'pending'"))


def downgrade() -> None:
    op.drop_table("rep_notification")
    op.drop_table("team_slack_webhook")
    op.drop_table("rep_notification_settings")
