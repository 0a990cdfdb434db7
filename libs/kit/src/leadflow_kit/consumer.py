"""Idempotent event consumption: inbox row and handler effects in one transaction, offsets after.

Declaring a handler is one decorator over a function of a batch of typed events::

    consumer = EventConsumer[Deps]("scoring")

    @consumer.subscribe(topics.ENRICHED, LeadEnriched)
    async def score_leads(events: list[Event[LeadEnriched]], uow: UnitOfWork[Deps]) -> None: ...

A handler gets the events of one topic and type that arrived together, in partition order, inside one
transaction; when that batch fails it gets them again one at a time, each in a transaction of its
own, so it writes the same effects either way. A function subscribed to several topics or types gets
their events together, in the order they were written (its events' type is then the union). Events of
a type no subscription names are skipped. Work that must not hold a transaction open — a call to an
outside service — goes in the subscription's ``prepare`` step, which runs before the transaction
begins. A subscription whose events often need nothing (webhooks of a type nobody subscribes to) may
say so in its ``wanted`` step, also before the transaction: its events are then taken without one,
and without an inbox row.

The inbox rows are written last, in the statement that writes the transaction's outbox rows (a round
trip less a batch): a redelivered event is handled again and its batch, finding it claimed, rolls back
and runs once more claiming first, which skips it. Handlers therefore never see their effects from a
rolled-back try, but they may meet what an event's first handling did; failing on it costs the event
nothing, as the claiming-first run follows.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from leadflow_contracts import Event, EventData, MalformedEvent, decode
from leadflow_contracts.topics import dead_letter_topic
from leadflow_kit.failures import is_outage
from leadflow_kit.kafka import kafka_client_options
from leadflow_kit.logging import log_context, redact_text
from leadflow_kit.outbox import EventsAlreadyClaimed, claim_events
from leadflow_kit.platform import Platform
from leadflow_kit.pressure import cpu_shortage
from leadflow_kit.uow import UnitOfWork

log = logging.getLogger(__name__)

D = TypeVar("D")
T = TypeVar("T", bound=EventData)


__all__ = [
    "ConsumerRunner", "DeadLetter", "EventConsumer", "PermanentError", "UnitOfWork", "dead_letter", "one_at_a_time",
]


class PermanentError(Exception):
    """A failure no retry can fix (bad data): the event goes straight to the dead-letter topic."""


@dataclass(frozen=True)
class DeadLetter:
    """An event to dead-letter, as its record was: where it came from, its key, body and headers."""

    topic: str
    partition: int | None
    offset: int | None
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


async def dead_letter(platform: Platform, letter: DeadLetter, error: Exception, attempts: int) -> None:
    """Send an event its handling gave up on to its topic's dead-letter topic, with why and where from in
    ``dlq_*`` headers (the runbook's replay reads them)."""
    settings = platform.settings
    headers = [
        *letter.headers,
        ("dlq_error_type", type(error).__name__.encode()),
        ("dlq_error_message", redact_text(str(error))[:2000].encode()),
        ("dlq_original_topic", letter.topic.encode()),
        ("dlq_original_partition", str(letter.partition if letter.partition is not None else "").encode()),
        ("dlq_original_offset", str(letter.offset if letter.offset is not None else "").encode()),
        ("dlq_consumer", settings.service_name.encode()),
        ("dlq_attempts", str(attempts).encode()),
        ("dlq_failed_at", datetime.now(UTC).isoformat().encode()),
    ]
    topic = dead_letter_topic(letter.topic)
    producer = await platform.producers.get()
    await asyncio.wait_for(
        producer.send_and_wait(topic, value=letter.value, key=letter.key, headers=headers),
        timeout=settings.kafka_request_timeout_ms / 1000 + 5,
    )
    platform.metrics.dead_lettered.labels(settings.service_name, letter.topic).inc()
    log.error("event dead-lettered to %s: %s: %s", topic, type(error).__name__, error)


def one_at_a_time(events: list[Event[T]]) -> Iterator[Event[T]]:
    """A batch's events in order, each logged under its own lead and correlation id while the loop body
    handles it (for handlers that take a batch and handle its events one by one)."""
    for event in events:
        with log_context(lead_id=event.subject, correlation_id=event.correlation_id):
            yield event


Handler = Callable[[list[Event[Any]], UnitOfWork[D]], Awaitable[None]]
# Before the transaction: the batch's events of one subscription and the service's deps (for reads of
# its own); returns what the handlers find in ``uow.prepared``.
Prepare = Callable[[list[Event[Any]], D], Awaitable[Mapping[str, Any]]]
# Before the transaction, once a batch: whether the subscription's events need handling at all now.
Wanted = Callable[[D], Awaitable[bool]]


@dataclass(eq=False)  # told apart by identity (a batch asks each subscription once)
class Subscription(Generic[D]):
    topic: str
    model: type[EventData]
    handler: Handler[D]
    prepare: Prepare[D] | None = None
    wanted: Wanted[D] | None = None


@dataclass
class EventConsumer(Generic[D]):
    """The subscriptions of one service; ``ConsumerRunner`` drives them against Kafka."""

    service: str
    subscriptions: dict[tuple[str, type[EventData]], Subscription[D]] = field(default_factory=dict)

    def subscribe(
        self, topic: str, model: type[T], *, prepare: Prepare[D] | None = None, wanted: Wanted[D] | None = None
    ) -> Callable[[Callable[[list[Event[T]], UnitOfWork[D]], Awaitable[None]]],
                  Callable[[list[Event[T]], UnitOfWork[D]], Awaitable[None]]]:
        """Handle the ``model`` events of ``topic``. ``prepare`` runs before the transaction opens, once per
        batch, so that no transaction, lock or pooled connection waits on what it does. It should not
        fail; when it does, the failure is logged and the handlers run without what it would have found.

        ``wanted`` also runs before the transaction, once per batch: when it answers False the batch's
        events of this subscription are taken as handled (outcome ``unwanted``) with no transaction and no
        inbox row, so it must only answer False when the handler would change nothing then (it reads
        what the handler's own first statement would). When it fails, the events are handled as usual."""

        def register(
            handler: Callable[[list[Event[T]], UnitOfWork[D]], Awaitable[None]],
        ) -> Callable[[list[Event[T]], UnitOfWork[D]], Awaitable[None]]:
            if (topic, model) in self.subscriptions:
                raise ValueError(f"{self.service} already handles {model.__name__} on {topic}")
            self.subscriptions[(topic, model)] = Subscription(topic, model, handler, prepare, wanted)
            return handler

        return register

    @property
    def topics(self) -> set[str]:
        return {topic for topic, _ in self.subscriptions}


@dataclass
class PartitionStall:
    """A partition held back by an outage: paused, its position sought back to the record that
    failed, which is retried at ``resume_at``. Nothing later in the partition overtakes it."""

    offset: int
    since: float  # loop time of the first failure at this offset
    attempts: int
    resume_at: float
    error_type: str


class _Outage(Exception):
    """Raised inside the runner when a failure is an outage: the partition stalls, nothing is dead-lettered."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what was handled of the partitions a rebalance takes away, so their next owner does not
    get those events again, and stops reporting the lag of those it did not get back."""

    def __init__(self, runner: ConsumerRunner[Any], kafka: AIOKafkaConsumer) -> None:
        self.runner = runner
        self.kafka = kafka

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        await self.runner.commit_uncommitted(self.kafka, revoked)

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        self.runner.forget_lag(keep=assigned)


class ConsumerRunner(Generic[D]):
    def __init__(self, consumer: EventConsumer[D], platform: Platform, deps: D) -> None:
        self.consumer = consumer
        self.deps = deps
        self.platform = platform
        self.settings = platform.settings
        self.db = platform.pipeline_db
        self.producers = platform.producers
        self.outbox = platform.outbox
        self.metrics = platform.metrics
        self.clock = platform.clock
        settings = self.settings
        self._subscriptions = {(settings.topic(topic), model): subscription
                               for (topic, model), subscription in consumer.subscriptions.items()}
        self._topics = sorted({topic for topic, _ in self._subscriptions})
        self._kafka: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()
        self._partition_slots = asyncio.Semaphore(max(settings.consumer_max_concurrent_partitions, 1))
        self._stalls: dict[TopicPartition, PartitionStall] = {}
        # Offsets handled and not yet committed to Kafka, and when the next commit is due.
        self._uncommitted: dict[TopicPartition, int] = {}
        self._commit_due = 0.0
        self._lag_reported: set[TopicPartition] = set()  # the partitions whose lag series this member set
        self._cpu_is_short = cpu_shortage(settings.consumer_linger_cpu_pressure,
                                          enabled=settings.consumer_linger_ms > 0)
        self.assigned = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    def oldest_stall(self) -> PartitionStall | None:
        """The partition waiting longest on an outage, if any (readiness reports it)."""
        return min(self._stalls.values(), key=lambda stall: stall.since, default=None)

    async def run(self) -> None:
        if not self._topics:
            return
        backoff = 0.5
        while not self._stopping.is_set():
            kafka = AIOKafkaConsumer(
                **kafka_client_options(self.settings),
                group_id=self.settings.consumer_group,
                client_id=f"{self.settings.service_name}-consumer",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
                fetch_min_bytes=self.settings.kafka_fetch_min_bytes,
                max_poll_records=self.settings.kafka_max_poll_records,
                session_timeout_ms=self.settings.kafka_session_timeout_ms,
                heartbeat_interval_ms=max(self.settings.kafka_session_timeout_ms // 3, 300),
                request_timeout_ms=max(self.settings.kafka_request_timeout_ms,
                                       self.settings.kafka_session_timeout_ms + 1000),
            )
            kafka.subscribe(self._topics, listener=_CommitOnRevoke(self, kafka))
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
                self._stalls.clear()  # a new consumer starts from the committed offsets, nothing paused
                self.assigned.clear()
                self.forget_lag()
                try:
                    await asyncio.wait_for(self.commit_uncommitted(kafka), timeout=10)
                except Exception:
                    log.warning("could not commit the last offsets; their events come again (and are skipped)",
                                exc_info=True)
                self._uncommitted.clear()
                try:
                    await asyncio.wait_for(kafka.stop(), timeout=10)
                except Exception:
                    log.warning("kafka consumer did not stop cleanly", exc_info=True)

    async def _poll(self, kafka: AIOKafkaConsumer) -> None:
        # getmany is called every round even while every partition waits on an outage: aiokafka's
        # heartbeat leaves the group once no getmany has run for max_poll_interval_ms (5 minutes), so
        # an outage is waited out with partitions paused, never inside a handler call.
        while not self._stopping.is_set():
            self._resume_due(kafka)
            batches = await kafka.getmany(timeout_ms=200)
            if batches and self._cpu_is_short():
                await self._linger(kafka, batches)
            if kafka.assignment():
                self.assigned.set()
            if not batches:
                if self._uncommitted and asyncio.get_running_loop().time() >= self._commit_due:
                    await self.commit_uncommitted(kafka)
                continue
            if self.settings.consumer_transaction_per_poll and len(batches) > 1:
                # In the order they were written across partitions (each partition's own order kept): a
                # lead's events come on several topics, and a poll may hold its capture and its enrichment
                # together; handled partition by partition, the later event could apply first.
                every = list(heapq.merge(*batches.values(), key=lambda record: record.timestamp))
                try:
                    done = await self._process_batch(every)
                except _Outage as outage:
                    await self._settle(kafka, batches, dict.fromkeys(batches, (0, outage.error)))
                    continue
                if done:
                    await self._settle(kafka, batches, {tp: (len(records), None) for tp, records in batches.items()})
                    continue
            # Partitions run side by side; within one partition records stay in order.
            results = await asyncio.gather(*(self._bounded(records) for records in batches.values()))
            await self._settle(kafka, batches, dict(zip(batches, results, strict=True)))

    async def _linger(
        self, kafka: AIOKafkaConsumer, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        """Add to ``batches`` (in place, each partition's records in order) what arrives within
        ``consumer_linger_ms``, up to ``kafka_max_poll_records`` in all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.consumer_linger_ms / 1000
        limit = self.settings.kafka_max_poll_records
        count = sum(map(len, batches.values()))
        self.metrics.consumer_lingered_polls.labels(self.settings.service_name).inc()
        while count < limit and not self._stopping.is_set():
            remaining_ms = int((deadline - loop.time()) * 1000)
            if remaining_ms <= 0:
                break
            more = await kafka.getmany(timeout_ms=remaining_ms, max_records=limit - count)
            for tp, records in more.items():
                batches.setdefault(tp, []).extend(records)
                count += len(records)

    async def _bounded(self, records: list[ConsumerRecord[bytes, bytes]]) -> tuple[int, BaseException | None]:
        async with self._partition_slots:
            return await self._process_partition(records)

    async def _process_partition(
        self, records: list[ConsumerRecord[bytes, bytes]]
    ) -> tuple[int, BaseException | None]:
        """How many of the partition's records were dealt with (handled or dead-lettered), and the
        outage that stopped the rest, if one did."""
        if len(records) > 1:
            try:
                if await self._process_batch(records):
                    return len(records), None
            except _Outage as outage:
                return 0, outage.error
        for index, record in enumerate(records):
            try:
                await self._process(record)
            except _Outage as outage:
                return index, outage.error
        return len(records), None

    async def _settle(
        self,
        kafka: AIOKafkaConsumer,
        batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
        results: dict[TopicPartition, tuple[int, BaseException | None]],
    ) -> None:
        """Commit what was dealt with; hold each partition an outage stopped at the record it stopped on."""
        offsets = {}
        for tp, (done, outage) in results.items():
            records = batches[tp]
            if done:
                offsets[tp] = records[done - 1].offset + 1
            if outage is not None:
                self._hold(kafka, tp, records[done], outage)
            else:
                self._stalls.pop(tp, None)
        # A rebalance may have taken partitions away while their batch was handled: their next owner
        # starts from the last commit and the inbox skips what this batch did. Neither committing nor
        # reading the high watermark of a partition no longer assigned works (aiokafka refuses both; its
        # highwater() asserts, which cost the consumer a reconnect and the group another rebalance).
        assigned = kafka.assignment()
        offsets = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        # Committed together, at most every consumer_commit_interval_seconds: a commit is a broker round
        # trip, and redelivered events are in the inbox.
        self._uncommitted.update(offsets)
        self._report_lag(kafka, offsets)
        now = asyncio.get_running_loop().time()
        if now >= self._commit_due:
            self._commit_due = now + self.settings.consumer_commit_interval_seconds
            await self.commit_uncommitted(kafka)

    def _hold(
        self, kafka: AIOKafkaConsumer, tp: TopicPartition, record: ConsumerRecord[bytes, bytes], outage: BaseException
    ) -> None:
        """Pause ``tp`` and seek it back to ``record``, to be fetched again after a capped, jittered,
        exponential backoff."""
        now = asyncio.get_running_loop().time()
        previous = self._stalls.get(tp)
        same = previous is not None and previous.offset == record.offset
        attempts = previous.attempts + 1 if previous is not None and same else 1
        since = previous.since if previous is not None and same else now
        ceiling = min(self.settings.consumer_retry_backoff_seconds * 2 ** (attempts - 1),
                      self.settings.consumer_retry_max_backoff_seconds)
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        try:
            kafka.seek(tp, record.offset)
            kafka.pause(tp)
        except IllegalStateError:
            # Revoked meanwhile: its new owner starts from the committed offset, before this record.
            self._stalls.pop(tp, None)
            return
        self._stalls[tp] = PartitionStall(record.offset, since, attempts, now + delay, type(outage).__name__)
        service = self.settings.service_name
        self.metrics.consumer_retries.labels(service, record.topic, "infrastructure").inc()
        self.metrics.events_consumed.labels(service, record.topic, "retried").inc()
        log.warning("%s[%d] waits on an outage (%s: %s), attempt %d, %.0fs so far; retrying in %.2fs",
                    record.topic, record.partition, type(outage).__name__, outage, attempts, now - since, delay)

    def _resume_due(self, kafka: AIOKafkaConsumer) -> None:
        now = asyncio.get_running_loop().time()
        assigned = kafka.assignment()
        paused = kafka.paused()
        for tp, stall in list(self._stalls.items()):
            if tp not in assigned:
                del self._stalls[tp]
            elif stall.resume_at <= now and tp in paused:
                kafka.resume(tp)

    async def commit_uncommitted(
        self, kafka: AIOKafkaConsumer, partitions: Collection[TopicPartition] | None = None
    ) -> None:
        """Commit the offsets handled since the last commit (of ``partitions``, or all)."""
        offsets = {tp: offset for tp, offset in self._uncommitted.items() if partitions is None or tp in partitions}
        if not offsets:
            return
        for tp in offsets:
            del self._uncommitted[tp]
        try:
            await kafka.commit(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # The partitions moved to another member, which will redeliver; the inbox drops repeats.
            log.warning("offset commit failed for %s: %s", sorted(map(str, offsets)), exc)

    def _report_lag(self, kafka: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            highwater = kafka.highwater(tp)
            if highwater is not None:
                self.metrics.consumer_lag.labels(self.settings.service_name, tp.topic, str(tp.partition)).set(
                    max(highwater - offset, 0)
                )
                self._lag_reported.add(tp)

    def forget_lag(self, keep: Collection[TopicPartition] = ()) -> None:
        """Stop reporting the lag of the partitions this member no longer holds (all but ``keep``). A series
        left behind keeps its last figure for as long as the process lives: a partition taken away during a
        backlog went on showing that backlog (``max`` over the replicas' series) after its new owner had
        caught up, and kept ``LeadflowConsumerLagHigh`` firing."""
        for tp in self._lag_reported.difference(keep):
            self.metrics.consumer_lag.remove(self.settings.service_name, tp.topic, str(tp.partition))
        self._lag_reported.intersection_update(keep)

    def _subscription(self, topic: str, event: Event[EventData]) -> Subscription[D] | None:
        return self._subscriptions.get((topic, type(event.data)))

    async def _process(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """Handle one record, dead-letter it, or raise ``_Outage`` (the record stays where it is)."""
        service = self.settings.service_name
        if record.value is None:
            # A tombstone (an erased person's key): nothing to handle, nothing to dead-letter.
            self.metrics.events_consumed.labels(service, record.topic, "tombstone").inc()
            return
        try:
            event = decode(record.value, record.headers)
        except MalformedEvent as exc:
            await self._dead_letter(record, exc, attempts=0)
            return
        subscription = self._subscription(record.topic, event)
        if subscription is None:
            self.metrics.events_consumed.labels(service, record.topic, "ignored").inc()
            return
        if subscription in await self._unwanted([subscription]):
            self.metrics.events_consumed.labels(service, record.topic, "unwanted").inc()
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
                    if await is_outage(exc, self.db):
                        raise _Outage(exc) from exc
                    if attempt == attempts:
                        log.exception("giving up on %s after %d attempts", event.type, attempt)
                        await self._dead_letter(record, exc, attempts=attempt)
                        return
                    self.metrics.consumer_retries.labels(service, record.topic, "error").inc()
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
        record, with retries and dead letters, and the rollback leaves no trace. An outage raises
        ``_Outage``: going record by record would only fail again."""
        service = self.settings.service_name
        if any(record.value is None for record in records):
            return False  # record by record, which skips tombstones
        try:
            events = [decode(record.value, record.headers) for record in records]
        except MalformedEvent:
            return False
        started = time.perf_counter()
        records, events, unwanted = await self._drop_unwanted(records, events)
        if not events:
            self._count(unwanted, started, len(unwanted))
            return True
        prepared = await self._prepare(records, events)
        ids = [event.id for event in events]
        # Claimed last unless an event repeats within the batch (only a claim tells which copy is new).
        claim_first = len(set(ids)) < len(ids)
        while True:
            try:
                async with self.db.transaction() as session:
                    uow = UnitOfWork(session, self.outbox, self.clock, self.deps, prepared)
                    unclaimed = await claim_events(session, service, ids) if claim_first else set(ids)
                    runs, outcomes = self._runs(records, events, unclaimed)
                    for subscription, run in runs:
                        with log_context(lead_id=run[0].subject, correlation_id=run[0].correlation_id):
                            await subscription.handler(run, uow)
                    if not claim_first:
                        await self.outbox.claim_last(session, service, ids)
            except EventsAlreadyClaimed:
                claim_first = True  # a redelivery: again, skipping what was processed before
                continue
            except Exception as exc:
                if await is_outage(exc, self.db):
                    raise _Outage(exc) from exc
                topics = ", ".join(sorted({record.topic for record in records}))
                log.info("batch of %d events on %s failed (%s); handling them one by one", len(events), topics, exc)
                return False
            self._count([*unwanted, *outcomes], started, len(events) + len(unwanted))
            return True

    def _count(self, outcomes: list[tuple[str, str]], started: float, events: int) -> None:
        # Each series looked up once a batch, not once an event (a labels() call costs a lock and a
        # dict lookup): the same counts and the same observations, one per event.
        per_event = (time.perf_counter() - started) / events
        service = self.settings.service_name
        for (topic, outcome), count in Counter(outcomes).items():
            self.metrics.events_consumed.labels(service, topic, outcome).inc(count)
            handled = self.metrics.event_handle_duration.labels(service, topic)
            for _ in range(count):
                handled.observe(per_event)

    async def _drop_unwanted(
        self, records: list[ConsumerRecord[bytes, bytes]], events: list[Event[EventData]]
    ) -> tuple[list[ConsumerRecord[bytes, bytes]], list[Event[EventData]], list[tuple[str, str]]]:
        """The batch without the events of subscriptions whose ``wanted`` step answers False, and those
        events' outcomes (topic, "unwanted")."""
        subscriptions = [self._subscription(record.topic, event) for record, event in zip(records, events, strict=True)]
        unwanted = await self._unwanted([s for s in subscriptions if s is not None])
        if not unwanted:
            return records, events, []
        kept = [i for i, s in enumerate(subscriptions) if s not in unwanted]
        dropped = [(records[i].topic, "unwanted") for i, s in enumerate(subscriptions) if s in unwanted]
        return [records[i] for i in kept], [events[i] for i in kept], dropped

    async def _unwanted(self, subscriptions: list[Subscription[D]]) -> list[Subscription[D]]:
        """Those of ``subscriptions`` (each asked once) whose ``wanted`` step answers False."""
        unwanted: list[Subscription[D]] = []
        for subscription in dict.fromkeys(s for s in subscriptions if s.wanted is not None):
            assert subscription.wanted is not None
            try:
                if not await subscription.wanted(self.deps):
                    unwanted.append(subscription)
            except Exception as exc:
                log.info("asking whether %s events are wanted failed (%s: %s); handling them",
                         subscription.topic, type(exc).__name__, exc)
        return unwanted

    def _runs(
        self, records: list[ConsumerRecord[bytes, bytes]], events: list[Event[EventData]], unclaimed: set[str]
    ) -> tuple[list[tuple[Subscription[D], list[Event[Any]]]], list[tuple[str, str]]]:
        """A batch's new events cut into runs of one handler, in the order they arrived (a handler is given
        a run at once), and each record's outcome (topic, outcome) for the metrics. Events of subscriptions
        sharing a handler make one run: sla's one handler of eight topics, given a poll in write order,
        would otherwise write each lead's row and timeline once per change of topic, not once a batch."""
        runs: list[tuple[Subscription[D], list[Event[Any]]]] = []
        outcomes: list[tuple[str, str]] = []
        for record, event in zip(records, events, strict=True):
            subscription = self._subscription(record.topic, event)
            if event.id not in unclaimed:
                outcomes.append((record.topic, "duplicate"))
                continue
            unclaimed.discard(event.id)  # a repeat later in this batch is a duplicate
            if subscription is None:
                outcomes.append((record.topic, "ignored"))
                continue
            if runs and runs[-1][0].handler is subscription.handler:
                runs[-1][1].append(event)
            else:
                runs.append((subscription, [event]))
            outcomes.append((record.topic, "processed"))
        return runs, outcomes

    async def _prepare(
        self, records: list[ConsumerRecord[bytes, bytes]], events: list[Event[EventData]]
    ) -> Mapping[str, Any]:
        by_subscription: dict[tuple[str, type[EventData]], tuple[Prepare[D], list[Event[Any]]]] = {}
        for record, event in zip(records, events, strict=True):
            subscription = self._subscription(record.topic, event)
            if subscription is not None and subscription.prepare is not None:
                key = (record.topic, subscription.model)
                by_subscription.setdefault(key, (subscription.prepare, []))[1].append(event)
        prepared: dict[str, Any] = {}
        for (topic, _), (prepare, subscribed) in by_subscription.items():
            try:
                prepared.update(await prepare(subscribed, self.deps))
            except Exception:
                log.warning("preparing %d events of %s failed; their handlers run without it",
                            len(subscribed), topic, exc_info=True)
        return prepared

    async def _handle_once(
        self, subscription: Subscription[D], event: Event[EventData], prepared: Mapping[str, Any]
    ) -> str:
        """Handle the event in a transaction that claims it last; should that fail in any way, again in
        one that claims it first. A repeated event fails the first way (its claim, or the handler
        meeting what its first handling did: a ``PermanentError`` there must not dead-letter it) and is
        skipped the second; an event that fails the second way too fails as it always did."""
        service = self.settings.service_name
        try:
            async with self.db.transaction() as session:
                uow = UnitOfWork(session, self.outbox, self.clock, self.deps, prepared)
                await subscription.handler([event], uow)
                await self.outbox.claim_last(session, service, [event.id])
            return "processed"
        except Exception as exc:
            if not isinstance(exc, EventsAlreadyClaimed) and await is_outage(exc, self.db):
                raise
        async with self.db.transaction() as session:
            if not await claim_events(session, service, [event.id]):
                return "duplicate"
            await subscription.handler([event], UnitOfWork(session, self.outbox, self.clock, self.deps, prepared))
        return "processed"

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], error: Exception, attempts: int) -> None:
        await dead_letter(self.platform, DeadLetter(record.topic, record.partition, record.offset, record.key,
                                                    record.value, list(record.headers)), error, attempts)
        self.metrics.events_consumed.labels(self.settings.service_name, record.topic, "dead_lettered").inc()

    async def _sleep(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True
