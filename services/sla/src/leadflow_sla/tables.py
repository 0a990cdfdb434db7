from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from leadflow_kit.db import new_metadata
from leadflow_kit.webhooks import define_webhook_tables

metadata = new_metadata()
# SLA notifications to owners and managers go out through the kit's webhook deliveries.
webhook_tables = define_webhook_tables(metadata)

# One row per event a lead went through, from every service: the timeline.
lead_event = Table(
    "lead_event",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("lead_id", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("stage", String(32), nullable=False),
    Column("source", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("lead_captured_at", DateTime(timezone=True)),
    Column("details", JSONB, nullable=False, server_default="{}"),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("lead_id", "event_id", name="uq_lead_event_lead_id_event_id"),
    Index("ix_lead_event_lead_id_at", "lead_id", "at"),
)

SEARCHABLE = "merged_into IS NULL AND captured_at IS NOT NULL"

# What the funnel needs to know about each lead, kept current from the events.
lead = Table(
    "lead",
    metadata,
    Column("lead_id", String(64), primary_key=True),
    Column("captured_at", DateTime(timezone=True)),
    Column("form_key", String(100)),
    Column("source", String(255)),
    Column("utm_campaign", String(255)),
    Column("tier", String(8)),
    Column("score", Float),
    Column("team_id", String(64)),
    Column("rep_id", String(64)),
    Column("stage_rank", Integer, nullable=False, server_default=text("0")),
    Column("mql_at", DateTime(timezone=True)),
    Column("accepted_at", DateTime(timezone=True)),
    Column("sql_at", DateTime(timezone=True)),
    Column("opportunity_at", DateTime(timezone=True)),
    Column("converted_at", DateTime(timezone=True)),
    Column("disqualified_at", DateTime(timezone=True)),
    Column("first_routed_at", DateTime(timezone=True)),
    Column("first_touch_at", DateTime(timezone=True)),
    Column("speed_to_lead_seconds", Float),
    Column("sla_outcome", String(16)),
    Column("breach_count", Integer, nullable=False, server_default=text("0")),
    # Set when enrichment found this fill to be a repeat of another lead: it is not a lead of its own.
    Column("merged_into", String(64)),
    # The latest clock-stopping touch, so a routed event that arrives after it opens no running clock.
    Column("last_stop_touch_at", DateTime(timezone=True)),
    Column("last_stop_touch_type", String(32)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The opportunity's value as the CRM last reported it, in its own currency; lost_at when it was lost.
    Column("deal_amount", Numeric(18, 4)),
    Column("deal_currency", String(3)),
    Column("lost_at", DateTime(timezone=True)),
    # Who the lead is and where it waits, for finding it (GET /v1/leads); personal data, erased with the row.
    Column("email", String(320)),
    Column("full_name", String(255)),
    Column("company", String(255)),
    Column("queue", String(64)),
    # Finding a lead: every filter has an index in capture order, and each sort key its own, so a page is
    # read off an index however many leads there are. Merged fills and leads not yet captured are not found.
    # The reports' and gauges' capture-date ranges (merged fills left out too) use the capture-order one: a
    # plain index on captured_at would be one more index written by every lead update (docs/performance.md).
    *(Index(f"ix_lead_search_{name}", key, "captured_at", "lead_id", postgresql_where=text(SEARCHABLE))
      for name, key in (("company", func.lower(text("company"))), ("rep", "rep_id"),
                        ("team", "team_id"), ("queue", "queue"), ("stage", "stage_rank"), ("tier", "tier"),
                        ("source", "source"), ("campaign", "utm_campaign"), ("form", "form_key"))),
    # Not partial: an erasure by email alone finds the person's leads, merged fills included, by it.
    Index("ix_lead_search_email", "email", "captured_at", "lead_id"),
    Index("ix_lead_search_captured_at", "captured_at", "lead_id", postgresql_where=text(SEARCHABLE)),
    Index("ix_lead_search_score", func.coalesce(text("score"), -1.0), "lead_id", postgresql_where=text(SEARCHABLE)),
    # A rep's, a team's or a queue's best leads first: the score order within the filter, not a sort of them all.
    *(Index(f"ix_lead_search_{name}_score", key, func.coalesce(text("score"), -1.0), "lead_id",
            postgresql_where=text(SEARCHABLE)) for name, key in (("rep", "rep_id"), ("team", "team_id"),
                                                                ("queue", "queue"))),
    # Room on each page for a lead's next versions: an update that changes no indexed column then stays
    # on the page and writes no index (HOT). A lead's row gets about eight versions in its first minute
    # (a lock per event, its changes), about three of them changing an indexed column.
    postgresql_with={"fillfactor": 70},
)

# What one unit of a currency is worth in the reporting currency (SLA_REPORTING_CURRENCY), set by an admin
# as a whole table in force from a day on (until the next table's day): an amount converts at the table in
# force on its own day. ALWAYS_IN_FORCE (0001-01-01) is a table set without a day, in force before any other.
currency_rate = Table(
    "currency_rate",
    metadata,
    Column("effective_from", Date, primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("rate", Numeric(24, 10), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The funnel gauges' figures (one row, id 1): one replica computes them once a refresh interval, holding
# computing_until meanwhile (if it dies, another takes over when that passes), and every replica publishes
# them, so the window is scanned once a minute however many replicas run.
funnel_gauge_figures = Table(
    "funnel_gauge_figures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("computed_at", DateTime(timezone=True)),
    Column("computing_until", DateTime(timezone=True)),
    Column("figures", JSONB),
)

# Marketing spend per campaign and source over a period of days (both ends included).
campaign_spend = Table(
    "campaign_spend",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("utm_campaign", String(255), nullable=False),
    Column("source", String(255), nullable=False),
    Column("period_from", Date, nullable=False),
    Column("period_to", Date, nullable=False),
    Column("amount", Numeric(18, 4), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_campaign_spend_period", "period_from", "period_to"),
)

sla_policy = Table(
    "sla_policy",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("tier", String(8), nullable=False),
    Column("team_id", String(64)),
    Column("target_seconds", Integer, nullable=False),
    Column("warning_ratio", Float, nullable=False, server_default=text("0.8")),
    Column("breach_limit", Integer, nullable=False, server_default=text("2")),
    Column("business_hours", JSONB),
    Column("use_owner_hours", Boolean, nullable=False, server_default="false"),
    Column("active", Boolean, nullable=False, server_default="true"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # One policy per tier and team; team_id NULL is the tier's default.
    Index("uq_sla_policy_tier_team", "tier", func.coalesce(text("team_id"), ""), unique=True),
)

# A rep's own working hours, for policies counted in the owner's business hours.
rep_calendar = Table(
    "rep_calendar",
    metadata,
    Column("rep_id", String(64), primary_key=True),
    Column("business_hours", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

sla_clock = Table(
    "sla_clock",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("lead_id", String(64), nullable=False, index=True),
    Column("routed_event_id", String(64), nullable=False, unique=True),
    Column("tier", String(8), nullable=False),
    Column("team_id", String(64)),
    Column("owner_rep_id", String(64)),
    Column("policy_id", String(64)),
    Column("correlation_id", String(64)),
    Column("lead_captured_at", DateTime(timezone=True)),
    Column("target_seconds", Integer, nullable=False),
    Column("warning_ratio", Float, nullable=False),
    Column("breach_limit", Integer, nullable=False),
    Column("business_hours", JSONB),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("warning_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),  # open | stopped | superseded
    Column("warned_at", DateTime(timezone=True)),
    Column("breached_at", DateTime(timezone=True)),
    Column("breach_number", Integer),
    # The next threshold to fire; NULL once nothing is left to fire. The scheduler reads only this index.
    Column("next_fire_at", DateTime(timezone=True)),
    Column("stopped_at", DateTime(timezone=True)),
    Column("stop_reason", String(32)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_sla_clock_next_fire_at", "next_fire_at", postgresql_where=text("next_fire_at IS NOT NULL")),
    Index("ix_sla_clock_open_tier", "tier", postgresql_where=text("status = 'open'")),
)

# Each warning and breach, once per clock and kind: the primary key makes a second emission impossible.
sla_notice = Table(
    "sla_notice",
    metadata,
    Column("clock_id", String(64), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("event_id", String(64), nullable=False),
    Column("lead_id", String(64), nullable=False),
    Column("threshold_at", DateTime(timezone=True), nullable=False),
    Column("emitted_at", DateTime(timezone=True), nullable=False),
    # A breach's number counts the lead's earlier breaches.
    Index("ix_sla_notice_lead_id_kind", "lead_id", "kind"),
)
