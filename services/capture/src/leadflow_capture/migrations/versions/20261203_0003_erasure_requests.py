"""erasure requests and each service's answer

Revision ID: 20261203_0003
Revises: 20261203_api_key_public_id
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "20261203_0003"
down_revision = "20261203_api_key_public_id"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erasure_request",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("person_key", sa.String(64)),
        sa.Column("lead_ids", ARRAY(sa.String(64)), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_erasure_request"),
    )
    op.create_index("ix_erasure_request_person_key", "erasure_request", ["person_key"])
    op.create_table(
        "erasure_status",
        sa.Column("erasure_id", sa.String(64), nullable=False),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("rows_erased", sa.Integer, nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["erasure_id"], ["erasure_request.id"], ondelete="CASCADE",
                                name="fk_erasure_status_erasure_id_erasure_request"),
        sa.PrimaryKeyConstraint("erasure_id", "service", name="pk_erasure_status"),
    )


def downgrade() -> None:
    op.drop_table("erasure_status")
    op.drop_index("ix_erasure_request_person_key", table_name="erasure_request")
    op.drop_table("erasure_request")
