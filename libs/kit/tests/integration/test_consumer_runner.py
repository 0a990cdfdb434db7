"""The idempotent consumer against the real broker and database: once-only effects, dead letters."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import text

from leadflow_contracts import Event, LeadActivity, LeadCaptured, LeadContact, new_event
from leadflow_contracts.topics import ACTIVITY, CAPTURED, dead_letter_topic
from leadflow_kit import pressure
from leadflow_kit.consumer import ConsumerRunner, EventConsumer, PermanentError, UnitOfWork
from leadflow_kit.db import Database, new_metadata
from leadflow_kit.platform import Platform
from leadflow_kit.settings import ServiceSettings
from leadflow_stack.testing import eventually, produce

pytestmark = pytest.mark.integration


def captured(lead_id: str, key: str | None = None) -> Event[LeadCaptured]:
    now = datetime.now(UTC)
    data = LeadCaptured(lead_id=lead_id, form_key="demo", submitted_at=now, contact=LeadContact(email="a@b.co"))
    return new_event(data, source="capture", subject=key or lead_id, lead_captured_at=now)


async def topics_and_effect_table(infra: Any) -> tuple[str, Database]:
    """A fresh topic prefix (three partitions a topic) and a database with the kit's tables and ``effect``."""
    prefix = infra.new_topic_prefix()
    await infra.create_topics(prefix, partitions=3)
    db = Database(await infra.new_database("kit"))
    async with db.engine.begin() as conn:
        await conn.run_sync(new_metadata().create_all)
        await conn.execute(text("CREATE TABLE effect (lead_id text, event_id text)"))
    return prefix, db


@asynccontextmanager
async def running(
    consumer: EventConsumer[None], settings: ServiceSettings, db: Database
) -> AsyncIterator[tuple[ConsumerRunner[None], Platform]]:
    """A runner of ``consumer`` on ``db``, stopped (its producers and database closed) on the way out."""
    platform = replace(Platform.build(settings), db=db, pipeline_db=db)
    runner = ConsumerRunner(consumer, platform, None)
    task = asyncio.create_task(runner.run())
    try:
        yield runner, platform
    finally:
        runner.stop()
        await asyncio.wait_for(task, 30)
        await platform.producers.close()
        await db.dispose()


@pytest.fixture(params=[False, True], ids=["transaction-per-partition", "transaction-per-poll"])
async def harness(infra: Any, request: pytest.FixtureRequest) -> Any:
    prefix, db = await topics_and_effect_table(infra)
    settings = ServiceSettings(
        service_name="kit-test", kafka_bootstrap_servers=infra.bootstrap_servers, topic_prefix=prefix,
        consumer_max_attempts=3, consumer_retry_backoff_seconds=0.01,
        consumer_transaction_per_poll=request.param,
    )
    consumer = EventConsumer[None]("kit-test")

    async def prepare(events: list[Event[Any]], _deps: None) -> dict[str, str]:
        if any(event.data.lead_id.startswith("unpreparable") for event in events):
            raise RuntimeError("the outside service is down")
        return {event.id: f"prepared:{event.data.lead_id}" for event in events}

    @consumer.subscribe(CAPTURED, LeadCaptured, prepare=prepare)
    async def record_effects(events: list[Event[LeadCaptured]], uow: UnitOfWork[None]) -> None:
        for event in events:
            await record_effect(event, uow)

    async def record_effect(event: Event[LeadCaptured], uow: UnitOfWork[None]) -> None:
        if event.data.lead_id.startswith("poison"):
            raise RuntimeError(f"this lead always fails for {event.data.contact.email}")
        if event.data.lead_id.startswith("strict"):
            # A handler that finds what its event's first handling did and calls it bad data.
            seen = await uow.session.execute(text("SELECT 1 FROM effect WHERE lead_id = :lead"),
                                             {"lead": event.data.lead_id})
            if seen.first() is not None:
                raise PermanentError(f"{event.data.lead_id} was handled already")
        # Leads named for the prepare step record what it found instead of their event id.
        recorded = uow.prepared.get(event.id, "nothing") if "prepar" in event.data.lead_id else event.id
        await uow.session.execute(
            text("INSERT INTO effect VALUES (:lead, :event)"), {"lead": event.data.lead_id, "event": recorded}
        )

    platform = replace(Platform.build(settings), db=db, pipeline_db=db)
    metrics, producers = platform.metrics, platform.producers
    runner = ConsumerRunner(consumer, platform, None)
    task = asyncio.create_task(runner.run())
    yield settings, db, metrics
    runner.stop()
    await asyncio.wait_for(task, 30)
    await producers.close()
    await db.dispose()


