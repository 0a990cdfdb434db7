"""Alembic glue: each service keeps its own migrations; the platform tables come from here."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.operations import Operations
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from leadflow_kit.db import OUTBOX_CHANNEL, new_metadata


def alembic_config(script_location: Path, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    # Kept out of the ini options so a password with '%' needs no escaping.
    config.attributes["database_url"] = database_url
    return config


def upgrade(script_location: Path, database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(script_location, database_url), revision)


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
    """Called from each service's first revision: outbox, processed_event, api_key and the NOTIFY trigger."""
    bind = op.get_bind()
    new_metadata().create_all(bind)
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


def drop_platform_tables(op: Operations) -> None:
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute("DROP FUNCTION IF EXISTS leadflow_notify_outbox()")
    new_metadata().drop_all(op.get_bind())
