"""initial: platform tables, timeline, lead facts, SLA policies, calendars, clocks and notices

Revision ID: 20261123_0001
Revises:
Create Date: 2026-11-23
"""

from alembic import op

from leadflow_kit.migrations import create_platform_tables, drop_platform_tables
from leadflow_sla.domain import DEFAULT_BREACH_LIMIT, DEFAULT_TARGET_SECONDS, DEFAULT_WARNING_RATIO, TIERS
from leadflow_sla.tables import lead, lead_event, rep_calendar, sla_clock, sla_notice, sla_policy

revision = "20261123_0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = (lead_event, lead, sla_policy, rep_calendar, sla_clock, sla_notice)


def upgrade() -> None:
    create_platform_tables(op)
    for table in TABLES:
        table.create(op.get_bind())
    op.bulk_insert(
        sla_policy,
        [
            {"id": f"default-{tier}", "name": f"Default {tier}", "tier": tier,
             "target_seconds": DEFAULT_TARGET_SECONDS[tier], "warning_ratio": DEFAULT_WARNING_RATIO,
             "breach_limit": DEFAULT_BREACH_LIMIT}
            for tier in TIERS
        ],
    )


def downgrade() -> None:
    for table in reversed(TABLES):
        table.drop(op.get_bind())
    drop_platform_tables(op)
