"""Capture as its own process (`python -m leadflow_capture` with migrate and seed-demo), and its
migrations carrying data from the foundation's schema forward."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from leadflow_capture.seed import seed_demo
from leadflow_capture.settings import Settings
from leadflow_kit.db import Database
from leadflow_kit.migrations import upgrade

pytestmark = pytest.mark.integration


async def test_the_service_process_serves_the_seeded_demo_form(infra):
    prefix = infra.new_topic_prefix("capture-proc")
    await infra.create_topics(prefix, partitions=1)
    config = await infra.start_service("capture", topic_prefix=prefix, seed_demo=True)
    try:
        async with httpx.AsyncClient(base_url=config.url) as client:
            accepted = await client.post("/v1/forms/demo/submissions", json={"email": "proc@example.com"})
            assert accepted.status_code == 202, accepted.text
            preflight = await client.options("/v1/forms/demo/submissions", headers={
                "Origin": "https://any.example", "Access-Control-Request-Method": "POST"})
            assert preflight.headers["access-control-allow-origin"] == "https://any.example"
            required = await client.post("/v1/forms/demo/submissions", json={"first_name": "x"})
            assert required.json()["errors"][0] == {
                "field": "email", "code": "required", "message": "email is required"}
    finally:
        await infra.stop_service("capture")


async def test_migrations_carry_foundation_data_forward_and_seeding_is_idempotent(infra):
    from pathlib import Path

    import leadflow_capture

    migrations = Path(leadflow_capture.__file__).parent / "migrations"
    url = await infra.new_database("capture_mig")
    await asyncio.to_thread(upgrade, migrations, url, "20261123_0001")
    conn = await asyncpg.connect(infra.asyncpg_dsn(url))
    try:
        await conn.execute("INSERT INTO form (key, name, active) VALUES ('demo', 'Demo', true), ('old', 'Old', false)")
        await conn.execute(
            "INSERT INTO lead (id, form_key, contact, submitted_at) "
            """VALUES ('l1', 'demo', '{"email": "Ada@Example.com"}', now())""")
    finally:
        await conn.close()

    await asyncio.to_thread(upgrade, migrations, url)
    db = Database(url, pool_size=1)
    try:
        settings = Settings(database_url=url)
        await seed_demo(settings, db)
        await seed_demo(settings, db)
    finally:
        await db.dispose()

    conn = await asyncpg.connect(infra.asyncpg_dsn(url))
    try:
        forms = {r["key"]: r for r in await conn.fetch("SELECT key, archived_at, allowed_origins FROM form")}
        assert forms["old"]["archived_at"] is not None
        assert forms["demo"]["archived_at"] is None
        assert forms["demo"]["allowed_origins"] == '["*"]'
        assert await conn.fetchval("SELECT email_normalized FROM lead WHERE id = 'l1'") == "ada@example.com"
    finally:
        await conn.close()
