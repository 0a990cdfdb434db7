"""Publish after commit: the writer sends its rows itself, the relay takes what it leaves, and a lead's
events keep their order whoever sends them."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text

from leadflow_contracts import Event, LeadCaptured, LeadContact, encode_body, encode_headers, new_event
from leadflow_contracts.topics import CAPTURED
from leadflow_kit.db import Database, asyncpg_dsn, driver_connection, new_metadata
from leadflow_kit.kafka import ProducerHolder
from leadflow_kit.metrics import ServiceMetrics
from leadflow_kit.outbox import EventsAlreadyClaimed, Outbox, OutboxRelay
from leadflow_kit.publisher import BACKSTOP_AGE_SECONDS, INSERT_ROWS, DirectPublisher
from leadflow_kit.settings import ServiceSettings
from leadflow_stack.testing import counting_statements, eventually, read_events

pytestmark = pytest.mark.integration

SERVICE = "kit-direct"


def captured(lead_id: str) -> Event[LeadCaptured]:
    now = datetime.now(UTC)
    data = LeadCaptured(lead_id=lead_id, form_key="demo", submitted_at=now, contact=LeadContact(email="a@b.co"))
    return new_event(data, source="capture", subject=lead_id, lead_captured_at=now)


def holds(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return condition()

    return check


class Writer:
    """A service process's outbox side: its outbox, and its direct publisher and relay when running."""

    def __init__(self, infra: Any, db: Database, prefix: str) -> None:
        self.settings = ServiceSettings(service_name=SERVICE, kafka_bootstrap_servers=infra.bootstrap_servers,
                                        topic_prefix=prefix, database_url=db.url, kafka_request_timeout_ms=2000)
        self.db = db
        self.metrics = ServiceMetrics(SERVICE)
        self.producers = ProducerHolder(self.settings)
        self.outbox = Outbox(prefix)
        self.publisher = DirectPublisher(self.settings, db, self.producers, self.metrics)
        self.tasks: list[asyncio.Task[None]] = []

    async def write(self, *events: Event[Any]) -> None:
        async with self.db.transaction() as session:
            for event in events:
                await self.outbox.add(session, event)

    @asynccontextmanager
    async def publishing(self) -> AsyncIterator[None]:
        self.outbox.publisher = self.publisher
        task = asyncio.create_task(self.publisher.run())
        await eventually(holds(lambda: self.publisher.running), what="the publisher runs")
        try:
            yield
        finally:
            self.publisher.stop()
            await asyncio.wait_for(task, 30)

    @asynccontextmanager
    async def relaying(self) -> AsyncIterator[None]:
        relay = OutboxRelay(self.settings, self.db, self.producers, self.metrics)
        task = asyncio.create_task(relay.run())
        try:
            yield
        finally:
            relay.stop()
            await asyncio.wait_for(task, 30)

    def left(self, reason: str) -> float:
        value: float = self.metrics.outbox_left_to_relay.labels(SERVICE, reason)._value.get()
        return value

    def published(self) -> float:
        value: float = self.metrics.events_published.labels(SERVICE, self.settings.topic(CAPTURED))._value.get()
        return value


@pytest.fixture
async def writer(infra: Any) -> AsyncIterator[Writer]:
    prefix = infra.new_topic_prefix("direct")
    await infra.create_topics(prefix, partitions=3)
    db = Database(await infra.new_database("kit_direct"))
    async with db.engine.begin() as conn:
        await conn.run_sync(new_metadata().create_all)
    process = Writer(infra, db, prefix)
    yield process
    await process.producers.close()
    await db.dispose()


async def outbox_size(db: Database) -> int:
    async with db.transaction() as session:
        count: int = (await session.execute(text("SELECT count(*) FROM outbox"))).scalar_one()
        return count


async def on_kafka(infra: Any, writer: Writer, expected: list[Event[Any]]) -> list[str]:
    """The ids on the topic once every expected event is there, in the order of their partitions."""
    wanted = {event.id for event in expected}
    seen = await read_events(infra.bootstrap_servers, writer.settings.topic(CAPTURED),
                             until=lambda events: wanted <= {event.id for event in events}, timeout=30)
    return [event.id for event in seen]


def of_key(ids: list[str], events: list[Event[Any]]) -> list[str]:
    """``events``' ids in the order they first reached Kafka. A send abandoned during an outage may
    still arrive after the relay's (at least once; consumers skip what their inbox has seen)."""
    mine = {event.id for event in events}
    return list(dict.fromkeys(event_id for event_id in ids if event_id in mine))


