"""Idempotent event consumption: inbox row and handler effects in one transaction, offsets after.

Declaring a handler is one decorator::

    consumer = EventConsumer("scoring")

    @consumer.subscribe(topics.ENRICHED)
    async def score_lead(event: Event[LeadEnriched], uow: UnitOfWork) -> None: ...

Work that must not hold a transaction open — a call to an outside service — goes in the
subscription's ``prepare`` step, which runs before the transaction begins.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import Event, EventData, MalformedEvent, decode
from leadflow_contracts.topics import dead_letter_topic
from leadflow_kit.clock import Clock, SystemClock
from leadflow_kit.db import Database, driver_connection
from leadflow_kit.kafka import ProducerHolder
from leadflow_kit.logging import log_context, redact_text
from leadflow_kit.metrics import ServiceMetrics
from leadflow_kit.outbox import Outbox
from leadflow_kit.settings import ServiceSettings

log = logging.getLogger(__name__)


class PermanentError(Exception):
    """A failure no retry can fix (bad data): the event goes straight to the dead-letter topic."""


@dataclass
class UnitOfWork:
    """What a handler may touch: one transaction, the outbox in it, and the time."""

    session: AsyncSession
    outbox: Outbox
    clock: Clock
    # What the subscriptions' ``prepare`` steps found for this batch before its transaction began.
    prepared: Mapping[str, Any] = field(default_factory=dict)

    async def publish(self, event: Event[Any]) -> None:
        await self.outbox.add(self.session, event)

    def now(self) -> datetime:
        return self.clock.now()


Handler = Callable[[Event[Any], UnitOfWork], Awaitable[None]]
# Before the transaction: the batch's events of one topic and the service's database (for reads of
# its own); returns what the handlers find in ``uow.prepared``.
Prepare = Callable[[list[Event[Any]], Database], Awaitable[Mapping[str, Any]]]


@dataclass
class Subscription:
    topic: str
    handler: Handler
    prepare: Prepare | None = None


@dataclass
class EventConsumer:
    """The subscriptions of one service; ``ConsumerRunner`` drives them against Kafka."""

    service: str
    subscriptions: dict[str, Subscription] = field(default_factory=dict)

    def subscribe(self, topic: str, *, prepare: Prepare | None = None) -> Callable[[Handler], Handler]:
        """``prepare`` runs before the transaction opens, once per batch, so that no transaction, lock or
        pooled connection waits on what it does. It should not fail; when it does, the failure is
        logged and the handlers run without what it would have found."""
        def register(handler: Handler) -> Handler:
            if topic in self.subscriptions:
                raise ValueError(f"{self.service} already handles {topic}")
            self.subscriptions[topic] = Subscription(topic, handler, prepare)
            return handler

        return register


async def claim_event(session: AsyncSession, consumer: str, event_id: str) -> bool:
    """Record the event as processed by ``consumer``; False when it already was."""
    return event_id in await claim_events(session, consumer, [event_id])


async def claim_events(session: AsyncSession, consumer: str, event_ids: list[str]) -> set[str]:
    """Record a batch's events as processed by ``consumer`` in one statement; returns the ids not
    processed before (an id repeated within the batch is returned once)."""
    conn = await driver_connection(session)
    rows = await conn.fetch(
        "INSERT INTO processed_event (consumer, event_id) SELECT $1, unnest($2::text[]) "
        "ON CONFLICT DO NOTHING RETURNING event_id",
        consumer, event_ids,
    )
    return {row["event_id"] for row in rows}


class ConsumerRunner:
    def __init__(
        self,
        consumer: EventConsumer,
        settings: ServiceSettings,
        db: Database,
        producers: ProducerHolder,
        outbox: Outbox,
        metrics: ServiceMetrics,
        clock: Clock | None = None,
    ) -> None:
        self.consumer = consumer
        self.settings = settings
        self.db = db
        self.producers = producers
        self.outbox = outbox
        self.metrics = metrics
        self.clock = clock or SystemClock()
        self._by_topic = {settings.topic(t): s for t, s in consumer.subscriptions.items()}
        self._kafka: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()
        self._partition_slots = asyncio.Semaphore(max(settings.consumer_max_concurrent_partitions, 1))
        self.assigned = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        if not self._by_topic:
            return
        backoff = 0.5
        while not self._stopping.is_set():
            kafka = AIOKafkaConsumer(
                *self._by_topic,
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                group_id=self.settings.consumer_group,
                client_id=f"{self.settings.service_name}-consumer",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
                max_poll_records=self.settings.kafka_max_poll_records,
                session_timeout_ms=self.settings.kafka_session_timeout_ms,
                heartbeat_interval_ms=max(self.settings.kafka_session_timeout_ms // 3, 300),
                request_timeout_ms=max(self.settings.kafka_request_timeout_ms,
                                       self.settings.kafka_session_timeout_ms + 1000),
            )
            try:
                await kafka.start()
                self._kafka = kafka
                backoff = 0.5
                await self._poll(kafka)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("kafka consumer failed; reconnecting", exc_info=True)
                if await self._sleep(backoff):
                    break
                backoff = min(backoff * 2, 5.0)
            finally:
                self._kafka = None
                self.assigned.clear()
                try:
                    await asyncio.wait_for(kafka.stop(), timeout=10)
                except Exception:
                    log.warning("kafka consumer did not stop cleanly", exc_info=True)

    async def _poll(self, kafka: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            batches = await kafka.getmany(timeout_ms=200)
            if kafka.assignment():
                self.assigned.set()
            if not batches:
                continue
            if self.settings.consumer_transaction_per_poll and len(batches) > 1:
                every = [record for records in batches.values() for record in records]
                if await self._process_batch(every):
                    await self._commit(kafka, batches)
                    continue
            # Partitions run side by side; within one partition records stay in order.
            await asyncio.gather(*(self._bounded(records) for records in batches.values()))
            # One offset commit for the whole poll: a commit is a broker round trip, and a poll
            # under load spans every partition.
            await self._commit(kafka, batches)

    async def _bounded(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        async with self._partition_slots:
            await self._process_partition(records)

    async def _process_partition(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        if len(records) == 1 or not await self._process_batch(records):
            for record in records:
                await self._process(record)

    async def _commit(
        self, kafka: AIOKafkaConsumer, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
        try:
            await kafka.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # The partitions moved to another member, which will redeliver; the inbox drops repeats.
            log.warning("offset commit failed for %s: %s", sorted(map(str, offsets)), exc)
        for tp, offset in offsets.items():
            highwater = kafka.highwater(tp)
            if highwater is not None:
                self.metrics.consumer_lag.labels(self.settings.service_name, tp.topic, str(tp.partition)).set(
                    max(highwater - offset, 0)
                )

    async def _process(self, record: ConsumerRecord[bytes, bytes]) -> None:
        service = self.settings.service_name
        subscription = self._by_topic[record.topic]
        try:
            event = decode(record.value, list(record.headers))
        except MalformedEvent as exc:
            await self._dead_letter(record, exc, attempts=0)
            return
        with log_context(lead_id=event.subject, correlation_id=event.correlation_id):
            prepared = await self._prepare([record], [event])
            attempts = self.settings.consumer_max_attempts
            for attempt in range(1, attempts + 1):
                started = time.perf_counter()
                try:
                    outcome = await self._handle_once(subscription, event, prepared)
                except PermanentError as exc:
                    await self._dead_letter(record, exc, attempts=attempt)
                    return
                except Exception as exc:
                    if attempt == attempts:
                        log.exception("giving up on %s after %d attempts", event.type, attempt)
                        await self._dead_letter(record, exc, attempts=attempt)
                        return
                    self.metrics.events_consumed.labels(service, record.topic, "retried").inc()
                    log.warning("handling %s failed (attempt %d): %s", event.type, attempt, exc)
                    delay = self.settings.consumer_retry_backoff_seconds * 2 ** (attempt - 1)
                    await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                    continue
                self.metrics.events_consumed.labels(service, record.topic, outcome).inc()
                self.metrics.event_handle_duration.labels(service, record.topic).observe(
                    time.perf_counter() - started
                )
                return

    async def _process_batch(self, records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        """Handle a partition's poll (or, with ``consumer_transaction_per_poll``, the whole poll) in a
        single transaction: under load, one commit (and one fsync) per batch instead of per event.
        False when anything in it fails; the caller then goes partition by partition and record by
        record, with retries and dead letters, and the rollback leaves no trace."""
        service = self.settings.service_name
        try:
            events = [decode(record.value, list(record.headers)) for record in records]
        except MalformedEvent:
            return False
        started = time.perf_counter()
        prepared = await self._prepare(records, events)
        outcomes: list[tuple[str, str]] = []  # (topic, outcome)
        try:
            async with self.db.transaction() as session:
                uow = UnitOfWork(session, self.outbox, self.clock, prepared)
                unclaimed = await claim_events(session, service, [event.id for event in events])
                for record, event in zip(records, events, strict=True):
                    with log_context(lead_id=event.subject, correlation_id=event.correlation_id):
                        if event.id not in unclaimed:
                            outcomes.append((record.topic, "duplicate"))
                            continue
                        unclaimed.discard(event.id)  # a repeat later in this batch is a duplicate
                        await self._by_topic[record.topic].handler(event, uow)
                        outcomes.append((record.topic, "processed"))
        except Exception as exc:
            topics = ", ".join(sorted({record.topic for record in records}))
            log.info("batch of %d events on %s failed (%s); handling them one by one", len(events), topics, exc)
            return False
        per_event = (time.perf_counter() - started) / len(events)
        for topic, outcome in outcomes:
            self.metrics.events_consumed.labels(service, topic, outcome).inc()
            self.metrics.event_handle_duration.labels(service, topic).observe(per_event)
        return True

    async def _prepare(
        self, records: list[ConsumerRecord[bytes, bytes]], events: list[Event[EventData]]
    ) -> Mapping[str, Any]:
        by_topic: dict[str, tuple[Prepare, list[Event[Any]]]] = {}
        for record, event in zip(records, events, strict=True):
            prepare = self._by_topic[record.topic].prepare
            if prepare is not None:
                by_topic.setdefault(record.topic, (prepare, []))[1].append(event)
        prepared: dict[str, Any] = {}
        for topic, (prepare, topic_events) in by_topic.items():
            try:
                prepared.update(await prepare(topic_events, self.db))
            except Exception:
                log.warning("preparing %d events of %s failed; their handlers run without it",
                            len(topic_events), topic, exc_info=True)
        return prepared

    async def _handle_once(
        self, subscription: Subscription, event: Event[EventData], prepared: Mapping[str, Any]
    ) -> str:
        async with self.db.transaction() as session:
            if not await claim_event(session, self.settings.service_name, event.id):
                return "duplicate"
            await subscription.handler(event, UnitOfWork(session, self.outbox, self.clock, prepared))
        return "processed"

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], error: Exception, attempts: int) -> None:
        headers = [
            *record.headers,
            ("dlq_error_type", type(error).__name__.encode()),
            ("dlq_error_message", redact_text(str(error))[:2000].encode()),
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_consumer", self.settings.service_name.encode()),
            ("dlq_attempts", str(attempts).encode()),
            ("dlq_failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        topic = dead_letter_topic(record.topic)
        producer = await self.producers.get()
        await asyncio.wait_for(
            producer.send_and_wait(topic, value=record.value, key=record.key, headers=headers),
            timeout=self.settings.kafka_request_timeout_ms / 1000 + 5,
        )
        self.metrics.dead_lettered.labels(self.settings.service_name, record.topic).inc()
        self.metrics.events_consumed.labels(self.settings.service_name, record.topic, "dead_lettered").inc()
        log.error("event dead-lettered to %s: %s: %s", topic, type(error).__name__, error)

    async def _sleep(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True
