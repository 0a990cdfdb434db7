from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
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
from leadflow_kit.webhooks import define_webhook_tables

metadata = new_metadata()
webhook_tables = define_webhook_tables(metadata)

team = Table(
    "team",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("strategy", String(32), nullable=False, server_default="round_robin"),
    Column("manager_rep_id", String(64)),
    Column("escalate_after_breaches", Integer),
    Column("fallback_queue", String(100)),
    # Strategy state lives here so every replica sees (and row-locks) the same rotation.
    Column("rr_last_rep_id", String(64)),
    Column("assignments", BigInteger, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

rep = Table(
    "rep",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("email", String(320)),
    Column("team_id", String(64), ForeignKey("team.id"), index=True),
    Column("territories", ARRAY(String(64)), nullable=False, server_default="{}"),
    Column("weight", Integer, nullable=False, server_default=text("1")),
    Column("daily_capacity", Integer),
    Column("max_open_leads", Integer),
    Column("timezone", String(64), nullable=False, server_default="UTC"),
    Column("working_hours", JSONB),
    Column("out_of_office", JSONB, nullable=False, server_default="[]"),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("open_leads", Integer, nullable=False, server_default=text("0")),
    Column("assigned_today", Integer, nullable=False, server_default=text("0")),
    Column("assigned_day", Date),
    Column("rr_credit", BigInteger, nullable=False, server_default=text("0")),
    Column("last_assigned_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

queue = Table(
    "queue",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("description", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

routing_ruleset = Table(
    "routing_ruleset",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("rules", JSONB, nullable=False),
    Column("fallback_queue", String(100)),
    # When a lead goes to sales: "first_fill", or "mql" (everyone else waits in nurture).
    Column("handoff", String(16), nullable=False, server_default="first_fill"),
    Column("comment", Text),
    Column("active", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("activated_at", DateTime(timezone=True)),
    Index("uq_routing_ruleset_active", "active", unique=True, postgresql_where=text("active")),
)

lead = Table(
    "lead",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("data", JSONB, nullable=False),
    Column("correlation_id", String(64)),
    Column("lead_captured_at", DateTime(timezone=True)),
    Column("status", String(16), nullable=False, server_default="new"),
    Column("owner_rep_id", String(64), index=True),
    Column("team_id", String(64)),
    Column("queue", String(100)),
    Column("last_assignment_id", String(64)),
    Column("breach_count", Integer, nullable=False, server_default=text("0")),
    Column("routed_at", DateTime(timezone=True)),
    Column("closed_at", DateTime(timezone=True)),
    # A lead sent back to nurture by the CRM is not handed off again before this moment.
    Column("handoff_after", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # When the lead.mql webhook went out: it is sent once, the first time the lead is an MQL.
    Column("mql_notified_at", DateTime(timezone=True)),
)

# The last SLA warning or breach routing saw for each lead (from leads.sla): the state a queue's
# listing shows, for the clock started when the lead entered the queue (``started_at`` >= ``routed_at``).
lead_sla = Table(
    "lead_sla",
    metadata,
    Column("lead_id", String(64), primary_key=True),
    Column("clock_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("breach_count", Integer, nullable=False, server_default=text("0")),
    Column("at", DateTime(timezone=True), nullable=False),
)

# A queue's waiting leads, oldest first (the worked queue's listing and its pages).
Index("ix_lead_queued_routed_at", lead.c.queue, lead.c.routed_at, lead.c.id,
      postgresql_where=text("status = 'queued'"))

assignment = Table(
    "assignment",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("lead_id", String(64), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("rep_id", String(64)),
    Column("team_id", String(64)),
    Column("queue", String(100)),
    Column("reason", Text, nullable=False),
    Column("rule_id", String(100)),
    Column("ruleset_version", Integer),
    Column("strategy", String(32)),
    Column("reroute", Boolean, nullable=False, server_default=text("false")),
    Column("reroute_reason", String(64)),
    Column("previous_owner_rep_id", String(64)),
    Column("escalated", Boolean, nullable=False, server_default=text("false")),
    Column("audit", JSONB, nullable=False),
    Column("event_id", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_assignment_lead_id_created_at", "lead_id", "created_at"),
)

touch = Table(
    "touch",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("lead_id", String(64), nullable=False, index=True),
    Column("touch_type", String(32), nullable=False),
    Column("rep_id", String(64)),
    Column("owner_rep_id", String(64)),
    Column("owner_mismatch", Boolean, nullable=False, server_default=text("false")),
    Column("reason", Text),
    Column("integration", String(255)),
    Column("external_id", String(255)),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("uq_touch_integration_external_id", "integration", "external_id", unique=True,
          postgresql_where=text("external_id IS NOT NULL")),
)

# -- issue 18 item 3: reps told at once (leadflow_routing.notifications) -----------------------

rep_notification_settings = Table(
    "rep_notification_settings",
    metadata,
    Column("rep_id", String(64), ForeignKey("rep.id"), primary_key=True),
    Column("email", String(320)),
    Column("slack_user_id", String(32)),
    Column("channels", ARRAY(String(16)), nullable=False, server_default="{}"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# A team's Slack incoming-webhook URL, Fernet-encrypted (the URL is the credential).
team_slack_webhook = Table(
    "team_slack_webhook",
    metadata,
    Column("team_id", String(64), ForeignKey("team.id"), primary_key=True),
    Column("url_ciphertext", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# One message to one rep on one channel, written with the assignment (or the SLA warning) it tells
# of, sent after commit by the notification sender.
rep_notification = Table(
    "rep_notification",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("cause_event_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("rep_id", String(64), nullable=False),
    Column("team_id", String(64)),
    Column("lead_id", String(64), nullable=False, index=True),
    Column("content", JSONB, nullable=False),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("leased_until", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    Index("uq_rep_notification_cause", "cause_event_id", "rep_id", "channel", unique=True),
    Index("ix_rep_notification_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
)

# routing's replica of sla's SLA configuration (the compacted sla.policies topic): read to put the due
# time sla's clock will have on the lead.routed webhook. A deleted policy or calendar keeps its row with
# no terms, so an older record arriving late cannot bring it back.
sla_policy_replica = Table(
    "sla_policy_replica",
    metadata,
    Column("policy_id", String(64), primary_key=True),
    Column("tier", String(8)),
    Column("terms", JSONB),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)

sla_calendar_replica = Table(
    "sla_calendar_replica",
    metadata,
    Column("rep_id", String(64), primary_key=True),
    Column("business_hours", JSONB),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)

# A scored lead whose team (or rep) another transaction held longer than the claim's grace: kept here, in
# the transaction that consumed its event, and routed by the parked-lead drainer once the row is free
# (``handlers.route_parked_leads``), so a slow team holds back only its own leads. ``seq`` is the order
# the events arrived in; a lead's later events park behind its earlier ones.
parked_lead = Table(
    "parked_lead",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
    Column("lead_id", String(64), nullable=False, index=True),
    Column("event", JSONB, nullable=False),
    Column("waiting_for", ARRAY(Text), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("parked_at", DateTime(timezone=True), nullable=False),
)