async def test_the_writer_sends_its_committed_rows_itself_in_commit_order(infra: Any, writer: Writer) -> None:
    lead_a = [captured("lead-a") for _ in range(3)]
    lead_b = [captured("lead-b") for _ in range(2)]
    async with writer.publishing():  # and no relay at all
        await writer.write(lead_a[0], lead_b[0])
        await writer.write(lead_a[1])
        await writer.write(lead_a[2], lead_b[1])
        ids = await on_kafka(infra, writer, [*lead_a, *lead_b])
        await eventually(holds(lambda: writer.published() == 5), what="every event counted")
    assert of_key(ids, lead_a) == [event.id for event in lead_a]
    assert of_key(ids, lead_b) == [event.id for event in lead_b]
    assert len(ids) == 5
    assert await outbox_size(writer.db) == 0
    assert sum(writer.left(reason) for reason in ("kafka", "database", "order", "paused", "stopped")) == 0


async def test_a_row_committed_while_kafka_is_down_goes_out_through_the_relay_before_later_rows_of_its_key(
    infra: Any, writer: Writer
) -> None:
    warm_up, during, after = captured("lead-w"), captured("lead-k"), [captured("lead-k") for _ in range(3)]
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(writer.publishing())
        await stack.enter_async_context(writer.relaying())
        await writer.write(warm_up)
        await on_kafka(infra, writer, [warm_up])

        await infra.stop_kafka()
        try:
            await writer.write(during)
            await eventually(holds(lambda: writer.left("kafka") >= 1), timeout=30,
                             what="the failed direct send leaves the row to the relay")
            assert await outbox_size(writer.db) == 1
        finally:
            await infra.start_kafka()
        for event in after:
            await writer.write(event)
        ids = await on_kafka(infra, writer, [during, *after])
    assert of_key(ids, [during, *after]) == [event.id for event in [during, *after]]
    assert await outbox_size(writer.db) == 0


async def test_a_writer_killed_between_commit_and_send_leaves_its_row_to_the_relay(
    infra: Any, writer: Writer
) -> None:
    killed = Outbox(writer.settings.topic_prefix)  # committed, then the process died: nobody sends it
    orphan, later = captured("lead-k"), [captured("lead-k") for _ in range(2)]
    async with writer.db.transaction() as session:
        await killed.add(session, orphan)
    async with writer.publishing(), writer.relaying():
        for event in later:
            await writer.write(event)
        ids = await on_kafka(infra, writer, [orphan, *later])
    # The live writer found the orphan ahead of its rows and left them behind it, to the relay.
    assert writer.left("order") >= 1
    assert of_key(ids, [orphan, *later]) == [event.id for event in [orphan, *later]]
    assert await outbox_size(writer.db) == 0


async def test_a_direct_send_waits_behind_an_older_row_of_its_key_that_a_relay_is_sending(
    infra: Any, writer: Writer
) -> None:
    older, newer, other_key = captured("lead-k"), captured("lead-k"), captured("lead-other")
    await writer.write(older)  # before the publisher runs: the relay's to send
    relay_session = await asyncpg.connect(asyncpg_dsn(writer.db.url))
    relay_claim = relay_session.transaction()
    await relay_claim.start()
    committed = False
    try:
        # What a relay holds while Kafka has not yet acknowledged the row: deleted, not committed.
        claimed = await relay_session.fetch("DELETE FROM outbox WHERE event_id = $1 RETURNING id", older.id)
        assert len(claimed) == 1
        async with writer.publishing():
            await writer.write(newer)
            await writer.write(other_key)
            await on_kafka(infra, writer, [other_key])  # the publisher goes on with other keys
            assert writer.left("order") == 1
            # The relay's send of the older row is acknowledged, then its claim commits.
            producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, enable_idempotence=True)
            await producer.start()
            try:
                await producer.send_and_wait(writer.settings.topic(CAPTURED), encode_body(older),
                                             key=older.subject.encode(), headers=encode_headers(older))
            finally:
                await producer.stop()
            await relay_claim.commit()
            committed = True
            async with writer.relaying():
                ids = await on_kafka(infra, writer, [older, newer])
    finally:
        if not committed:
            await relay_claim.rollback()
        await relay_session.close()
    assert of_key(ids, [older, newer]) == [older.id, newer.id]
    assert await outbox_size(writer.db) == 0


