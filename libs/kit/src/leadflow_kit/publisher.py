"""Publish after commit: the process that wrote outbox rows sends them to Kafka right after its commit.

One sender task per process takes the committed rows in commit order, claims them (deletes them in
a transaction held open until Kafka acknowledges them, as the relay does) and sends them from
memory. A row it cannot claim, or cannot send, stays in the outbox for the relay, the backstop
(``leadflow_kit.outbox``), which takes the outbox's head once it is older than
``BACKSTOP_AGE_SECONDS``: a process killed between commit and send, Kafka down, or an older row
of the same key still pending.

A lead's events keep their order under every failure: a row is claimed only when no older row of
its key and topic is still in the outbox outside the rows this very statement locks. An older row
that another claimer is sending is deleted only once Kafka acknowledged it, so until then it is
still visible and blocks its key's later rows, which then go to the relay behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import asyncpg
from aiokafka.errors import KafkaError

from leadflow_kit.db import Database, asyncpg_dsn
from leadflow_kit.kafka import ProducerHolder
from leadflow_kit.metrics import ServiceMetrics
from leadflow_kit.settings import ServiceSettings

log = logging.getLogger(__name__)

# The relay leaves the outbox to the direct senders while its oldest row is younger than this.
BACKSTOP_AGE_SECONDS = 2.0
# After a failed send, rows go to the relay for at least this long before direct sending resumes.
PAUSE_AFTER_FAILURE_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 5.0
STATEMENT_TIMEOUT_MS = 5000

# Locks the rows still there (a relay may hold or have taken some), then deletes those with no older
# row of their key outside the locked set; rows it leaves stay locked, and so unclaimed by anyone
# else, only until this transaction ends. The check probes ix_outbox_topic_key once per row (a LATERAL
# with LIMIT keeps it a probe) and the delete takes its rows by id: joined to the outbox, the check
# walked every row, and every deleted row not yet vacuumed, below each id (3 ms a batch under load).
# ``id + 0`` and no ``published_at IS NULL``: as the outbox's statistics see few live rows, the planner
# otherwise rates a whole scan of an index the condition names as cheap as the probe (a row an old
# relay marked published, which its housekeeping deletes, only sends its key's later rows through the
# relay). $2 and $3 are the rows' topics and keys, as the sender has them.
CLAIM_OWN_ROWS = """
WITH mine AS (SELECT id FROM outbox WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE SKIP LOCKED),
blocked AS (
    SELECT m.id FROM unnest($1::bigint[], $2::text[], $3::text[]) AS m(id, topic, key)
    CROSS JOIN LATERAL (
        SELECT 1 FROM outbox older
        WHERE older.topic = m.topic AND older.key = m.key AND older.id + 0 < m.id
        AND older.id <> ALL(ARRAY(SELECT id FROM mine))
        LIMIT 1
    ) AS older_row
)
DELETE FROM outbox WHERE id = ANY(ARRAY(SELECT id FROM mine EXCEPT SELECT id FROM blocked))
RETURNING id
"""
# Whether the relay is draining a backlog (its head is old): direct sending waits until it is done,
# so that fresh rows do not each look past a long backlog for older rows of their key.
HEAD_IS_STALE = """
SELECT created_at < now() - make_interval(secs => $1) FROM outbox
WHERE published_at IS NULL ORDER BY id LIMIT 1
"""


@dataclass(frozen=True)
class CommittedRow:
    """An outbox row as its writer committed it, with what Kafka needs to send it."""

    id: int
    topic: str
    key: bytes
    headers: list[tuple[str, bytes]]
    value: bytes | None  # None: a tombstone


class DirectPublisher:
    """Sends a process's committed outbox rows to Kafka, in commit order, from one task."""

    def __init__(
        self, settings: ServiceSettings, db: Database, producers: ProducerHolder, metrics: ServiceMetrics
    ) -> None:
        self.settings = settings
        self.db = db
        self.producers = producers
        self.metrics = metrics
        self._pending: list[CommittedRow] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._running = False
        self._paused_until = 0.0
        self._conn: asyncpg.Connection | None = None

    @property
    def running(self) -> bool:
        return self._running

    def committed(self, rows: list[CommittedRow]) -> None:
        """Called as a transaction with outbox rows commits (in commit order)."""
        if not self._running or self._stopping:
            self._leave(rows, "stopped")
            return
        if self._paused_until and asyncio.get_running_loop().time() < self._paused_until:
            self._leave(rows, "paused")
            return
        self._pending.extend(rows)
        self._wake.set()

    def stop(self) -> None:
        """Send what is already committed, then end ``run``."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        self._running = True
        try:
            while True:
                if not self._pending:
                    if self._stopping:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                # Everything committed so far, in one claim and one wait for Kafka.
                batch_size = self.settings.outbox_batch_size
                rows, self._pending = self._pending[:batch_size], self._pending[batch_size:]
                await self._send_or_leave(rows)
        finally:
            self._running = False
            self._leave(self._pending, "stopped")
            self._pending = []
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    await self._conn.close(timeout=2)

    async def _send_or_leave(self, rows: list[CommittedRow]) -> None:
        loop = asyncio.get_running_loop()
        try:
            if self._paused_until:
                if loop.time() < self._paused_until or await self._relay_is_draining():
                    self._pause(loop)
                    self._leave(rows, "paused")
                    return
                self._paused_until = 0.0
            await self._send(rows)
        except (KafkaError, TimeoutError) as exc:
            log.warning("direct publish failed; %d outbox rows are left to the relay: %s", len(rows), exc)
            self._leave(rows, "kafka")
            self._pause(loop)
            await self.producers.reset()
        except Exception as exc:
            # The database (a restart, a dropped connection): the rows stay for the relay.
            log.warning("direct publish could not claim its rows (%s: %s); they are left to the relay",
                        type(exc).__name__, exc)
            self._leave(rows, "database")
            self._pause(loop)
            await self._drop_connection()

    async def _send(self, rows: list[CommittedRow]) -> None:
        conn = await self._connection()
        producer = await self.producers.get()
        ack_timeout = self.settings.kafka_request_timeout_ms / 1000 + 5
        rows = sorted(rows, key=lambda row: row.id)
        async with conn.transaction():
            claiming = ([row.id for row in rows], [row.topic for row in rows], [row.key.decode() for row in rows])
            claimed = {record["id"] for record in await conn.fetch(CLAIM_OWN_ROWS, *claiming)}
            sending = [row for row in rows if row.id in claimed]
            async with asyncio.timeout(ack_timeout):
                deliveries = [
                    await producer.send(row.topic, value=row.value, key=row.key, headers=row.headers)
                    for row in sending
                ]
                await asyncio.gather(*deliveries)
        service = self.settings.service_name
        for row in sending:
            self.metrics.events_published.labels(service, row.topic).inc()
        if len(sending) < len(rows):
            self._leave([row for row in rows if row.id not in claimed], "order")

    async def _relay_is_draining(self) -> bool:
        conn = await self._connection()
        stale: bool | None = await conn.fetchval(HEAD_IS_STALE, BACKSTOP_AGE_SECONDS)
        return bool(stale)

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                asyncpg_dsn(self.db.url),
                timeout=CONNECT_TIMEOUT_SECONDS,
                server_settings={
                    "application_name": f"{self.settings.service_name}-outbox-publisher",
                    "statement_timeout": str(STATEMENT_TIMEOUT_MS),
                    # A claim's commit lost in a PostgreSQL crash only leaves its rows for the relay to
                    # send again (at least once, as ever), so it need not wait for its own fsync.
                    "synchronous_commit": "off",
                },
            )
        return self._conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close(timeout=2)
            except Exception:
                conn.terminate()

    def _pause(self, loop: asyncio.AbstractEventLoop) -> None:
        self._paused_until = loop.time() + PAUSE_AFTER_FAILURE_SECONDS

    def _leave(self, rows: list[CommittedRow], reason: str) -> None:
        if rows:
            self.metrics.outbox_left_to_relay.labels(self.settings.service_name, reason).inc(len(rows))
