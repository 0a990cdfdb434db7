"""Transactional outbox: events are written with the state change, then relayed to Kafka.

Only one relay per service database publishes at a time (a PostgreSQL advisory lock), so a
lead's events leave in the order they were written even with several replicas running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from typing import Any

import asyncpg
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import Event, EventData, encode_body, encode_headers
from leadflow_kit.clock import Clock, SystemClock
from leadflow_kit.db import OUTBOX_CHANNEL, Database, asyncpg_dsn, deferred_rows, driver_connection, new_metadata
from leadflow_kit.kafka import ProducerHolder
from leadflow_kit.metrics import ServiceMetrics
from leadflow_kit.settings import ServiceSettings

log = logging.getLogger(__name__)

_platform = new_metadata()
outbox_table = _platform.tables["outbox"]
processed_event_table = _platform.tables["processed_event"]

RELAY_LOCK_KEY = 0x1EADF10  # one advisory-lock key per database; every service has its own database


_INSERT_ROW = "INSERT INTO outbox (event_id, topic, key, headers, body) VALUES ($1, $2, $3, $4::jsonb, $5)"


class Outbox:
    """Writes events into the outbox inside the caller's transaction.

    The rows are gathered and written in one round trip just before ``Database.transaction``
    commits: a consumer's batch (routing's whole poll) writes its events together, and routing's
    transactions, serialized on its lock, wait on one statement per lead less.
    """

    def __init__(self, topic_prefix: str = "") -> None:
        self.topic_prefix = topic_prefix

    async def add(self, session: AsyncSession, event: Event[Any]) -> None:
        typed: Event[EventData] = event
        deferred_rows(session, "outbox", _write_rows).append((
            typed.id,
            f"{self.topic_prefix}{typed.topic}",
            typed.subject,
            json.dumps([[name, value.decode()] for name, value in encode_headers(typed)]),
            encode_body(typed).decode(),
        ))


async def _write_rows(session: AsyncSession, rows: list[Any]) -> None:
    conn = await driver_connection(session)
    if len(rows) == 1:
        # A lone row (capture's post, a quiet consumer): executemany's pipelining only pays for several.
        await conn.execute(_INSERT_ROW, *rows[0])
    else:
        # executemany pipelines the inserts: one round trip, ids in the order the events were added.
        await conn.executemany(_INSERT_ROW, rows)


class OutboxRelay:
    def __init__(
        self,
        settings: ServiceSettings,
        db: Database,
        producers: ProducerHolder,
        metrics: ServiceMetrics,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.producers = producers
        self.metrics = metrics
        self.clock = clock or SystemClock()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._lead_while_holding_lock()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("outbox relay lost its database connection; retrying", exc_info=True)
                await self._sleep(1.0)

    async def _lead_while_holding_lock(self) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(asyncpg_dsn(self.db.url))
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_KEY):
                # Another replica relays this database; stand by in case it dies.
                await self._refresh_backlog_metrics()
                if await self._sleep(2.0):
                    return
            await conn.add_listener(OUTBOX_CHANNEL, lambda *_: self._wake.set())
            log.info("outbox relay is leading")
            housekeeping_due = backlog_due = 0.0
            loop = asyncio.get_running_loop()
            while not self._stopping.is_set():
                # Cleared before the round, not after it: a NOTIFY for a row its DELETE did not see
                # then wakes the next round at once, and no empty round is needed to look for one.
                self._wake.clear()
                await self._publish_pending(conn)
                # The backlog gauge is refreshed on a timer, not per publish: a COUNT(*) per lead is
                # a visible share of the hot path's CPU.
                if loop.time() >= backlog_due:
                    await self._refresh_backlog_metrics()
                    backlog_due = loop.time() + 5
                if loop.time() >= housekeeping_due:
                    await self._housekeeping()
                    housekeeping_due = loop.time() + 30
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.outbox_poll_interval_seconds)
                if conn.is_closed():
                    raise ConnectionError("listener connection closed")
        finally:
            await conn.close()

    async def _publish_pending(self, conn: asyncpg.Connection) -> None:
        """Publish everything pending, retrying with backoff while Kafka refuses."""
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                sent = await self.publish_batch(conn)
            except Exception as exc:
                if conn.is_closed():
                    raise  # the leader's own connection: lead again on a new one
                log.warning("outbox publish failed; rows stay pending: %s", exc)
                await self._record_failure(str(exc))
                await self.producers.reset()
                if await self._sleep(backoff + random.uniform(0, backoff)):
                    break
                backoff = min(backoff * 2, 5.0)
                continue
            if sent < self.settings.outbox_batch_size:
                break

    async def publish_batch(self, conn: asyncpg.Connection) -> int:
        """Publish the oldest pending rows on the leader's connection; returns how many went out.

        The rows are deleted as they are claimed, in one statement: nothing reads a published row,
        and an update that a later cleanup deletes cost the database twice the writes. The delete
        stays invisible until the Kafka acks below, and is rolled back with the transaction if
        they fail, so a row leaves the outbox only once Kafka has it.
        """
        async with conn.transaction():
            claimed = await conn.fetch(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE published_at IS NULL "
                "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING id, topic, key, headers, body",
                self.settings.outbox_batch_size,
            )
            if not claimed:
                return 0
            # RETURNING promises no order, and a lead's events must leave in the order they were written.
            rows = sorted(claimed, key=lambda row: row["id"])
            producer = await self.producers.get()
            deliveries = []
            for row in rows:
                headers = [(name, value.encode()) for name, value in json.loads(row["headers"])]
                deliveries.append(
                    await producer.send(row["topic"], value=row["body"].encode(), key=row["key"].encode(),
                                        headers=headers)
                )
            # The idempotent producer never expires a batch by itself, so bound the wait here.
            await asyncio.wait_for(
                asyncio.gather(*deliveries), timeout=self.settings.kafka_request_timeout_ms / 1000 + 5
            )
        for row in rows:
            self.metrics.events_published.labels(self.settings.service_name, row["topic"]).inc()
        return len(rows)

    async def _record_failure(self, error: str) -> None:
        try:
            async with self.db.transaction() as session:
                oldest = (
                    select(outbox_table.c.id)
                    .where(outbox_table.c.published_at.is_(None))
                    .order_by(outbox_table.c.id)
                    .limit(1)
                    .scalar_subquery()
                )
                await session.execute(
                    update(outbox_table)
                    .where(outbox_table.c.id == oldest)
                    .values(attempts=outbox_table.c.attempts + 1, last_error=error[:2000])
                )
        except Exception:
            log.debug("could not record the outbox failure", exc_info=True)
        await self._refresh_backlog_metrics()

    async def _refresh_backlog_metrics(self) -> None:
        try:
            async with self.db.transaction() as session:
                count, oldest = (
                    await session.execute(
                        select(func.count(), func.min(outbox_table.c.created_at)).where(
                            outbox_table.c.published_at.is_(None)
                        )
                    )
                ).one()
        except Exception:
            log.debug("could not read the outbox backlog", exc_info=True)
            return
        service = self.settings.service_name
        self.metrics.outbox_backlog.labels(service).set(count)
        age = (self.clock.now() - oldest).total_seconds() if oldest is not None else 0.0
        self.metrics.outbox_oldest_age.labels(service).set(max(age, 0.0))

    async def _housekeeping(self) -> None:
        async with self.db.transaction() as session:
            # The relay deletes what it publishes; rows an older relay marked published go here. The
            # inbox has its own retention (leadflow_kit.retention).
            await session.execute(delete(outbox_table).where(outbox_table.c.published_at.is_not(None)))
        await self._refresh_backlog_metrics()

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopping; True when the relay is stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True
