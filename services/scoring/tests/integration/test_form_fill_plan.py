"""A batch's form fills find the activity that waited for their leads by each fill's keys: never by reading every
waiting activity for every fill, once the statistics have seen waiting activity."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadflow_kit.migrations import upgrade
from leadflow_scoring import domain
from leadflow_scoring.store import RECORD_FORM_FILLS
from leadflow_stack.testing import array_literals, pipeline_database, plan_nodes, rows_filtered_out

from .conftest import MIGRATIONS

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
FILLS = 50


def run_on(start: int) -> str:
    """An EXECUTE of the prepared RECORD_FORM_FILLS for ``FILLS`` fills of new leads, from lead ``start`` on."""
    leads = [f"lead-{n}" for n in range(start, start + FILLS)]
    emails = [f"{lead}@acme.example" for lead in leads]
    arrays = array_literals(leads, leads, emails, [f"visitor-{n}" for n in range(start, start + FILLS)],
                            ["demo"] * FILLS, [NOW] * FILLS, [NOW] * FILLS, ["email"] * FILLS, emails, leads)
    return f"EXECUTE record_form_fills({arrays}, '{domain.FORM_SUBMISSION}')"


async def test_a_batch_of_fills_probes_each_fills_keys_once_the_statistics_count_waiting_activity(
        infra: Any) -> None:
    """The pipeline's connections plan a statement once, at its first run. Planned while the statistics counted
    no waiting activity (a young deployment, anonymous visits piling up before autovacuum's next look), this
    statement reads every waiting row for every fill: 899,950 rows thrown away for these 50 fills, 111 ms
    (docs/performance.md, session 31). What ends that is an analyze of the table (autoanalyze, once 50 rows
    and a tenth of the table changed): it invalidates the plan, and the plan made again over statistics
    that count the waiting rows probes each fill's lead, email and visitor."""
    url = await infra.new_database("scoring_form_fill_plan")
    await asyncio.to_thread(upgrade, MIGRATIONS, url)
    async with pipeline_database(url) as db, db.autocommit() as conn:
        await conn.execute(
            "INSERT INTO activity (activity_id, lead_id, activity_type, occurred_at, received_at, credited_at)"
            " SELECT 'seen-' || n, 'known-' || n, 'page_view', $1::timestamptz, $1, $1"
            " FROM generate_series(1, 200) AS n", NOW - timedelta(days=1))
        await conn.execute("ANALYZE activity")
        await conn.execute(f"PREPARE record_form_fills AS {RECORD_FORM_FILLS}")
        await conn.execute(run_on(0))
        # 6,000 anonymous visits wait; 50 of them belong to the next batch's leads, by visitor.
        await conn.execute(
            "INSERT INTO activity (activity_id, visitor_id, email, wanted_lead_id, activity_type, occurred_at,"
            " received_at) SELECT 'visit-' || n, 'visitor-' || n, NULL, NULL, 'page_view', $1::timestamptz, $1"
            " FROM generate_series(1000, 6999) AS n", NOW)
        await conn.execute("ANALYZE activity")  # what autoanalyze does after these inserts
        [plan] = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {run_on(1000)}")
        generic = await conn.fetchval(
            "SELECT generic_plans FROM pg_prepared_statements WHERE name = 'record_form_fills'")
        credited = await conn.fetchval("SELECT count(*) FROM activity WHERE activity_id LIKE 'visit-%'"
                                       " AND lead_id IS NOT NULL")
    assert generic == 2  # both runs on a generic plan, as the pipeline plans (PIPELINE_PLANNING)
    assert credited == FILLS  # each fill's visitor had waited (visitor-1000 .. visitor-1049)
    # Reading every waiting row for every fill (the plan before the analyze) threw away 6,000 x 50 x 3 of them.
    assert rows_filtered_out(plan["Plan"]) < 10 * FILLS, json.dumps(
        [n for n in plan_nodes(plan["Plan"]) if n.get("Rows Removed by Filter") or n.get("Rows Removed by Join Filter")]
    )[:4000]
