"""The console's own tables: its users, their sessions and its keys on the five services (nothing of the
services' data)."""

from __future__ import annotations

from sqlalchemy import ARRAY, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, Text, func, text

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

service_key_table = Table(
    "console_service_key",
    metadata,
    # The console's key on this service, minted by `provision-keys` with the service's admin key.
    Column("service", String(32), primary_key=True),
    # The service's id of the key (to revoke it when it is replaced).
    Column("key_id", String(64), nullable=False),
    # Fernet token of the key under CONSOLE_ENCRYPTION_KEYS: a copy of the table calls no service.
    Column("encrypted_key", Text, nullable=False),
    Column("scopes", ARRAY(String(64)), nullable=False),
    Column("minted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
