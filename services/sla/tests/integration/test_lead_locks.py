"""A batch locks the leads it moves without writing a row version of those that exist (a lock, not a no-op
upsert: a version that does not fit on its row's page is an entry in each of the table's sixteen indexes), and
still gets a lead a concurrent transaction created after its statement began."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from leadflow_kit.db import Database
from leadflow_sla.domain import TimelineRecord
from leadflow_sla.store import SlaStore


def record(lead_id: str, event_id: str, at: datetime) -> TimelineRecord:
    return TimelineRecord(lead_ids=[lead_id], event_id=event_id, event_type="lead.scored", stage="scored",
                          source="scoring", at=at, lead_captured_at=at - timedelta(seconds=1), details={},
                          facts_lead_id=lead_id, subject=lead_id, measured=True, earlier_event_type_prefix=None)


async def versions(sla_env: Any, lead_ids: list[str]) -> dict[str, str]:
    """Each lead row's xmin: the transaction that wrote its current version (a lock leaves it)."""
    rows = await sla_env.fetch("SELECT lead_id, xmin::text AS xmin FROM lead WHERE lead_id = ANY($1::text[])",
                               lead_ids)
    return {row["lead_id"]: row["xmin"] for row in rows}


async def test_existing_leads_are_locked_without_a_new_row_version(sla_env: Any, db: Database) -> None:
    store, at = SlaStore(), datetime.now(UTC).replace(microsecond=0)
    existing = [sla_env.new_lead_id() for _ in range(3)]
    async with db.transaction() as session:
        await store.record_and_lock(session, [record(lead_id, f"first-{lead_id}", at) for lead_id in existing])
    written = await versions(sla_env, existing)
    assert set(written) == set(existing)

    new = sla_env.new_lead_id()
    batch = [record(lead_id, f"second-{lead_id}", at + timedelta(seconds=1)) for lead_id in [*existing, new]]
    async with db.transaction() as session:
        leads, firsts = await store.record_and_lock(session, batch)
        # Locked: another transaction cannot take one of them until this one ends.
        other = await asyncpg.connect(sla_env.infra.asyncpg_dsn(sla_env.database_url))
        try:
            taken = await other.fetch("SELECT lead_id FROM lead WHERE lead_id = ANY($1::text[]) FOR UPDATE SKIP LOCKED",
                                      [*existing, new])
        finally:
            await other.close()
        assert taken == []

    assert set(leads) == {*existing, new}
    assert leads[new].captured_at == at
    assert firsts == {3}  # only the new lead had no event at that stage before
    after = await versions(sla_env, [*existing, new])
    assert {lead_id: after[lead_id] for lead_id in existing} == written  # no new version of an existing lead
    assert new in after


async def test_a_lead_created_by_a_concurrent_transaction_after_the_snapshot_is_still_locked_and_returned(
    sla_env: Any, db: Database
) -> None:
    store, at = SlaStore(), datetime.now(UTC).replace(microsecond=0)
    raced, alone = sla_env.new_lead_id(), sla_env.new_lead_id()
    rival = await asyncpg.connect(sla_env.infra.asyncpg_dsn(sla_env.database_url))
    try:
        rival_tx = rival.transaction()
        await rival_tx.start()
        await rival.execute("INSERT INTO lead (lead_id, captured_at, score) VALUES ($1, $2, 42)", raced, at)

        async def lock() -> Any:
            async with db.transaction() as session:
                return await store.record_and_lock(
                    session, [record(raced, f"e-{raced}", at), record(alone, f"e-{alone}", at)])

        locking = asyncio.create_task(lock())
        # The batch's statement began before the rival's insert committed: its insert of the same lead waits
        # for the rival, then skips the row, which its snapshot does not show either.
        await asyncio.sleep(0.5)
        assert not locking.done()
        await rival_tx.commit()
        leads, _ = await asyncio.wait_for(locking, 10)
    finally:
        await rival.close()

    assert set(leads) == {raced, alone}
    assert leads[raced].score == 42  # the rival's row, not a fresh one
