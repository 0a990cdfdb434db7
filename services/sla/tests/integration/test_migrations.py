"""sla's migrations, frozen DDL included, build exactly what tables.py describes, and take it down again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from leadflow_kit.db import Database
from leadflow_kit.migrations import alembic_config, upgrade
from leadflow_sla.tables import metadata

from .conftest import MIGRATIONS

pytestmark = pytest.mark.integration


async def test_head_matches_the_tables_and_downgrades_to_nothing(infra: Any) -> None:
    url = await infra.new_database("sla_migrations")
    await asyncio.to_thread(upgrade, MIGRATIONS, url)
    db = Database(url)

    def differences(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    def tables(connection: Connection) -> list[str]:
        rows = connection.exec_driver_sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return sorted(row[0] for row in rows)

    try:
        async with db.engine.begin() as conn:
            assert await conn.run_sync(differences) == []
            policies = (await conn.exec_driver_sql("SELECT id FROM sla_policy ORDER BY id")).all()
            assert [p[0] for p in policies] == ["default-cold", "default-hot", "default-warm"]
        await asyncio.to_thread(command.downgrade, alembic_config(MIGRATIONS, url), "base")
        async with db.engine.begin() as conn:
            assert await conn.run_sync(tables) == ["alembic_version"]
    finally:
        await db.dispose()
