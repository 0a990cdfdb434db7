"""The funnel gauges' minute-by-minute scans of the window run as one process: without parallel workers,
which would take every core of a small database server from the hand-off's statements."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_kit.db import Database, as_background_scan, driver_connection
from leadflow_sla.funnel_gauges_store import FUNNEL_COUNTS, TEAM_SPEED

# Parallel plans made free and the indexes ruled out, so the planner scans even the few thousand rows of a test
# table with parallel workers, as it scans the window's million leads in the bench.
PARALLEL_FAVOURED = (
    "SELECT set_config('min_parallel_table_scan_size', '0', true), set_config('parallel_setup_cost', '0', true),"
    " set_config('parallel_tuple_cost', '0', true), set_config('max_parallel_workers_per_gather', '2', true),"
    " set_config('enable_indexscan', 'off', true), set_config('enable_bitmapscan', 'off', true),"
    " set_config('enable_indexonlyscan', 'off', true)"
)
LEADS = (
    "INSERT INTO lead (lead_id, captured_at, source, team_id, speed_to_lead_seconds) SELECT 'scan-' || n,"
    " now() - n * interval '1 minute', 'source-' || n % 7, 'team-' || n % 3, n FROM generate_series(1, 5000) AS n"
)


async def plan_nodes(session: AsyncSession, statement: str, since: datetime) -> list[str]:
    """Every node type of the statement's plan."""
    conn = await driver_connection(session)
    explained = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {statement}", since)
    # Through SQLAlchemy's connection JSON comes back decoded (leadflow_kit.db.driver_connection).
    plan = (json.loads(explained) if isinstance(explained, str) else explained)[0]["Plan"]
    nodes, stack = [], [plan]
    while stack:
        node = stack.pop()
        nodes.append(node["Node Type"])
        stack.extend(node.get("Plans", []))
    return nodes


async def settings_now(session: AsyncSession) -> tuple[str, str]:
    conn = await driver_connection(session)
    row = await conn.fetchrow("SELECT current_setting('jit') AS jit, "
                              "current_setting('max_parallel_workers_per_gather') AS workers")
    return row["jit"], row["workers"]


async def test_the_gauges_scans_are_planned_without_parallel_workers(db: Database) -> None:
    since = datetime.now(UTC) - timedelta(days=30)
    async with db.transaction() as session:
        await (await driver_connection(session)).execute(LEADS)
    async with db.transaction() as session:
        await (await driver_connection(session)).execute(PARALLEL_FAVOURED)
        # The condition guarded against: left to itself, the planner gathers from parallel workers.
        assert "Gather" in await plan_nodes(session, FUNNEL_COUNTS, since)
        await as_background_scan(session)
        assert await settings_now(session) == ("off", "0")
        for statement in (FUNNEL_COUNTS, TEAM_SPEED):
            nodes = await plan_nodes(session, statement, since)
            assert not {"Gather", "Gather Merge"} & set(nodes), nodes
    # Only for the gauges' transaction: the connection goes back to the pool as it was.
    async with db.transaction() as session:
        assert await settings_now(session) != ("off", "0")
