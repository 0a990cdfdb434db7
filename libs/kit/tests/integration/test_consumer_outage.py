"""A database outage holds the consumer's partitions and dead-letters nothing; once the database is
back every event has its effect once, in its partition's order."""

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from leadflow_contracts import Event, LeadCaptured, LeadContact, new_event
from leadflow_contracts.topics import CAPTURED
from leadflow_kit.consumer import ConsumerRunner, EventConsumer, UnitOfWork
from leadflow_kit.db import Database, new_metadata
from leadflow_kit.platform import Platform
from leadflow_kit.settings import ServiceSettings
from leadflow_stack.testing import eventually, produce

pytestmark = pytest.mark.integration

SERVICE = "kit-outage"


def captured(lead_id: str, key: str) -> Event[LeadCaptured]:
    now = datetime.now(UTC)
    data = LeadCaptured(lead_id=lead_id, form_key="demo", submitted_at=now, contact=LeadContact(email="a@b.co"))
    return new_event(data, source="capture", subject=key, lead_captured_at=now)


async def effects(db: Database) -> list[tuple[str, str]]:
    async with db.transaction() as session:
        rows = await session.execute(text("SELECT lead_key, lead_id FROM effect ORDER BY seq"))
        return [(row.lead_key, row.lead_id) for row in rows]


async def test_a_database_outage_holds_the_partitions_and_dead_letters_nothing(infra: Any) -> None:
    prefix = infra.new_topic_prefix()
    await infra.create_topics(prefix, partitions=3)
    db = Database(await infra.new_database("kit_outage"))
    async with db.engine.begin() as conn:
        await conn.run_sync(new_metadata().create_all)
        await conn.execute(text("CREATE TABLE effect (seq bigserial, lead_key text, lead_id text)"))
    settings = ServiceSettings(service_name=SERVICE, kafka_bootstrap_servers=infra.bootstrap_servers,
                               topic_prefix=prefix, consumer_retry_max_backoff_seconds=1.0)
    consumer = EventConsumer[None](SERVICE)

    @consumer.subscribe(CAPTURED, LeadCaptured)
    async def record_effects(events: list[Event[LeadCaptured]], uow: UnitOfWork[None]) -> None:
        for event in events:
            await record_effect(event, uow)

    async def record_effect(event: Event[LeadCaptured], uow: UnitOfWork[None]) -> None:
        await uow.session.execute(text("INSERT INTO effect (lead_key, lead_id) VALUES (:key, :lead)"),
                                  {"key": event.subject, "lead": event.data.lead_id})

    platform = replace(Platform.build(settings), db=db, pipeline_db=db)
    metrics, producers = platform.metrics, platform.producers
    runner = ConsumerRunner(consumer, platform, None)
    task = asyncio.create_task(runner.run())
    topic = settings.topic(CAPTURED)
    try:
        await produce(infra.bootstrap_servers, prefix, [captured("before", "lead-a")])
        await eventually(lambda: effects(db), what="the first event handled")

        await infra.stop_postgres()
        try:
            during = [captured(f"{key}-{n}", key) for n in range(8) for key in ("lead-a", "lead-b", "lead-c")]
            await produce(infra.bootstrap_servers, prefix, during)

            async def waiting() -> bool:
                stall = runner.oldest_stall()
                return stall is not None and asyncio.get_running_loop().time() - stall.since > 3

            await eventually(waiting, timeout=30, what="the consumer waits on the outage")
            assert metrics.consumer_retries.labels(SERVICE, topic, "infrastructure")._value.get() >= 2
        finally:
            await infra.start_postgres()

        # Read on connections of its own: the runner's pool still holds the ones the restart cut.
        reader = Database(db.url)
        try:
            async def all_handled() -> bool:
                return len(await effects(reader)) == 1 + len(during)

            await eventually(all_handled, timeout=60, interval=0.2)
            handled = await effects(reader)
        finally:
            await reader.dispose()
        for key in ("lead-a", "lead-b", "lead-c"):
            in_order = [lead for lead_key, lead in handled if lead_key == key and lead != "before"]
            assert in_order == [f"{key}-{n}" for n in range(8)]  # each once, none overtaken
        assert metrics.dead_lettered.labels(SERVICE, topic)._value.get() == 0
        await eventually(lambda: asyncio.sleep(0, result=runner.oldest_stall() is None), what="the stall cleared")
    finally:
        runner.stop()
        await asyncio.wait_for(task, 30)
        await producers.close()
        await db.dispose()
