"""The outbox's rows are written with the transaction that added them, in order, or not at all."""

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from leadflow_contracts import Event, LeadCaptured, LeadContact, new_event
from leadflow_kit.db import Database, after_commit, new_metadata
from leadflow_kit.outbox import Outbox

pytestmark = pytest.mark.integration


def captured(lead_id: str) -> Event[LeadCaptured]:
    now = datetime.now(UTC)
    data = LeadCaptured(lead_id=lead_id, form_key="demo", submitted_at=now, contact=LeadContact(email="a@b.co"))
    return new_event(data, source="capture", subject=lead_id, lead_captured_at=now)


@pytest.fixture
async def db(infra: Any) -> Any:
    database = Database(await infra.new_database("kit_outbox"))
    async with database.engine.begin() as conn:
        await conn.run_sync(new_metadata().create_all)
    yield database
    await database.dispose()


async def outbox_rows(db: Database) -> list[tuple[str, str]]:
    async with db.transaction() as session:
        rows = await session.execute(text("SELECT event_id, key FROM outbox ORDER BY id"))
        return [(row.event_id, row.key) for row in rows]


async def test_a_transactions_events_are_written_at_commit_in_the_order_added(db: Database) -> None:
    outbox = Outbox("t.")
    batch, lone = [captured(f"lead-{n}") for n in range(5)], captured("lead-lone")
    async with db.transaction() as session:
        for event in batch:
            await outbox.add(session, event)
        # Not yet in the table: they go out in one statement just before the commit.
        assert (await session.execute(text("SELECT count(*) FROM outbox"))).scalar_one() == 0
    async with db.transaction() as session:
        await outbox.add(session, lone)
    async with db.transaction():
        pass  # a transaction that added nothing writes nothing
    assert await outbox_rows(db) == [(e.id, e.subject) for e in [*batch, lone]]

    async with db.transaction() as session:
        headers, topic = (await session.execute(text("SELECT headers, topic FROM outbox WHERE event_id = :id"),
                                                {"id": lone.id})).one()
    assert topic == "t.leads.captured"
    assert ["ce_id", lone.id] in headers


async def test_a_rolled_back_transaction_writes_no_event_and_runs_no_after_commit(db: Database) -> None:
    outbox = Outbox()
    counted: list[str] = []
    with pytest.raises(RuntimeError, match="handler failed"):
        async with db.transaction() as session:
            await outbox.add(session, captured("lead-rolled-back"))
            after_commit(session, lambda: counted.append("rolled back"))
            raise RuntimeError("handler failed")
    async with db.transaction() as session:
        await outbox.add(session, captured("lead-kept"))
        after_commit(session, lambda: counted.append("kept"))
    assert [key for _, key in await outbox_rows(db)] == ["lead-kept"]
    assert counted == ["kept"]


async def test_a_commit_outside_database_transaction_refuses_to_drop_pending_events(db: Database) -> None:
    async with db.sessions() as session:
        await Outbox().add(session, captured("lead-elsewhere"))
        with pytest.raises(RuntimeError, match="deferred writes"):
            await session.commit()
    assert await outbox_rows(db) == []


async def test_large_values_are_compressed_as_the_database_is_told(infra: Any) -> None:
    """A service's connections ask for lz4 (ServiceSettings.database_toast_compression): PostgreSQL's default,
    pglz, was its own top function at the benchmark's saturation step, compressing event bodies."""
    url = await infra.new_database("kit_toast")
    methods = {}
    for method in ("lz4", None):
        database = Database(url, toast_compression=method)
        try:
            async with database.engine.begin() as conn:
                await conn.run_sync(new_metadata().create_all)
            now = datetime.now(UTC)
            # A body of several kilobytes, compressible, as a form with many answers makes.
            data = LeadCaptured(lead_id=f"lead-{method}", form_key="demo", submitted_at=now,
                                contact=LeadContact(email="a@b.co"),
                                custom_fields={f"question_{n}": "an answer " * 10 for n in range(40)})
            event = new_event(data, source="capture", subject=data.lead_id, lead_captured_at=now)
            async with database.transaction() as session:
                await Outbox().add(session, event)
            async with database.transaction() as session:
                methods[method] = (await session.execute(
                    text("SELECT pg_column_compression(body) FROM outbox WHERE event_id = :id"), {"id": event.id}
                )).scalar_one()
        finally:
            await database.dispose()
    assert methods == {"lz4": "lz4", None: "pglz"}
