"""A batch's first MQL moments are noted by the statement that stores its leads, once a lead, each lead reached by
key: the cost grows with the batch, not with its square."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from routing_harness import Env, scored

from leadflow_kit.db import Database
from leadflow_routing.store import UPSERT_SCORED_LEADS, RoutingStore, ScoredInput
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


def inputs(mql: dict[str, bool]) -> list[ScoredInput]:
    return [ScoredInput(scored(lead_id).data, None, None, is_mql) for lead_id, is_mql in mql.items()]


async def test_a_lead_is_a_first_mql_once_and_only_when_one_of_its_events_was_an_mql(
    env: Env, pipeline_db: Database
) -> None:
    ids = await new_leads(pipeline_db, "first", 6, notified=2)
    # Two were sent before; of the four others, two are MQLs now; and two leads the batch stores first.
    given = {ids[0]: True, ids[1]: False, ids[2]: True, ids[3]: False, ids[4]: True, ids[5]: False,
             "first-new-mql": True, "first-new": False}
    store = RoutingStore()
    async with pipeline_db.transaction() as session:
        upserted = await store.upsert_scored_leads(session, inputs(given), [], NOW, lifecycle_types=["lead.mql"])
    assert upserted.first_mql == {ids[2], ids[4], "first-new-mql"}
    assert upserted.lifecycle_wanted is False  # no subscription in this database
    async with pipeline_db.autocommit() as conn:
        noted = dict(await conn.fetch("SELECT id, mql_notified_at FROM lead WHERE id = ANY($1::text[])", list(given)))
    assert noted == {ids[0]: EARLIER, ids[1]: EARLIER, ids[2]: NOW, ids[3]: None, ids[4]: NOW, ids[5]: None,
                     "first-new-mql": NOW, "first-new": None}

    async with pipeline_db.transaction() as session:  # the same events again: nobody is a first any more
        again = await store.upsert_scored_leads(session, inputs(given), [], NOW, lifecycle_types=["lead.mql"])
    assert again.first_mql == frozenset()


async def test_whether_a_lifecycle_webhook_is_wanted_is_asked_only_for_a_lifecycle_moment(
    env: Env, pipeline_db: Database
) -> None:
    async with pipeline_db.autocommit() as conn:
        await conn.execute(
            "INSERT INTO webhook_subscription (id, url, event_types, secret_ciphertext)"
            " VALUES ('sub-marks', 'https://crm.example/hooks', ARRAY['lead.mql'], 'x')")
    store = RoutingStore()
    try:
        async with pipeline_db.transaction() as session:
            asked = await store.upsert_scored_leads(session, inputs({"wanted-1": True}), [], NOW,
                                                    lifecycle_types=["lead.mql"])
            other = await store.upsert_scored_leads(session, inputs({"wanted-2": True}), [], NOW,
                                                    lifecycle_types=["lead.stage_changed"])
            none = await store.upsert_scored_leads(session, inputs({"wanted-3": False}), [], NOW)
        assert (asked.lifecycle_wanted, other.lifecycle_wanted, none.lifecycle_wanted) == (True, False, False)
    finally:
        async with pipeline_db.autocommit() as conn:
            await conn.execute("DELETE FROM webhook_subscription WHERE id = 'sub-marks'")


async def test_a_batch_of_200_leads_is_reached_by_key_not_compared_pair_by_pair(
    env: Env, pipeline_db: Database
) -> None:
    """Joined to the batch's arrays twice (hash joins are off on these connections), each lead would meet every
    other in a nested loop: 39,800 rows thrown away for this batch."""
    ids = await new_leads(pipeline_db, "batch", 200)
    batch = inputs({lead_id: n % 2 == 0 for n, lead_id in enumerate(ids)})
    async with pipeline_db.autocommit() as conn:
        [plan] = await conn.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + UPSERT_SCORED_LEADS,
            ids, [i.scored.model_dump_json() for i in batch], [None] * len(ids), [None] * len(ids), NOW, [],
            [i.mql for i in batch], ["lead.mql"])
    assert rows_filtered_out(plan["Plan"]) < len(ids)
