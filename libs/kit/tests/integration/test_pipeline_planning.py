"""The event pipeline's connections (``Platform.pipeline_db``) plan a statement once, and its plan reaches
rows by index whatever the statistics said when it was made."""

import json
from typing import Any

import asyncpg

from leadflow_kit.db import PIPELINE_PLANNING, Database, asyncpg_dsn, new_metadata
from leadflow_kit.outbox import _CLAIM_HEAD as CLAIM_HEAD
from leadflow_kit.outbox import relay_session_settings
from leadflow_kit.publisher import DELETE_SENT
from leadflow_stack.testing import plan_nodes


async def plans_of(database: Database, statement: str, executions: int) -> tuple[int, int, str]:
    """Run ``statement`` (deleting outbox row 1) ``executions`` times on one connection, as the pipeline
    does; then its generic and custom plan counts there, and the plan its next execution would take."""
    async with database.autocommit() as conn:
        for _ in range(executions):
            await conn.execute(statement, [1])
        name, generic, custom = await conn.fetchrow(
            "SELECT name, generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1", statement)
        plan = "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN EXECUTE {name}('{{1}}')"))
        return generic, custom, plan


async def test_pipeline_statements_are_planned_once_and_probe_by_index(infra: Any) -> None:
    url = await infra.new_database("kit_planning")
    pipeline, default = Database(url, planning=PIPELINE_PLANNING), Database(url)
    try:
        async with default.engine.begin() as conn:
            await conn.run_sync(new_metadata().create_all)
        async with default.autocommit() as conn:
            # The statistics of a young outbox: a few rows on one page, where scanning is the cheapest plan.
            await conn.execute("INSERT INTO outbox (event_id, topic, key, headers, body) "
                               "SELECT 'e' || n, 't', 'k', '{}', 'b' FROM generate_series(1, 3) AS n")
            await conn.execute("ANALYZE outbox")

        generic, custom, plan = await plans_of(pipeline, DELETE_SENT, executions=8)
        assert (generic, custom) == (8, 0)
        # Kept until the next ANALYZE or VACUUM, that plan is taken as the outbox grows: an index probe.
        assert "Index Scan using pk_outbox" in plan and "Seq Scan" not in plan, plan

        # The same statement elsewhere is planned at each execution from the batch it is given, and over
        # such statistics it scans: what the pipeline's generic plans must not keep doing.
        generic, custom, plan = await plans_of(default, DELETE_SENT, executions=1)
        assert (generic, custom) == (0, 1)
        assert "Seq Scan on outbox" in plan, plan
    finally:
        await pipeline.dispose()
        await default.dispose()


async def test_the_relays_claim_of_a_stale_backlog_probes_each_rows_key_whatever_the_statistics_say(
        infra: Any) -> None:
    # The outbox is empty most of the time, and autovacuum records it so. Then the direct sends fall behind
    # (make bench at saturation): hundreds of rows grow older than the backstop age, on pages left by
    # thousands of rows sent and deleted since. Claiming 255 of them must look for an older row of each one's
    # key by that key. Before, the relay's connection had kept a generic plan made over the empty outbox (after
    # five runs PostgreSQL may keep one): a scan of the whole outbox for each row claimed, 462,679 pages for one
    # claim (1.7 s, in auto_explain's log of a quick run at 400 leads/s); here 15,931, and more with each page.
    url = await infra.new_database("kit_relay_planning")
    default = Database(url)
    try:
        async with default.engine.begin() as conn:
            await conn.run_sync(new_metadata().create_all)
        async with default.autocommit() as conn:
            await conn.execute("VACUUM ANALYZE outbox")
        relay = await asyncpg.connect(asyncpg_dsn(url), server_settings=relay_session_settings("kit-relay"))
        try:
            await relay.execute(f"PREPARE claim_head AS {CLAIM_HEAD}")
            for _ in range(6):
                async with relay.transaction():
                    await relay.execute("EXECUTE claim_head(255, 2)")
            async with default.autocommit() as conn:
                await conn.execute("INSERT INTO outbox (event_id, topic, key, headers, body) SELECT 'sent-' || n,"
                                   " 't', 'k' || n % 50, '[]', 'b' FROM generate_series(1, 5000) AS n")
                await conn.execute("DELETE FROM outbox WHERE event_id LIKE 'sent-%'")
                await conn.execute("INSERT INTO outbox (event_id, topic, key, headers, body, created_at)"
                                   " SELECT 'stale-' || n, 't', 'k' || n % 50, '[]', 'b', now() - interval '1 hour'"
                                   " FROM generate_series(1, 700) AS n")
            async with relay.transaction():
                [plan] = json.loads(await relay.fetchval(
                    "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE claim_head(255, 2)"))
            plans = await relay.fetchrow(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = 'claim_head'")
        finally:
            await relay.close()
    finally:
        await default.dispose()
    assert plan["Plan"]["Actual Rows"] == 255
    nodes = plan_nodes(plan["Plan"])
    assert not [node for node in nodes if node["Node Type"] == "Seq Scan"], json.dumps(plan)[:4000]
    # One probe of the key index per row claimed (each walking the dead entries of its key, in this test).
    [probe] = [node for node in nodes if node.get("Index Name") == "ix_outbox_topic_key"]
    assert probe["Actual Loops"] == 255
    pages = plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"]
    assert pages < 8_000, json.dumps(plan)[:4000]
    # Planned afresh at each run (about once a second), from the outbox's size then, with scans ruled out.
    assert tuple(plans) == (0, 7)