async def test_the_insert_s_check_for_an_older_row_of_a_key_reads_only_that_key_s_rows(writer: Writer) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(writer.db.url))
    try:
        # Deleted rows not yet vacuumed, below the rows written: what a busy outbox holds between vacuums.
        await conn.execute("ALTER TABLE outbox SET (autovacuum_enabled = false)")
        insert = ("INSERT INTO outbox (event_id, topic, key, headers, body) "
                  "SELECT $1 || g, 't', 'lead-' || g, '[]', '{}' FROM generate_series(1, $2) AS g RETURNING id, key")
        dead = [record["id"] for record in await conn.fetch(insert, "dead-", 5000)]
        await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", dead)
        older = await conn.fetchval("INSERT INTO outbox (event_id, topic, key, headers, body) "
                                    "VALUES ('older', 't', 'lead-2', '[]', '{}') RETURNING id")
        await conn.execute("ANALYZE outbox")
        writing = conn.transaction()
        await writing.start()
        rows = (["new-1", "new-2", "new-3"], ["t"] * 3, ["lead-1", "lead-2", "lead-3"], ["[]"] * 3, ["{}"] * 3)
        plan = orjson.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {INSERT_ROWS}", *rows,
                                                [], [], "", []))
        await writing.rollback()
        writing = conn.transaction()
        await writing.start()
        written = await conn.fetch(INSERT_ROWS, *rows, [], [], "", [])
        blocked = {record["event_id"]: record["blocked"] for record in written}
        await writing.rollback()
        writing = conn.transaction()
        await writing.start()
        not_counting_older = await conn.fetch(INSERT_ROWS, ["new-4"], ["t"], ["lead-2"], ["[]"], ["{}"], [older], [],
                                              "", [])
        await writing.rollback()
    finally:
        await conn.close()
    # Only lead-2 has an older row; this process's own unsettled rows ($6) do not count.
    assert blocked == {"new-1": False, "new-2": True, "new-3": False}
    assert [record["blocked"] for record in not_counting_older] == [False]
    node = plan[0]["Plan"]
    # Walking the id index, the check would read every deleted row below the new ones (over a thousand pages).
    assert node["Shared Hit Blocks"] + node["Shared Read Blocks"] < 100, node


async def test_a_long_transaction_s_rows_are_sent_once_by_their_writer_not_again_by_the_relay(
        infra: Any, writer: Writer) -> None:
    """A row's age counts from its insert, just before its commit: rows of a transaction that ran longer
    than the backstop age are still their writer's to send, and the relay running beside it leaves them
    (the transaction's start would make them the relay's at once, and both would send them)."""
    events = [captured(f"lead-{n}") for n in range(5)]
    # A relay that looks every 20 ms: it would find the rows between their commit and their delete.
    writer.settings = writer.settings.model_copy(update={"outbox_poll_interval_seconds": 0.02})
    async with writer.publishing(), writer.relaying():
        async with writer.db.transaction() as session:
            await session.execute(text("SELECT 1"))  # the transaction's start: now()
            await asyncio.sleep(BACKSTOP_AGE_SECONDS + 1)
            for event in events:
                await writer.outbox.add(session, event)
        ids = await on_kafka(infra, writer, events)
        await eventually(holds(lambda: writer.published() == len(events)), what="every event counted")
        await asyncio.sleep(BACKSTOP_AGE_SECONDS + 1.5)  # the relay has had its turn at every row
        ids = await on_kafka(infra, writer, events)
    assert sorted(ids) == sorted(event.id for event in events)  # each once
    assert await outbox_size(writer.db) == 0


async def test_a_consumer_s_inbox_claim_rides_on_the_outbox_statement_and_a_repeat_rolls_it_all_back(
        infra: Any, writer: Writer) -> None:
    """A consumer claims a handled batch's events last: in the statement that writes its outbox rows, no
    round trip of its own. When one of them was processed before, the whole transaction rolls back, its
    outbox rows with it, and none of its events is published."""
    first, repeat = captured("lead-1"), captured("lead-2")
    async with writer.publishing():
        with ExitStack() as counting:  # until after the commit, where the outbox rows are written
            async with writer.db.transaction() as session:
                statements = counting.enter_context(counting_statements(await driver_connection(session)))
                await writer.outbox.add(session, first)
                await writer.outbox.claim_last(session, "kit-consumer", ["event-1"])
        with pytest.raises(EventsAlreadyClaimed):
            async with writer.db.transaction() as session:
                await writer.outbox.add(session, repeat)
                await writer.outbox.claim_last(session, "kit-consumer", ["event-2", "event-1"])
        await on_kafka(infra, writer, [first])
        await eventually(holds(lambda: writer.published() == 1), what="the first event counted")
    async with writer.db.transaction() as session:
        inbox = (await session.execute(text("SELECT consumer, event_id FROM processed_event"))).all()
        outbox = (await session.execute(text("SELECT event_id FROM outbox"))).all()
    assert [tuple(row) for row in inbox] == [("kit-consumer", "event-1")]
    assert outbox == []  # the first sent and deleted, the repeat's never committed
    assert writer.published() == 1
    # One write for the outbox rows and the claim together.
    assert [s for s in statements if "processed_event" in s] == [INSERT_ROWS]
