"""Publish after commit: the process that wrote outbox rows sends them to Kafka right after its commit.

One sender task per process takes the committed rows in commit order, checks that none has an older
row of its key still pending that it did not send itself, and sends them from memory. The rows Kafka
acknowledged are deleted in bulk: everything sent within ``DELETE_WINDOW_SECONDS`` goes in one
statement, riding along with the next batch's check (or alone once the sender is idle). A row it
cannot send stays in the outbox for the relay, the backstop (``leadflow_kit.outbox``), which takes
the outbox's head once it is older than ``BACKSTOP_AGE_SECONDS``: a process killed between commit
and send, Kafka down, or an older row of the same key still pending. A sent row waits at most the
window for its delete, far below that age, so the relay sends it again only when the outbox's head
is already stale (a failure; consumers' inboxes drop the repeat).

A lead's events keep their order under every failure: a row is sent only when no older row of its
key and topic is pending outside what this sender has sent. A relay's claim deletes rows only once
Kafka acknowledged them, so until then a row it is sending is still visible to the check and blocks
its key's later rows, which then go to the relay behind it.
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
# Sent rows are deleted together once the oldest of them has waited this long (or there are a batch's
# worth): under load one delete serves many batches.
DELETE_WINDOW_SECONDS = 0.05
CONNECT_TIMEOUT_SECONDS = 5.0
STATEMENT_TIMEOUT_MS = 5000

# Which rows of a batch about to be sent have an older row of their key in the outbox that the sender
# did not send itself ($4: the batch and the sent rows not yet deleted): one left to the relay, another
# process's, or one a relay is sending. A lock-free read, one probe of ix_outbox_topic_key per row.
# Through the id index the check walked every row, and every deleted row not yet vacuumed, below each
# id (3 ms a batch under load); and as the outbox's statistics see few live rows, the planner takes a
# whole scan of a partial index whose condition the query implies (ix_outbox_unpublished) for as cheap
# as a probe: so no ``published_at IS NULL`` here (a row an old relay marked published, which its
# housekeeping deletes, only sends its key's later rows through the relay) and ``id + 0``.
_BLOCKED_ROWS = """
SELECT m.id FROM unnest($1::bigint[], $2::text[], $3::text[]) AS m(id, topic, key)
CROSS JOIN LATERAL (
    SELECT 1 FROM outbox older
    WHERE older.topic = m.topic AND older.key = m.key AND older.id + 0 < m.id AND older.id <> ALL($4::bigint[])
    LIMIT 1
) AS blocking
"""
BLOCKED_ROWS = _BLOCKED_ROWS.strip()
# Deletes the rows Kafka acknowledged; rows a relay has locked (it claimed them too, while the head
# was stale) are the relay's to delete.
_DELETE_MINE = """
mine AS (SELECT id FROM outbox WHERE id = ANY($ids::bigint[]) FOR UPDATE SKIP LOCKED),
sent AS (DELETE FROM outbox WHERE id = ANY(ARRAY(SELECT id FROM mine)))
"""
DELETE_SENT = f"WITH {_DELETE_MINE.replace('$ids', '$1').strip()}\nSELECT count(*) FROM mine"
# The check with the delete of the rows sent in the window riding along (one round trip for both).
BLOCKED_ROWS_DELETING_SENT = f"WITH {_DELETE_MINE.replace('$ids', '$5').strip()}{_BLOCKED_ROWS}".strip()
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
        self,
        settings: ServiceSettings,
        db: Database,
        producers: ProducerHolder,
        metrics: ServiceMetrics,
        delete_window_seconds: float = DELETE_WINDOW_SECONDS,
    ) -> None:
        self.settings = settings
        self.delete_window_seconds = delete_window_seconds
        self.db = db
        self.producers = producers
        self.metrics = metrics
        self._pending: list[CommittedRow] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._running = False
        self._paused_until = 0.0
        self._conn: asyncpg.Connection | None = None
        # Rows Kafka acknowledged, still in the outbox until the next bulk delete, and since when.
        self._sent: list[int] = []
        self._sent_since = 0.0

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
                    await self._wait_for_rows()
                    continue
                # Everything committed so far, in one check and one wait for Kafka.
                batch_size = self.settings.outbox_batch_size
                rows, self._pending = self._pending[:batch_size], self._pending[batch_size:]
                await self._send_or_leave(rows)
        finally:
            self._running = False
            self._leave(self._pending, "stopped")
            self._pending = []
            if self._conn is not None and not self._conn.is_closed():
                # Not on a new connection: a database that is down would hold the shutdown up.
                await self._delete_sent()
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    await self._conn.close(timeout=2)

    async def _wait_for_rows(self) -> None:
        """Until rows are committed; meanwhile, once the window is up, delete what was sent."""
        self._wake.clear()
        if not self._sent:
            await self._wake.wait()
            return
        remaining = self._sent_since + self.delete_window_seconds - asyncio.get_running_loop().time()
        try:
            await asyncio.wait_for(self._wake.wait(), max(remaining, 0.0))
        except TimeoutError:
            await self._delete_sent()

    async def _delete_sent(self) -> None:
        if not self._sent:
            return
        try:
            conn = await self._connection()
            await conn.fetchval(DELETE_SENT, self._sent)
        except Exception as exc:
            # Tried again a while later; should the process die first, the relay sends them again.
            log.warning("could not delete %d sent outbox rows (%s: %s)", len(self._sent), type(exc).__name__, exc)
            self._sent_since = asyncio.get_running_loop().time() + PAUSE_AFTER_FAILURE_SECONDS
            await self._drop_connection()
            return
        self._sent = []

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
            log.warning("direct publish could not check its rows (%s: %s); they are left to the relay",
                        type(exc).__name__, exc)
            self._leave(rows, "database")
            self._pause(loop)
            await self._drop_connection()

    async def _send(self, rows: list[CommittedRow]) -> None:
        conn = await self._connection()
        producer = await self.producers.get()
        ack_timeout = self.settings.kafka_request_timeout_ms / 1000 + 5
        rows = sorted(rows, key=lambda row: row.id)
        ids = [row.id for row in rows]
        checking = (ids, [row.topic for row in rows], [row.key.decode() for row in rows], [*self._sent, *ids])
        if self._delete_due():
            blocked = {record["id"] for record in await conn.fetch(BLOCKED_ROWS_DELETING_SENT, *checking, self._sent)}
            self._sent = []
        else:
            blocked = {record["id"] for record in await conn.fetch(BLOCKED_ROWS, *checking)}
        sending = [row for row in rows if row.id not in blocked]
        async with asyncio.timeout(ack_timeout):
            deliveries = [
                await producer.send(row.topic, value=row.value, key=row.key, headers=row.headers)
                for row in sending
            ]
            await asyncio.gather(*deliveries)
        if sending and not self._sent:
            self._sent_since = asyncio.get_running_loop().time()
        self._sent.extend(row.id for row in sending)
        service = self.settings.service_name
        for row in sending:
            self.metrics.events_published.labels(service, row.topic).inc()
        if blocked:
            self._leave([row for row in rows if row.id in blocked], "order")

    def _delete_due(self) -> bool:
        if not self._sent:
            return False
        waited = asyncio.get_running_loop().time() - self._sent_since
        return waited >= self.delete_window_seconds or len(self._sent) >= self.settings.outbox_batch_size

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
