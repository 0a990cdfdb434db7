"""The relay's leader cannot stall the outbox: a killed or frozen leader is replaced within seconds."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from leadflow_contracts import Event, LeadCaptured, LeadContact, new_event
from leadflow_contracts.topics import CAPTURED
from leadflow_kit.db import Database, new_metadata
from leadflow_kit.kafka import ProducerHolder
from leadflow_kit.metrics import ServiceMetrics
from leadflow_kit.outbox import RELAY_LOCK_KEY, Outbox, OutboxRelay
from leadflow_kit.settings import ServiceSettings
from leadflow_stack.testing import eventually, read_events

pytestmark = pytest.mark.integration

FAILOVER_SECONDS = 10


def captured(lead_id: str) -> Event[LeadCaptured]:
    now = datetime.now(UTC)
    data = LeadCaptured(lead_id=lead_id, form_key="demo", submitted_at=now, contact=LeadContact(email="a@b.co"))
    return new_event(data, source="capture", subject=lead_id, lead_captured_at=now)


@asynccontextmanager
async def relaying(name: str, db: Database, infra: Any, prefix: str) -> AsyncIterator[OutboxRelay]:
    settings = ServiceSettings(service_name=name, kafka_bootstrap_servers=infra.bootstrap_servers,
                               topic_prefix=prefix, database_url=db.url)
    producers = ProducerHolder(settings)
    relay = OutboxRelay(settings, db, producers, ServiceMetrics(name))
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        relay.stop()
        await asyncio.wait_for(task, 30)
        await producers.close()


async def leader(db: Database) -> tuple[int, str] | None:
    """The backend holding the relay lock of ``db``'s database, and its application_name."""
    conn = await asyncpg.connect(db.url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        row = await conn.fetchrow(
            "SELECT l.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.objid = $1 AND l.granted "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            RELAY_LOCK_KEY,
        )
    finally:
        await conn.close()
    return (row["pid"], row["application_name"]) if row else None


async def write_event(db: Database, prefix: str, event: Event[Any]) -> None:
    async with db.transaction() as session:
        await Outbox(prefix).add(session, event)


async def published_within(infra: Any, prefix: str, event: Event[Any], seconds: float) -> None:
    await read_events(infra.bootstrap_servers, f"{prefix}{CAPTURED}",
                      until=lambda events: any(seen.id == event.id for seen in events), timeout=seconds)


@pytest.fixture
async def outbox_db(infra: Any) -> AsyncIterator[tuple[Database, str]]:
    prefix = infra.new_topic_prefix("relay")
    await infra.create_topics(prefix, partitions=3)
    db = Database(await infra.new_database("kit_relay"))
    async with db.engine.begin() as conn:
        await conn.run_sync(new_metadata().create_all)
    yield db, prefix
    await db.dispose()


async def test_a_terminated_leader_is_replaced_and_the_outbox_keeps_flowing(
    infra: Any, outbox_db: tuple[Database, str]
) -> None:
    db, prefix = outbox_db
    async with relaying("relay-a", db, infra, prefix), relaying("relay-b", db, infra, prefix):
        first = await eventually(lambda: leader(db), what="a relay leads")
        before = captured("before-termination")
        await write_event(db, prefix, before)
        await published_within(infra, prefix, before, FAILOVER_SECONDS)

        conn = await asyncpg.connect(db.url.replace("postgresql+asyncpg://", "postgresql://", 1))
        try:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", first[0])
        finally:
            await conn.close()
        after = captured("after-termination")
        await write_event(db, prefix, after)
        await published_within(infra, prefix, after, FAILOVER_SECONDS)
        now_leading = await leader(db)
        assert now_leading is not None and now_leading[0] != first[0]


async def test_a_frozen_leader_loses_the_lock_and_a_standby_publishes(infra: Any) -> None:
    """The leader is a capture process stopped with SIGSTOP: its sockets stay open and its kernel
    still answers TCP, so only the session's silence can tell PostgreSQL it is gone."""
    prefix = infra.new_topic_prefix("relay")
    await infra.create_topics(prefix, partitions=3)
    config = await infra.start_service("capture", topic_prefix=prefix)  # migrates its database
    db = Database(config.database_url)
    try:
        first = await eventually(lambda: leader(db), what="capture's relay leads")
        assert first[1] == "capture-outbox-relay"
        async with relaying("standby", db, infra, prefix):
            await asyncio.sleep(1.5)  # the standby has tried the lock and stands by
            assert await leader(db) == first
            infra.freeze_service("capture")
            try:
                frozen_at = time.monotonic()
                event = captured("while-the-leader-is-frozen")
                await write_event(db, prefix, event)
                await published_within(infra, prefix, event, FAILOVER_SECONDS)
                assert time.monotonic() - frozen_at < FAILOVER_SECONDS
                assert (await leader(db) or (0, ""))[1] == "standby-outbox-relay"
            finally:
                infra.thaw_service("capture")
    finally:
        await infra.stop_service("capture")
        await db.dispose()