async def effects(db: Database) -> list[tuple[str, str]]:
    async with db.transaction() as session:
        return [tuple(r) for r in (await session.execute(text("SELECT lead_id, event_id FROM effect"))).all()]


async def test_an_event_delivered_twice_has_its_effect_once(harness: Any) -> None:
    settings, db, metrics = harness
    event = captured("lead-twice")
    await produce(settings.kafka_bootstrap_servers, settings.topic_prefix, [event, event])

    async def both_seen() -> bool:
        consumed = metrics.events_consumed.labels("kit-test", settings.topic(CAPTURED), "duplicate")._value.get()
        return consumed >= 1

    await eventually(both_seen)
    assert await effects(db) == [("lead-twice", event.id)]


async def test_a_redelivered_event_is_skipped_even_where_its_handler_would_now_refuse_it(harness: Any) -> None:
    """The runner claims an event in the inbox after its handler ran: a redelivered event meets the effects
    of its first handling. Whatever the handler makes of that (here a PermanentError), the event is a
    duplicate, not a dead letter, and its first effect stays the only one."""
    settings, db, metrics = harness
    event = captured("strict-lead")
    await produce(settings.kafka_bootstrap_servers, settings.topic_prefix, [event])

    async def handled() -> bool:
        return await effects(db) == [("strict-lead", event.id)]

    await eventually(handled)
    # Again, and behind it, in its partition, a lead that shows when the repeat was dealt with.
    after = captured("after-strict", key="strict-lead")
    await produce(settings.kafka_bootstrap_servers, settings.topic_prefix, [event, after])

    async def both_taken() -> bool:
        return any(lead == "after-strict" for lead, _ in await effects(db))

    await eventually(both_taken)
    outcomes = {outcome: metrics.events_consumed.labels("kit-test", settings.topic(CAPTURED), outcome)._value.get()
                for outcome in ("duplicate", "dead_lettered")}
    assert outcomes == {"duplicate": 1, "dead_lettered": 0}
    assert [lead for lead, _ in await effects(db)].count("strict-lead") == 1


async def test_a_failing_event_is_dead_lettered_and_the_consumer_moves_on(harness: Any) -> None:
    settings, db, _ = harness
    # One key, so one partition: the healthy event queues behind the poison one.
    poison, healthy = captured("poison-1", key="k1"), captured("after-poison", key="k1")
    await produce(settings.kafka_bootstrap_servers, settings.topic_prefix, [poison, healthy])

    async def healthy_processed() -> bool:
        return any(lead == "after-poison" for lead, _ in await effects(db))

    await eventually(healthy_processed)
    dlq = AIOKafkaConsumer(
        dead_letter_topic(settings.topic(CAPTURED)), bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest", group_id=f"dlq-reader-{uuid.uuid4()}",
    )
    await dlq.start()
    try:
        record = await asyncio.wait_for(dlq.getone(), 30)
    finally:
        await dlq.stop()
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["ce_id"] == poison.id
    assert headers["dlq_error_type"] == "RuntimeError"
    assert headers["dlq_error_message"] == "this lead always fails for [email]"  # no personal data
    assert headers["dlq_attempts"] == "3"
    assert headers["dlq_original_topic"] == settings.topic(CAPTURED)
    assert all(lead != "poison-1" for lead, _ in await effects(db))


async def test_a_malformed_record_is_dead_lettered_without_retries(harness: Any) -> None:
    settings, _, metrics = harness
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic(CAPTURED), b"not json", key=b"junk", headers=[("ce_type", b"x")])
    finally:
        await producer.stop()

    async def dead_lettered() -> bool:
        return metrics.dead_lettered.labels("kit-test", settings.topic(CAPTURED))._value.get() >= 1

    await eventually(dead_lettered)


async def test_a_burst_over_every_partition_with_a_poison_event_has_each_effect_once(harness: Any) -> None:
    settings, db, metrics = harness
    healthy = [captured(f"burst-{n}") for n in range(40)]
    poison = captured("poison-burst")
    await produce(settings.kafka_bootstrap_servers, settings.topic_prefix, [*healthy[:20], poison, *healthy[20:]])

    async def all_settled() -> bool:
        dead = metrics.dead_lettered.labels("kit-test", settings.topic(CAPTURED))._value.get()
        return dead >= 1 and len([e for e in await effects(db) if e[0].startswith("burst-")]) >= len(healthy)

    await eventually(all_settled)
    burst = sorted(e for e in await effects(db) if e[0].startswith("burst-"))
    assert burst == sorted((event.data.lead_id, event.id) for event in healthy)  # each once, none lost
    assert all(lead != "poison-burst" for lead, _ in await effects(db))


