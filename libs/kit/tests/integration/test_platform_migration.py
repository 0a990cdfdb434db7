"""The frozen platform DDL of the first revision, with the later platform revisions, builds exactly
what leadflow_kit.db describes; the api key revision gives existing keys a public id; the outbox
revision drops the NOTIFY trigger (and its downgrade brings it back)."""

import re
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.engine import Connection

from leadflow_kit.db import Database, new_metadata
from leadflow_kit.migrations import (
    add_outbox_key_index,
    create_platform_tables,
    drop_outbox_notify,
    drop_platform_tables,
    replace_api_key_prefix_with_public_id,
    restore_api_key_prefix,
    restore_outbox_notify,
)

pytestmark = pytest.mark.integration


async def test_the_first_revision_matches_the_platform_tables(infra: Any) -> None:
    db = Database(await infra.new_database("kit_migration"))

    def migrate_and_compare(connection: Connection) -> list[Any]:
        op = Operations(MigrationContext.configure(connection))
        create_platform_tables(op)
        connection.exec_driver_sql(
            "INSERT INTO api_key (id, name, key_prefix, key_hash, scopes) VALUES "
            "('k1', 'old', 'lf_Xy7Q9', 'h1', '{forms:read}'), ('k2', 'old', 'lf_Ab3De', 'h2', '{*}'), "
            "('bootstrap-5e884898da28', 'bootstrap', 'dev-admi', '5e884898da28047151d0e56f8dc6292773603d0d', '{*}')")
        replace_api_key_prefix_with_public_id(op)
        add_outbox_key_index(op)
        return list(compare_metadata(MigrationContext.configure(connection), new_metadata()))

    def public_ids(connection: Connection) -> list[tuple[str, str]]:
        return [(row[0], row[1]) for row in connection.exec_driver_sql("SELECT id, public_id FROM api_key ORDER BY id")]

    def down_and_up(connection: Connection) -> list[Any]:
        op = Operations(MigrationContext.configure(connection))
        restore_api_key_prefix(op)
        replace_api_key_prefix_with_public_id(op)
        return list(compare_metadata(MigrationContext.configure(connection), new_metadata()))

    def drop(connection: Connection) -> list[str]:
        drop_platform_tables(Operations(MigrationContext.configure(connection)))
        tables = connection.exec_driver_sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return [row[0] for row in tables]

    try:
        async with db.engine.begin() as conn:
            assert await conn.run_sync(migrate_and_compare) == []
            rows = await conn.run_sync(public_ids)
            ids = [public_id for _, public_id in rows]
            # Random, distinct and nothing of the old prefixes (which held part of each secret).
            assert len(set(ids)) == 3
            assert all(re.fullmatch(r"[0-9a-f]{12}", i) for i in ids)
            # The bootstrap key is no longer named after its hash.
            bootstrap = [(key_id, public_id) for key_id, public_id in rows if key_id.startswith("bootstrap-")]
            assert len(bootstrap) == 1 and bootstrap[0][0] == f"bootstrap-{bootstrap[0][1]}"
            assert "5e884898" not in str(rows)
            assert await conn.run_sync(down_and_up) == []
        async with db.engine.begin() as conn:
            assert await conn.run_sync(drop) == []
    finally:
        await db.dispose()


async def test_the_outbox_revision_drops_the_notify_trigger_and_its_downgrade_restores_it(infra: Any) -> None:
    db = Database(await infra.new_database("kit_migration"))

    def triggers(connection: Connection) -> list[str]:
        rows = connection.exec_driver_sql(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'outbox'::regclass AND NOT tgisinternal")
        return [row[0] for row in rows]

    def migrate(connection: Connection) -> list[list[str]]:
        op = Operations(MigrationContext.configure(connection))
        create_platform_tables(op)
        seen = [triggers(connection)]
        drop_outbox_notify(op)
        seen.append(triggers(connection))
        restore_outbox_notify(op)
        seen.append(triggers(connection))
        drop_platform_tables(op)
        return seen

    try:
        async with db.engine.begin() as conn:
            assert await conn.run_sync(migrate) == [["outbox_notify"], [], ["outbox_notify"]]
    finally:
        await db.dispose()
