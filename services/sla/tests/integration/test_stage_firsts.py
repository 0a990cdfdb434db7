"""Which events of a batch are their subject's first at their stage (pipeline latency and captured leads are
counted there, once a lead): as if recorded one by one, against the timelines before the batch, the batch's
own earlier events and an event a concurrent transaction recorded first."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from leadflow_kit.db import Database
from leadflow_sla.domain import ROUTED_WEBHOOK_PREFIX, TimelineRecord
from leadflow_sla.store import _RECORD_AND_LOCK as RECORD_AND_LOCK
from leadflow_sla.store import SlaStore, record_and_lock_arguments
from leadflow_stack.testing import pipeline_database, rows_filtered_out

AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def record(subject: str, event_id: str, stage: str, *, event_type: str | None = None, measured: bool = True,
           also: str | None = None) -> TimelineRecord:
    webhook = stage == "webhook_delivered"
    return TimelineRecord(
        lead_ids=[subject] if also is None else [subject, also], event_id=event_id, event_type=f"lead.{stage}",
        stage=stage, source="test", at=AT, lead_captured_at=AT - timedelta(seconds=1),
        details={"event_type": event_type} if event_type else {}, facts_lead_id=subject, subject=subject,
        measured=measured, earlier_event_type_prefix=ROUTED_WEBHOOK_PREFIX if webhook else None)


@pytest.fixture
async def pipeline_db(sla_env: Any) -> AsyncIterator[Database]:
    async with pipeline_database(sla_env.database_url) as database:
        yield database


async def record_batch(db: Database, batch: list[TimelineRecord]) -> set[int]:
    async with db.transaction() as session:
        _, firsts = await SlaStore().record_and_lock(session, batch)
    return firsts


async def test_a_batch_counts_firsts_as_if_its_events_were_recorded_one_by_one(
    sla_env: Any, pipeline_db: Database
) -> None:
    a, b, c = (sla_env.new_lead_id() for _ in range(3))
    first_batch = [
        record(a, "a-captured", "captured"),                                   # 0: first
        record(a, "a-enriched", "enriched"),                                   # 1: first
        record(a, "a-enriched-again", "enriched"),                             # 2: an earlier one in the batch
        record(a, "a-breach-hook", "webhook_delivered", event_type="lead.sla.breached", measured=False),  # 3
        record(a, "a-routed-hook", "webhook_delivered", event_type="lead.routed.v1"),  # 4: first routed webhook
        record(b, "b-scored", "scored"),                                       # 5: first
        record(b, "b-scored", "scored"),                                       # 6: the same event again
        record(b, "b-breach-hook", "webhook_delivered", event_type="lead.sla.breached", measured=False),  # 7
        record(c, "c-enriched", "enriched", also=a),                           # 8: first on c's timeline
        record(a, "a-scored", "scored"),                                       # 9: first (b's is not a's)
    ]
    assert await record_batch(pipeline_db, first_batch) == {0, 1, 4, 5, 8, 9}

    second_batch = [
        record(a, "a-enriched-later", "enriched"),                             # 0: a's timeline has one
        record(a, "a-routed-hook-2", "webhook_delivered", event_type="lead.routed.v1"),  # 1: so has a routed one
        record(b, "b-routed-hook", "webhook_delivered", event_type="lead.routed.v1"),  # 2: b's was a breach's
        record(a, "a-captured", "captured"),                                   # 3: a redelivery
        record(c, "c-scored", "scored"),                                       # 4: first
        record(c, "c-scored-again", "scored"),                                 # 5: an earlier one in the batch
    ]
    assert await record_batch(pipeline_db, second_batch) == {2, 4}
    assert await record_batch(pipeline_db, second_batch) == set()  # the whole batch redelivered


async def test_an_event_a_concurrent_transaction_recorded_first_is_not_counted_again(
    sla_env: Any, pipeline_db: Database
) -> None:
    """Two consumers handle the same new event (a rebalance): the second one's snapshot shows no earlier
    event at that stage, but its insert waits for the first one's and records nothing."""
    lead_id = sla_env.new_lead_id()
    batch = [record(lead_id, "routed-once", "routed")]
    rival = await asyncpg.connect(sla_env.infra.asyncpg_dsn(sla_env.database_url))
    try:
        rival_tx = rival.transaction()
        await rival_tx.start()
        await rival.execute(
            "INSERT INTO lead_event (lead_id, event_id, event_type, stage, source, at, details)"
            " VALUES ($1, 'routed-once', 'lead.routed', 'routed', 'test', $2, '{}')", lead_id, AT)
        counting = asyncio.create_task(record_batch(pipeline_db, batch))
        await asyncio.sleep(0.5)
        assert not counting.done()  # its insert waits for the rival's row
        await rival_tx.commit()
        assert await asyncio.wait_for(counting, 10) == set()
    finally:
        await rival.close()


async def test_a_batchs_firsts_cost_a_probe_each_not_a_comparison_of_every_pair(
    sla_env: Any, pipeline_db: Database
) -> None:
    """At saturation a batch holds 200 events: compared in SQL, each candidate met every event of the batch
    in a nested loop (hash joins are off on these connections): 79,800 rows thrown away for this batch."""
    leads = [sla_env.new_lead_id() for _ in range(100)]
    batch = [record(lead_id, f"{lead_id}-{stage}", stage) for stage in ("captured", "scored") for lead_id in leads]
    async with pipeline_db.autocommit() as conn:
        [plan] = await conn.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + RECORD_AND_LOCK, *record_and_lock_arguments(batch))
    assert rows_filtered_out(plan["Plan"]) < len(batch), json.dumps(plan)[:4000]
