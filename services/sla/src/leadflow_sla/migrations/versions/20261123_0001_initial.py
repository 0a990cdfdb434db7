"""initial: platform tables, timeline, lead facts, SLA policies, calendars, clocks and notices

Revision ID: 20261123_0001
Revises:
Create Date: 2026-11-23
"""

from alembic import op

from leadflow_kit.migrations import create_platform_tables, drop_platform_tables

revision = "20261123_0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen DDL: a revision must build the same schema whatever tables.py says later (later columns and
# indexes come with their own revisions). tests/integration/test_migrations.py proves head == tables.py.
TABLES_DDL = """
CREATE TABLE lead_event (
    id BIGSERIAL NOT NULL,
    lead_id VARCHAR(64) NOT NULL,
    event_id VARCHAR(64) NOT NULL,
    event_type VARCHAR(64) NOT NULL,
    stage VARCHAR(32) NOT NULL,
    source VARCHAR(64) NOT NULL,
    at TIMESTAMP WITH TIME ZONE NOT NULL,
    lead_captured_at TIMESTAMP WITH TIME ZONE,
    details JSONB DEFAULT '{}' NOT NULL,
    recorded_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_lead_event PRIMARY KEY (id),
    CONSTRAINT uq_lead_event_lead_id_event_id UNIQUE (lead_id, event_id)
);
CREATE INDEX ix_lead_event_lead_id_at ON lead_event (lead_id, at);
CREATE TABLE lead (
    lead_id VARCHAR(64) NOT NULL,
    captured_at TIMESTAMP WITH TIME ZONE,
    form_key VARCHAR(100),
    source VARCHAR(255),
    utm_campaign VARCHAR(255),
    tier VARCHAR(8),
    score FLOAT,
    team_id VARCHAR(64),
    rep_id VARCHAR(64),
    stage_rank INTEGER DEFAULT 0 NOT NULL,
    mql_at TIMESTAMP WITH TIME ZONE,
    accepted_at TIMESTAMP WITH TIME ZONE,
    sql_at TIMESTAMP WITH TIME ZONE,
    opportunity_at TIMESTAMP WITH TIME ZONE,
    converted_at TIMESTAMP WITH TIME ZONE,
    disqualified_at TIMESTAMP WITH TIME ZONE,
    first_routed_at TIMESTAMP WITH TIME ZONE,
    first_touch_at TIMESTAMP WITH TIME ZONE,
    speed_to_lead_seconds FLOAT,
    sla_outcome VARCHAR(16),
    breach_count INTEGER DEFAULT 0 NOT NULL,
    last_stop_touch_at TIMESTAMP WITH TIME ZONE,
    last_stop_touch_type VARCHAR(32),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_lead PRIMARY KEY (lead_id)
);
CREATE INDEX ix_lead_captured_at ON lead (captured_at);
CREATE TABLE sla_policy (
    id VARCHAR(64) NOT NULL,
    name VARCHAR(255) NOT NULL,
    tier VARCHAR(8) NOT NULL,
    team_id VARCHAR(64),
    target_seconds INTEGER NOT NULL,
    warning_ratio FLOAT DEFAULT 0.8 NOT NULL,
    breach_limit INTEGER DEFAULT 2 NOT NULL,
    business_hours JSONB,
    use_owner_hours BOOLEAN DEFAULT 'false' NOT NULL,
    active BOOLEAN DEFAULT 'true' NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_sla_policy PRIMARY KEY (id)
);
CREATE UNIQUE INDEX uq_sla_policy_tier_team ON sla_policy (tier, coalesce(team_id, ''));
CREATE TABLE rep_calendar (
    rep_id VARCHAR(64) NOT NULL,
    business_hours JSONB NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_rep_calendar PRIMARY KEY (rep_id)
);
CREATE TABLE sla_clock (
    id VARCHAR(64) NOT NULL,
    lead_id VARCHAR(64) NOT NULL,
    routed_event_id VARCHAR(64) NOT NULL,
    tier VARCHAR(8) NOT NULL,
    team_id VARCHAR(64),
    owner_rep_id VARCHAR(64),
    policy_id VARCHAR(64),
    correlation_id VARCHAR(64),
    lead_captured_at TIMESTAMP WITH TIME ZONE,
    target_seconds INTEGER NOT NULL,
    warning_ratio FLOAT NOT NULL,
    breach_limit INTEGER NOT NULL,
    business_hours JSONB,
    started_at TIMESTAMP WITH TIME ZONE NOT NULL,
    warning_at TIMESTAMP WITH TIME ZONE NOT NULL,
    due_at TIMESTAMP WITH TIME ZONE NOT NULL,
    status VARCHAR(16) NOT NULL,
    warned_at TIMESTAMP WITH TIME ZONE,
    breached_at TIMESTAMP WITH TIME ZONE,
    breach_number INTEGER,
    next_fire_at TIMESTAMP WITH TIME ZONE,
    stopped_at TIMESTAMP WITH TIME ZONE,
    stop_reason VARCHAR(32),
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_sla_clock PRIMARY KEY (id),
    CONSTRAINT uq_sla_clock_routed_event_id UNIQUE (routed_event_id)
);
CREATE INDEX ix_sla_clock_lead_id ON sla_clock (lead_id);
CREATE INDEX ix_sla_clock_next_fire_at ON sla_clock (next_fire_at) WHERE next_fire_at IS NOT NULL;
CREATE INDEX ix_sla_clock_open_tier ON sla_clock (tier) WHERE status = 'open';
CREATE TABLE sla_notice (
    clock_id VARCHAR(64) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    event_id VARCHAR(64) NOT NULL,
    lead_id VARCHAR(64) NOT NULL,
    threshold_at TIMESTAMP WITH TIME ZONE NOT NULL,
    emitted_at TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT pk_sla_notice PRIMARY KEY (clock_id, kind)
);
"""

# The policies every tier starts with, as they were at this revision.
DEFAULT_POLICIES = """
INSERT INTO sla_policy (id, name, tier, target_seconds, warning_ratio, breach_limit) VALUES
    ('default-hot', 'Default hot', 'hot', 300, 0.8, 2),
    ('default-warm', 'Default warm', 'warm', 3600, 0.8, 2),
    ('default-cold', 'Default cold', 'cold', 86400, 0.8, 2)
"""


def upgrade() -> None:
    create_platform_tables(op)
    # One statement per execute: asyncpg prepares each, and a prepared statement holds one command.
    for statement in TABLES_DDL.split(";"):
        if statement.strip():
            op.execute(statement)
    op.execute(DEFAULT_POLICIES)


def downgrade() -> None:
    for table in ("sla_notice", "sla_clock", "rep_calendar", "sla_policy", "lead", "lead_event"):
        op.execute(f"DROP TABLE {table}")
    drop_platform_tables(op)
