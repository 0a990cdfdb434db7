"""The event pipeline's connections (``Platform.pipeline_db``) plan a statement once, and its plan reaches
rows by index whatever the statistics said when it was made."""

from typing import Any

from leadflow_kit.db import PIPELINE_PLANNING, Database, new_metadata
from leadflow_kit.publisher import DELETE_SENT


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
