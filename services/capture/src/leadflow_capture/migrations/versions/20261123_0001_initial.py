"""initial: platform tables, forms and leads

Revision ID: 20261123_0001
Revises:
Create Date: 2026-11-23
"""

from alembic import op

from leadflow_capture.tables import form, lead
from leadflow_kit.migrations import create_platform_tables, drop_platform_tables

revision = "20261123_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_platform_tables(op)
    form.create(op.get_bind())
    lead.create(op.get_bind())


def downgrade() -> None:
    lead.drop(op.get_bind())
    form.drop(op.get_bind())
    drop_platform_tables(op)
