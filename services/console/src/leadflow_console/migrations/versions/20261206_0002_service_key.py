"""The console's keys on the five services, kept encrypted by `provision-keys`.

Revision ID: 20261206_0002
Revises: 20261203_0001
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "20261206_0002"
down_revision = "20261203_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_service_key",
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("encrypted_key", sa.Text, nullable=False),
        sa.Column("scopes", ARRAY(sa.String(64)), nullable=False),
        sa.Column("minted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("service", name="pk_console_service_key"),
    )


def downgrade() -> None:
    op.drop_table("console_service_key")
