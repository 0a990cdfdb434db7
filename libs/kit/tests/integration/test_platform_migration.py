"""The frozen platform DDL of the first revision builds exactly what leadflow_kit.db describes."""

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.engine import Connection

from leadflow_kit.db import Database, new_metadata
from leadflow_kit.migrations import create_platform_tables, drop_platform_tables

pytestmark = pytest.mark.integration


async def test_the_first_revision_matches_the_platform_tables(infra: Any) -> None:
    db = Database(await infra.new_database("kit_migration"))

    def migrate_and_compare(connection: Connection) -> list[Any]:
        create_platform_tables(Operations(MigrationContext.configure(connection)))
        return list(compare_metadata(MigrationContext.configure(connection), new_metadata()))

    def drop(connection: Connection) -> list[str]:
        drop_platform_tables(Operations(MigrationContext.configure(connection)))
        tables = connection.exec_driver_sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return [row[0] for row in tables]

    try:
        async with db.engine.begin() as conn:
            assert await conn.run_sync(migrate_and_compare) == []
        async with db.engine.begin() as conn:
            assert await conn.run_sync(drop) == []
    finally:
        await db.dispose()
