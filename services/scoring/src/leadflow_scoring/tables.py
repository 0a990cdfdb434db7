from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from leadflow_kit.db import new_metadata

metadata = new_metadata()

# Every version of the scoring model ever saved; rows are never changed or deleted.
scoring_model = Table(
    "scoring_model",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("version", Integer, nullable=False, unique=True),
    Column("name", String(64), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("spec", JSONB, nullable=False),
    Column("source_text", Text),
    Column("created_by", String(255)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The activation log: the active model is the latest activation not rolled back.
model_activation = Table(
    "model_activation",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("model_id", String(100), ForeignKey("scoring_model.id"), nullable=False),
    Column("activated_by", String(255)),
    Column("activated_at", DateTime(timezone=True), nullable=False),
    Column("rolled_back_at", DateTime(timezone=True)),
    Column("rolled_back_by", String(255)),
)

lead_score = Table(
    "lead_score",
    metadata,
    Column("lead_id", String(64), primary_key=True),
    Column("email", String(320), index=True),
    Column("enriched", JSONB, nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("captured_at", DateTime(timezone=True)),
    Column("score", Float, nullable=False),
    Column("fit_points", Float, nullable=False),
    Column("behavior_points", Float, nullable=False),
    Column("fit_grade", String(1), nullable=False),
    Column("engagement_level", Integer, nullable=False),
    Column("tier", String(8), nullable=False),
    Column("is_mql", Boolean, nullable=False),
    Column("model_id", String(100), nullable=False),
    Column("breakdown", JSONB, nullable=False),
    Column("lifecycle_stage", String(16), nullable=False),
    Column("stage_changed_at", DateTime(timezone=True), nullable=False),
    Column("mql_at", DateTime(timezone=True)),
    Column("scored_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_lead_score_sweep", "scored_at", postgresql_where=text("lifecycle_stage IN ('lead', 'mql', 'recycled')")),
    Index("ix_lead_score_updated_at", "updated_at"),
)

# How each published score came about: one row per lead.scored event.
score_change = Table(
    "score_change",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("lead_id", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("cause", String(255)),
    Column("score", Float, nullable=False),
    Column("previous_score", Float),
    Column("fit_grade", String(1), nullable=False),
    Column("engagement_level", Integer, nullable=False),
    Column("tier", String(8), nullable=False),
    Column("is_mql", Boolean, nullable=False),
    Column("model_id", String(100), nullable=False),
    Column("breakdown", JSONB, nullable=False),
    Column("lifecycle_stage", String(16), nullable=False),
    Column("previous_stage", String(16)),
    Index("ix_score_change_lead_id_id", "lead_id", "id"),
)

# Behavioral events, credited to a lead (lead_id) or waiting for one to be identified.
activity = Table(
    "activity",
    metadata,
    Column("activity_id", String(255), primary_key=True),
    Column("lead_id", String(64)),
    Column("wanted_lead_id", String(64)),
    Column("email", String(320)),
    Column("visitor_id", String(255)),
    Column("activity_type", String(100), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("page_url", Text),
    Column("properties", JSONB, nullable=False, server_default="{}"),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("credited_at", DateTime(timezone=True)),
    Index("ix_activity_lead_id_occurred_at", "lead_id", "occurred_at"),
    Index("ix_activity_pending_visitor", "visitor_id", postgresql_where=text("lead_id IS NULL")),
    Index("ix_activity_pending_email", "email", postgresql_where=text("lead_id IS NULL")),
    Index("ix_activity_pending_lead", "wanted_lead_id", postgresql_where=text("lead_id IS NULL")),
)

# What identifies a known lead: its email, the visitor ids seen with it, and every lead id
# capture gave its form fills (a duplicate fill's id points at the canonical lead).
lead_identity = Table(
    "lead_identity",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("value", String(320), primary_key=True),
    Column("lead_id", String(64), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
