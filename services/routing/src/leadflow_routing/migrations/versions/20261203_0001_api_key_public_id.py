"""api key public id: listings show a random id, never the first characters of a key

Revision ID: 20261203_api_key_public_id
Revises: 20261123_0001
Create Date: 2026-12-03
"""

from alembic import op

from leadflow_kit.migrations import replace_api_key_prefix_with_public_id, restore_api_key_prefix

revision = "20261203_api_key_public_id"
down_revision = "20261123_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    replace_api_key_prefix_with_public_id(op)


def downgrade() -> None:
    restore_api_key_prefix(op)
