from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, String, Table, func
from sqlalchemy.dialects.postgresql import JSONB

from leadflow_kit.db import new_metadata

metadata = new_metadata()

form = Table(
    "form",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("field_mapping", JSONB, nullable=False, server_default="{}"),
    Column("required_fields", JSONB, nullable=False, server_default="[]"),
    Column("active", Boolean, nullable=False, server_default="true"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
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
)
