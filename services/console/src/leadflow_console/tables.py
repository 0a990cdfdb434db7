"""The console's own tables: its users and their sessions (nothing of the five services' data)."""

from __future__ import annotations

from sqlalchemy import ARRAY, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, func, text

from leadflow_kit.db import NAMING_CONVENTION

metadata = MetaData(naming_convention=NAMING_CONVENTION)

user_table = Table(
    "console_user",
    metadata,
    Column("id", String(64), primary_key=True),
    # Stored lower-cased: "Admin" and "admin" are one user.
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(255), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(32), nullable=False),
    # A rep user acts for this routing rep; a manager user for these routing teams.
    Column("rep_id", String(255)),
    Column("team_ids", ARRAY(String(255)), nullable=False, server_default=text("'{}'")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("disabled_at", DateTime(timezone=True)),
    Column("failed_sign_ins", Integer, nullable=False, server_default=text("0")),
    Column("locked_until", DateTime(timezone=True)),
)

session_table = Table(
    "console_session",
    metadata,
    # SHA-256 of the session token: a copy of the table signs nobody in.
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(64), ForeignKey("console_user.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_console_session_user_id", "user_id"),
)