async def test_what_prepare_finds_reaches_the_handler_and_its_failure_does_not_stop_it(harness: Any) -> None:
    settings, db, _ = harness
    for lead_id in ("prepared-1", "unpreparable-1"):
        await produce(settings.kafka_bootstrap_servers, settings.topic_prefix, [captured(lead_id)])

        async def handled(lead_id: str = lead_id) -> bool:
            return any(lead == lead_id for lead, _ in await effects(db))

        await eventually(handled)
    found = {lead: recorded for lead, recorded in await effects(db) if "prepar" in lead}
    assert found == {"prepared-1": "prepared:prepared-1", "unpreparable-1": "nothing"}


async def test_a_rebalance_during_a_batch_costs_no_reconnect_and_no_repeated_effect(
    infra: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A second member joins while a batch over every partition is being handled: the rebalance takes
    partitions from under it. Its end must not touch them (aiokafka asserts on a revoked partition's
    high watermark, which made the consumer reconnect and the group rebalance again)."""
    prefix, db = await topics_and_effect_table(infra)
    settings = ServiceSettings(
        service_name="kit-rebalance", kafka_bootstrap_servers=infra.bootstrap_servers, topic_prefix=prefix,
        kafka_session_timeout_ms=3000,  # a heartbeat a second: the rebalance reaches the runner soon
    )
    consumer = EventConsumer[None]("kit-rebalance")
    platform = replace(Platform.build(settings), db=db, pipeline_db=db)
    first_batch = asyncio.Event()

    @consumer.subscribe(CAPTURED, LeadCaptured)
    async def record_effects(events: list[Event[LeadCaptured]], uow: UnitOfWork[None]) -> None:
        if not first_batch.is_set():
            first_batch.set()
            # Hold the batch until the rebalance has taken partitions away from this member.
            kafka = runner._kafka
            assert kafka is not None
            whole = set(kafka.assignment())
            for _ in range(300):
                if set(kafka.assignment()) != whole:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("no rebalance reached the runner within 30 s")
        for event in events:
            await uow.session.execute(text("INSERT INTO effect VALUES (:lead, :event)"),
                                      {"lead": event.data.lead_id, "event": event.id})

    runner = ConsumerRunner(consumer, platform, None)  # after the subscription: it reads the topics
    events = [captured(f"rebalance-{i}") for i in range(30)]
    await produce(settings.kafka_bootstrap_servers, prefix, events)
    caplog.set_level("WARNING", logger="leadflow_kit.consumer")
    task = asyncio.create_task(runner.run())
    other = AIOKafkaConsumer(settings.topic(CAPTURED), bootstrap_servers=settings.kafka_bootstrap_servers,
                             group_id=settings.consumer_group, enable_auto_commit=False,
                             auto_offset_reset="earliest", session_timeout_ms=3000, heartbeat_interval_ms=1000)
    try:
        await asyncio.wait_for(first_batch.wait(), 30)
        await other.start()  # joins the group; it handles nothing and commits nothing

        async def assigned_too() -> bool:
            return bool(other.assignment())

        await eventually(assigned_too, timeout=30)
    finally:
        await other.stop()  # its partitions come back to the runner, from their last commit

    async def all_recorded() -> bool:
        return len(await effects(db)) >= len(events)

    await eventually(all_recorded, timeout=30)
    await asyncio.sleep(1)  # anything handled twice would land by now
    recorded = await effects(db)
    runner.stop()
    await asyncio.wait_for(task, 30)
    await platform.producers.close()
    await db.dispose()
    assert sorted(recorded) == sorted((e.data.lead_id, e.id) for e in events)
    failures = [r for r in caplog.records if "reconnecting" in r.getMessage()]
    assert not failures, [r.getMessage() + (r.exc_text or "") for r in failures]


async def test_a_partition_a_rebalance_takes_away_stops_reporting_its_lag(infra: Any) -> None:
    """A member that has reported the lag of every partition loses some to a new member: it stops reporting
    their lag and keeps reporting the others'. A series left behind kept its last figure for as long as the
    process lived: a partition taken away during a backlog went on showing that backlog (``max`` over the
    replicas' series, and the lag alert on it) after its new owner had cleared it."""
    prefix, db = await topics_and_effect_table(infra)
    settings = ServiceSettings(
        service_name="kit-lag", kafka_bootstrap_servers=infra.bootstrap_servers, topic_prefix=prefix,
        kafka_session_timeout_ms=3000,  # a heartbeat a second: the rebalance reaches the runner soon
    )
    consumer = EventConsumer[None]("kit-lag")

    @consumer.subscribe(CAPTURED, LeadCaptured)
    async def take(events: list[Event[LeadCaptured]], uow: UnitOfWork[None]) -> None:
        pass

    await produce(settings.kafka_bootstrap_servers, prefix, [captured(f"lag-{i}") for i in range(60)])
    topic = settings.topic(CAPTURED)
    async with running(consumer, settings, db) as (_runner, platform):
        def lag(partition: int) -> float | None:
            return platform.metrics.registry.get_sample_value(
                "leadflow_consumer_lag", {"service": "kit-lag", "topic": topic, "partition": str(partition)})

        async def every_partition_reported() -> bool:
            return all(lag(p) is not None for p in range(3))

        await eventually(every_partition_reported, timeout=30)
        other = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap_servers,
                                 group_id=settings.consumer_group, enable_auto_commit=False,
                                 auto_offset_reset="earliest", session_timeout_ms=3000, heartbeat_interval_ms=1000)
        await other.start()  # joins the group; it handles nothing and commits nothing
        try:
            async def taken() -> bool:
                return bool(other.assignment())

            await eventually(taken, timeout=30)
            taken_away = {tp.partition for tp in other.assignment()}
            kept = set(range(3)) - taken_away

            async def only_the_kept_reported() -> bool:
                return all(lag(p) is None for p in taken_away) and all(lag(p) is not None for p in kept)

            await eventually(only_the_kept_reported, timeout=30)
        finally:
            await other.stop()


@pytest.mark.parametrize("per_poll", [False, True], ids=["transaction-per-partition", "transaction-per-poll"])
async def test_events_nobody_wants_are_taken_without_a_transaction_and_wanted_ones_as_usual(
    infra: Any, per_poll: bool
) -> None:
    prefix, db = await topics_and_effect_table(infra)
    settings = ServiceSettings(service_name="kit-wanted", kafka_bootstrap_servers=infra.bootstrap_servers,
                               topic_prefix=prefix, consumer_transaction_per_poll=per_poll)
    consumer = EventConsumer[None]("kit-wanted")
    wanted = {"now": False, "asked": 0}

    async def anyone_wants(_deps: None) -> bool:
        wanted["asked"] += 1
        return wanted["now"]

    @consumer.subscribe(CAPTURED, LeadCaptured, wanted=anyone_wants)
    async def record_effects(events: list[Event[LeadCaptured]], uow: UnitOfWork[None]) -> None:
        for event in events:
            await uow.session.execute(text("INSERT INTO effect VALUES (:lead, :event)"),
                                      {"lead": event.data.lead_id, "event": event.id})

    platform = replace(Platform.build(settings), db=db, pipeline_db=db)
    runner = ConsumerRunner(consumer, platform, None)
    task = asyncio.create_task(runner.run())
    consumed = platform.metrics.events_consumed

    def counted(outcome: str) -> float:
        value: float = consumed.labels("kit-wanted", settings.topic(CAPTURED), outcome)._value.get()
        return value

    async def inbox() -> int:
        async with db.transaction() as session:
            return int((await session.execute(text("SELECT count(*) FROM processed_event"))).scalar_one())

    try:
        unwanted = [captured(f"unwanted-{i}") for i in range(12)]
        await produce(settings.kafka_bootstrap_servers, prefix, unwanted)

        async def all_unwanted() -> bool:
            return counted("unwanted") >= len(unwanted)

        await eventually(all_unwanted)
        # Taken and committed past, with no effect and no inbox row: no transaction was opened for them.
        assert await effects(db) == [] and await inbox() == 0
        assert 1 <= wanted["asked"] <= len(unwanted)  # once a batch, not once an event

        wanted["now"] = True
        handled = [captured(f"wanted-{i}") for i in range(5)]
        await produce(settings.kafka_bootstrap_servers, prefix, handled)

        async def all_handled() -> bool:
            return len(await effects(db)) >= len(handled)

        await eventually(all_handled)
        assert sorted(await effects(db)) == sorted((e.data.lead_id, e.id) for e in handled)
        assert await inbox() == len(handled) and counted("processed") == len(handled)
    finally:
        runner.stop()
        await asyncio.wait_for(task, 30)
        await platform.producers.close()
        await db.dispose()


async def test_a_poll_over_several_topics_is_handled_in_the_order_its_events_were_written(infra: Any) -> None:
    """A lead's events come on several topics; one poll (here a consumer that waits for bytes, as sla's does)
    may hold several of them. They are handled in the order they were written, not partition by partition:
    an older event applied after a newer one would undo it. The function subscribed to both topics gets
    them together, not a call per change of topic."""
    prefix, db = await topics_and_effect_table(infra)
    settings = ServiceSettings(service_name="kit-order", kafka_bootstrap_servers=infra.bootstrap_servers,
                               topic_prefix=prefix, kafka_fetch_min_bytes=1024 * 1024, kafka_fetch_max_wait_ms=1000)
    consumer = EventConsumer[None]("kit-order")
    handled: list[str] = []
    calls: list[set[type[Any]]] = []

    async def record_order(events: list[Event[Any]], _uow: UnitOfWork[None]) -> None:
        handled.extend(event.id for event in events)
        calls.append({type(event.data) for event in events})

    consumer.subscribe(CAPTURED, LeadCaptured)(record_order)
    consumer.subscribe(ACTIVITY, LeadActivity)(record_order)
    written: list[Event[Any]] = []
    for n in range(8):
        # "leads.activity" sorts before "leads.captured": a poll taken partition by partition would
        # handle every activity before any capture.
        written.append(captured(f"order-{n}"))
        now = datetime.now(UTC)
        written.append(new_event(LeadActivity(activity_id=f"act-{n}", activity_type="page_view", occurred_at=now,
                                              lead_id=f"order-{n}"), source="capture", subject=f"order-{n}"))
    for event in written:
        await produce(settings.kafka_bootstrap_servers, prefix, [event])  # each its own write, its own time
        await asyncio.sleep(0.005)
    async with running(consumer, settings, db):
        async def all_handled() -> bool:
            return len(handled) >= len(written)

        await eventually(all_handled)
    assert handled == [event.id for event in written]
    assert {LeadCaptured, LeadActivity} in calls, calls


@pytest.mark.parametrize(("cpu_pressure_to_linger", "calls"), [(0.0, [2]), (0.5, [1, 1])],
                         ids=["cpu-short", "cpu-to-spare"])
async def test_a_poll_waits_for_more_records_only_while_the_cpu_is_short(
    infra: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, cpu_pressure_to_linger: float, calls: list[int]
) -> None:
    """While the stalled share of PSI is at least consumer_linger_cpu_pressure, a poll that returned a record
    keeps polling up to consumer_linger_ms: an event written 0.3 s after the first is handled in the same call
    (one transaction). With CPU to spare each is handled as it comes. The PSI file here says nothing waits
    (a share of 0), so a threshold of 0 is "short" and 0.5 is not."""
    psi = tmp_path / "cpu.pressure"
    psi.write_text("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    monkeypatch.setattr(pressure, "PSI_FILES", (psi,))
    prefix, db = await topics_and_effect_table(infra)
    settings = ServiceSettings(service_name="kit-linger", kafka_bootstrap_servers=infra.bootstrap_servers,
                               topic_prefix=prefix, consumer_linger_ms=1000,
                               consumer_linger_cpu_pressure=cpu_pressure_to_linger)
    consumer = EventConsumer[None]("kit-linger")
    sizes: list[int] = []

    @consumer.subscribe(CAPTURED, LeadCaptured)
    async def record_sizes(events: list[Event[LeadCaptured]], _uow: UnitOfWork[None]) -> None:
        sizes.append(len(events))

    async with running(consumer, settings, db) as (runner, platform):
        await asyncio.wait_for(runner.assigned.wait(), 30)
        await produce(settings.kafka_bootstrap_servers, prefix, [captured("linger-1", key="k")])
        await asyncio.sleep(0.3)
        await produce(settings.kafka_bootstrap_servers, prefix, [captured("linger-2", key="k")])

        async def both_handled() -> bool:
            return sum(sizes) >= 2

        await eventually(both_handled)
    assert sizes == calls
    lingered = platform.metrics.consumer_lingered_polls.labels("kit-linger")._value.get()
    assert (lingered >= 1) == (cpu_pressure_to_linger == 0.0)
