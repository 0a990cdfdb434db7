"""Alembic glue: each service keeps its own migrations; the platform tables come from here."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command, context
from alembic.config import Config
from alembic.operations import Operations
from sqlalchemy import MetaData, pool
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from leadflow_kit.db import OUTBOX_CHANNEL


def alembic_config(script_location: Path, database_url: str, attributes: Mapping[str, Any] | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    # Kept out of the ini options so a password with '%' needs no escaping.
    config.attributes.update(attributes or {})
    config.attributes["database_url"] = database_url
    return config


def upgrade(script_location: Path, database_url: str, revision: str = "head",
            attributes: Mapping[str, Any] | None = None) -> None:
    """``attributes`` reach the revisions as ``context.config.attributes`` (the settings'
    ``migration_attributes()``, e.g. the key that encrypts webhook secrets)."""
    command.upgrade(alembic_config(script_location, database_url, attributes), revision)


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's ``migrations/env.py``."""
    url = context.config.attributes.get("database_url")
    if not url:
        raise RuntimeError("database_url missing: run migrations through `python -m leadflow_<svc> migrate`")

    def run(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(run)
        await engine.dispose()

    asyncio.run(main())


def create_platform_tables(op: Operations) -> None:
    """Called from each service's first revision: outbox, processed_event, api_key and the NOTIFY trigger.

    The DDL is spelled out as it was at that revision, not taken from ``leadflow_kit.db``: a later
    change to a platform table must arrive as a new revision, never by rewriting history.
    """
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("headers", JSONB, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("last_error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("event_id", name="uq_outbox_event_id"),
    )
    op.create_index("ix_outbox_unpublished", "outbox", ["id"], postgresql_where=sa.text("published_at IS NULL"))
    op.create_table(
        "processed_event",
        sa.Column("consumer", sa.String(255), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("consumer", "event_id", name="pk_processed_event"),
    )
    op.create_index("ix_processed_event_processed_at", "processed_event", ["processed_at"])
    op.create_table(
        "api_key",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("key_prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(128), nullable=False),
        sa.Column("scopes", ARRAY(sa.String(64)), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_api_key"),
        sa.UniqueConstraint("key_hash", name="uq_api_key_key_hash"),
    )
    restore_outbox_notify(op)


def replace_api_key_prefix_with_public_id(op: Operations) -> None:
    """A later platform revision: listings showed each key's first 8 characters (5 of its secret);
    keys get a random public id instead, and the prefix is dropped. Bootstrap keys were named
    after their hash: they take the public id as their name instead."""
    op.add_column("api_key", sa.Column("public_id", sa.String(16)))
    op.execute("UPDATE api_key SET public_id = substr(md5(random()::text || id), 1, 12)")
    op.execute("UPDATE api_key SET id = 'bootstrap-' || public_id WHERE id LIKE 'bootstrap-%'")
    op.alter_column("api_key", "public_id", nullable=False)
    op.create_unique_constraint("uq_api_key_public_id", "api_key", ["public_id"])
    op.drop_column("api_key", "key_prefix")


def restore_api_key_prefix(op: Operations) -> None:
    # The secret's first characters are gone for good: downgraded keys show their public id there.
    op.add_column("api_key", sa.Column("key_prefix", sa.String(16)))
    op.execute("UPDATE api_key SET key_prefix = public_id")
    op.alter_column("api_key", "key_prefix", nullable=False)
    op.drop_constraint("uq_api_key_public_id", "api_key", type_="unique")
    op.drop_column("api_key", "public_id")


def drop_outbox_notify(op: Operations) -> None:
    """A later platform revision: the writing process now sends its outbox rows itself and the relay
    polls for stale ones, so no insert needs to wake it (a NOTIFY serializes every commit that sends one)."""
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute("DROP FUNCTION IF EXISTS leadflow_notify_outbox()")


def restore_outbox_notify(op: Operations) -> None:
    """The NOTIFY trigger as the first revision created it (a relay LISTENed for new rows)."""
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION leadflow_notify_outbox() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('{OUTBOX_CHANNEL}', '');
            RETURN NULL;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox "
        "FOR EACH STATEMENT EXECUTE FUNCTION leadflow_notify_outbox()"
    )


def add_outbox_key_index(op: Operations) -> None:
    """A later platform revision: the outbox's rows of a key, in id order. A direct publisher checks
    each row it sends for an older row of its key; through the id index that check walked every row,
    and every deleted row not yet vacuumed, below it (3 ms a batch under load)."""
    op.create_index("ix_outbox_topic_key", "outbox", ["topic", "key", "id"])


def drop_outbox_key_index(op: Operations) -> None:
    op.drop_index("ix_outbox_topic_key", "outbox")


def drop_platform_tables(op: Operations) -> None:
    drop_outbox_notify(op)
    for table in ("api_key", "processed_event", "outbox"):
        op.drop_table(table)
