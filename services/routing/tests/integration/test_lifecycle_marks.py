"""A batch's first MQL moments are noted once a lead, each lead reached by key: the cost grows with the batch,
not with its square."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from routing_harness import Env

from leadflow_kit.db import Database
from leadflow_routing.store import MARK_LIFECYCLES, RoutingStore
from leadflow_stack.testing import pipeline_database, rows_filtered_out

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
EARLIER = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


@pytest.fixture
async def pipeline_db(env: Env) -> AsyncIterator[Database]:
    async with pipeline_database(env.database_url) as database:
        yield database


async def new_leads(db: Database, prefix: str, count: int, *, notified: int = 0) -> list[str]:
    """``count`` stored leads, the first ``notified`` of them sent as MQLs already."""
    ids = [f"{prefix}-{n}" for n in range(count)]
    async with db.autocommit() as conn:
        await conn.execute(
            "INSERT INTO lead (id, data, mql_notified_at) SELECT id, '{}', CASE WHEN n <= $2 THEN $3::timestamptz END"
            " FROM unnest($1::text[]) WITH ORDINALITY AS l(id, n)", ids, notified, EARLIER)
    return ids


async def test_a_lead_is_a_first_mql_once_and_only_when_one_of_its_events_was_an_mql(
    env: Env, pipeline_db: Database
) -> None:
    ids = await new_leads(pipeline_db, "first", 6, notified=2)
    # Two were sent before; of the four others, two are MQLs now.
    given = {ids[0]: True, ids[1]: False, ids[2]: True, ids[3]: False, ids[4]: True, ids[5]: False}
    async with pipeline_db.transaction() as session:
        first, wanted = await RoutingStore().mark_lifecycles(session, given, NOW, event_types=["lead.mql"])
    assert first == {ids[2], ids[4]}
    assert wanted is False  # no subscription in this database
    async with pipeline_db.autocommit() as conn:
        noted = dict(await conn.fetch("SELECT id, mql_notified_at FROM lead WHERE id = ANY($1::text[])", ids))
    assert noted == {ids[0]: EARLIER, ids[1]: EARLIER, ids[2]: NOW, ids[3]: None, ids[4]: NOW, ids[5]: None}

    async with pipeline_db.transaction() as session:  # the same events again: nobody is a first any more
        again, _ = await RoutingStore().mark_lifecycles(session, given, NOW, event_types=["lead.mql"])
    assert again == set()


async def test_a_batch_of_200_leads_is_reached_by_key_not_compared_pair_by_pair(
    env: Env, pipeline_db: Database
) -> None:
    """Joined to the batch's arrays twice (two CTEs; hash joins are off on these connections), each lead met
    every other in a nested loop: 39,800 rows thrown away for this batch."""
    ids = await new_leads(pipeline_db, "batch", 200)
    async with pipeline_db.autocommit() as conn:
        [plan] = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + MARK_LIFECYCLES,
                                     ids, [n % 2 == 0 for n in range(len(ids))], NOW, ["lead.mql"])
    assert rows_filtered_out(plan["Plan"]) < len(ids)
