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
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from leadflow_kit.db import new_metadata

metadata = new_metadata()

# One row per person: the canonical lead that repeat fills of the same email merge into.
lead = Table(
    "lead",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("email", String(320), unique=True),
    Column("form_key", String(100), nullable=False),
    Column("original", JSONB, nullable=False),
    Column("profile", JSONB, nullable=False),
    Column("account", JSONB),
    Column("quality", JSONB, nullable=False),
    Column("partial", Boolean, nullable=False, server_default=text("false")),
    Column("partial_reasons", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("custom_fields", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("fill_count", Integer, nullable=False, server_default=text("1")),
    Column("enrichment_ms", Float),
    Column("first_submitted_at", DateTime(timezone=True), nullable=False),
    Column("last_submitted_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Every form fill as capture sent it, linked to the lead it became or merged into.
lead_fill = Table(
    "lead_fill",
    metadata,
    Column("captured_lead_id", String(64), primary_key=True),
    Column("lead_id", String(64), ForeignKey("lead.id"), nullable=False, index=True),
    Column("form_key", String(100), nullable=False),
    Column("original", JSONB, nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("duplicate", Boolean, nullable=False),
    Column("enriched_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # What the data-quality report counts: the fill's source (utm_source), its lead's quality reasons as the
    # fill left it, and the provider's answer when the fill asked it (NULL when it did not).
    Column("source", String(255)),
    Column("reasons", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("provider_outcome", String(32)),
    Index("ix_lead_fill_submitted_at", "submitted_at"),
)

account = Table(
    "account",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    # The name with case, punctuation and legal suffixes removed: what fuzzy matching compares.
    Column("name_key", String(255), nullable=False, index=True),
    Column("domains", ARRAY(String(255)), nullable=False, server_default=text("'{}'")),
    Column("industry", String(255)),
    Column("employee_count", Integer),
    Column("annual_revenue", Float),
    Column("country", String(2)),
    Column("owner_rep_id", String(64)),
    Column("tier", String(32)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

account_domain = Table(
    "account_domain",
    metadata,
    Column("domain", String(255), primary_key=True),
    Column("account_id", String(64), ForeignKey("account.id", ondelete="CASCADE"), nullable=False),
    Index("ix_account_domain_account_id", "account_id"),
)

# Bumped with every directory change, so each replica knows when its in-memory name index is stale.
account_directory = Table(
    "account_directory",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False, server_default=text("0")),
)
