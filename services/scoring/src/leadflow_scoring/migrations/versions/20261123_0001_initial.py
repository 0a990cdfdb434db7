"""initial: platform tables, model versions and activations, lead scores, history, activities, identities

Revision ID: 20261123_0001
Revises:
Create Date: 2026-11-23
"""

from alembic import op

from leadflow_kit.migrations import create_platform_tables, drop_platform_tables
from leadflow_scoring.tables import activity, lead_identity, lead_score, model_activation, score_change, scoring_model

revision = "20261123_0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = (scoring_model, model_activation, lead_score, score_change, activity, lead_identity)


def upgrade() -> None:
    create_platform_tables(op)
    for table in TABLES:
        table.create(op.get_bind())


def downgrade() -> None:
    for table in reversed(TABLES):
        table.drop(op.get_bind())
    drop_platform_tables(op)
