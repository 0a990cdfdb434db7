from __future__ import annotations

from sqlalchemy import (
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
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from leadflow_kit.db import new_metadata

metadata = new_metadata()

form = Table(
    "form",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("field_mapping", JSONB, nullable=False, server_default="{}"),
    Column("required_fields", JSONB, nullable=False, server_default="[]"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("allowed_origins", JSONB, nullable=False, server_default="[]"),
    Column("success_url", Text),
    Column("error_url", Text),
    Column("consent_required", Boolean, nullable=False, server_default="false"),
    Column("consent_text", Text),
    Column("consent_version", String(64)),
    Column("honeypot_field", String(100), nullable=False, server_default="_hp"),
    Column("min_fill_seconds", Float, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("archived_at", DateTime(timezone=True)),
)

lead = Table(
    "lead",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("form_key", String(100), nullable=False, index=True),
    Column("contact", JSONB, nullable=False),
    Column("custom_fields", JSONB, nullable=False, server_default="{}"),
    Column("attribution", JSONB, nullable=False, server_default="{}"),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("email_normalized", String(320)),
    Column("consent", JSONB),
    Column("visitor_id", String(128)),
    Column("ip", String(64)),
    Column("user_agent", Text),
    Index("ix_lead_double_submit", "form_key", "email_normalized", "submitted_at"),
)

idempotency_key = Table(
    "idempotency_key",
    metadata,
    Column("scope", String(150), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status_code", Integer),
    Column("headers", JSONB, nullable=False, server_default="{}"),
    Column("body", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_idempotency_key_created_at", "created_at"),
)

activity = Table(
    "activity",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("activity_type", String(64), nullable=False),
    Column("lead_id", String(64)),
    Column("email", String(320)),
    Column("visitor_id", String(128)),
    Column("page_url", Text),
    Column("properties", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Erasure requests (GDPR art. 17). No email is kept: the person is named by an opaque key (so a
# repeated request finds the open one) and by the lead ids the request erased.
erasure_request = Table(
    "erasure_request",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("person_key", String(64), index=True),
    Column("lead_ids", ARRAY(String(64)), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
)

# Each service's answer to an erasure request.
erasure_status = Table(
    "erasure_status",
    metadata,
    Column("erasure_id", String(64), ForeignKey("erasure_request.id", ondelete="CASCADE"), primary_key=True),
    Column("service", String(32), primary_key=True),
    Column("rows_erased", Integer, nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=False),
)
