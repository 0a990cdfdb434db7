"""Publish after commit: the process that wrote outbox rows sends them to Kafka right after its commit.

The writing transaction itself decides whether its rows may go straight out: the statement that inserts
them also asks, per row, whether an older row of its key and topic is still in the outbox (``INSERT_ROWS``),
leaving out this process's own rows that are committed and queued, being sent, or sent and not yet
deleted (``DirectPublisher.unsettled``): those go out, or went out, before it, in commit order. A row with
such an older row goes to the relay (``leadflow_kit.outbox``), the backstop, behind it.

One sender task per process sends the committed rows in commit order, from memory, with no statement
before the send. Acknowledged rows are deleted in bulk afterwards: by the next transaction of the process
that writes outbox rows, in its insert statement, or by the sender itself after ``DELETE_DELAY_SECONDS``.
The relay takes only rows older than ``BACKSTOP_AGE_SECONDS``, each by its own age: a process killed
between commit and send, Kafka down, or an older row of the same key still pending. A young row behind a
stale one stays for its writer, which may be sending it or have sent it and not yet deleted it. A row's
age counts from its insert, the last statement before its commit (not from its transaction's start: a
long transaction's rows would otherwise be the relay's at once, while their writer sends them too), and
the writer keeps well inside that age: a row still queued ``DIRECT_SEND_SECONDS`` after its commit (the
sender fell behind) is left to the relay with every row behind it, and rows handed to a writing
transaction to delete come back to the sender after ``DELETE_HANDOFF_SECONDS``.

A lead's events keep their order under every failure. A row whose send fails is left to the relay with
every row queued behind it, and so is every row of a transaction whose check ran before that failure
(it may have counted on a row now left, ``epoch``); a row checked afterwards sees the left rows and
waits behind them if they are of its key. Delivery is at least once: a row sent but not yet deleted when the
process dies, or while the database is unreachable for longer than the backstop age, is sent again by
the relay, and consumers skip it by its event id (their inbox).
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

# The relay leaves a row to its writer's direct sender while it is younger than this.
BACKSTOP_AGE_SECONDS = 2.0
# A row still queued this long after its commit is left to the relay, unsent: the sender fell behind, and
# a send from here on could meet the relay's at the backstop age.
DIRECT_SEND_SECONDS = 1.0
# After a failed send, rows go to the relay for at least this long before direct sending resumes.
PAUSE_AFTER_FAILURE_SECONDS = 1.0
# How long acknowledged rows wait for a writing transaction to delete them before the sender does.
DELETE_DELAY_SECONDS = 0.05
# Rows handed to a writing transaction to delete come back for deleting after this long unless it
# committed (a rolled-back transaction leaves them).
DELETE_HANDOFF_SECONDS = 0.5
CONNECT_TIMEOUT_SECONDS = 5.0
STATEMENT_TIMEOUT_MS = 5000

# A transaction's outbox rows in one statement (their age counted from now, not from the transaction's start:
# the relay's backstop age must not pass before their writer could send them), ids in the order the events
# were added, each with whether an older row of its key and topic is in the outbox other than this process's
# own unsettled rows ($6): then it waits for the relay. It also deletes rows this process sent and Kafka
# acknowledged ($7, a subset of $6; the statement's reads still see them). The check probes
# ix_outbox_topic_key once per row (a LATERAL with LIMIT keeps it a probe); ``id + 0`` and no ``published_at
# IS NULL``: as the outbox's statistics see few live rows, the planner otherwise rates a whole scan of an
# index the condition names as cheap as the probe (a row an old relay marked published, which its housekeeping
# deletes, only sends its key's later rows through the relay). A consumer's batch also claims its events in
# the inbox here, as consumer $8 ($9, none for other writers): ``claimed`` says how many were new, so a batch
# that handled an event already processed rolls back (``leadflow_kit.outbox.EventsAlreadyClaimed``).
INSERT_ROWS = """
WITH sent AS (DELETE FROM outbox WHERE id = ANY($7::bigint[])),
inbox AS (
    INSERT INTO processed_event (consumer, event_id) SELECT $8::text, unnest($9::text[])
    ON CONFLICT DO NOTHING RETURNING 1
),
new AS (
    INSERT INTO outbox (event_id, topic, key, headers, body, created_at)
    SELECT event_id, topic, key, headers::jsonb, body, clock_timestamp()
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY
        AS r(event_id, topic, key, headers, body, position)
    ORDER BY position
    RETURNING id, event_id, topic, key
)
SELECT n.id, n.event_id, older_row.id IS NOT NULL AS blocked, (SELECT count(*) FROM inbox) AS claimed
FROM new n
LEFT JOIN LATERAL (
    SELECT older.id FROM outbox older
    WHERE older.topic = n.topic AND older.key = n.key AND older.id + 0 < n.id AND older.id <> ALL($6::bigint[])
    LIMIT 1
) AS older_row ON true
"""
DELETE_SENT = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"


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
        # Committed rows to send, in commit order, each with the loop's time of its commit.
        self._pending: list[tuple[float, CommittedRow]] = []
        # This process's rows committed and queued, being sent, or sent and not yet deleted: a later
        # row of their key need not wait for them (see the module's docstring).
        self._unsettled: set[int] = set()
        self._acked: list[int] = []
        self._acked_since = 0.0
        # Rows handed to writing transactions to delete, by hand-off, with when they come back.
        self._deleting: dict[int, tuple[list[int], float]] = {}
        self._handoffs = 0
        # Counts the times this process's own rows were left to the relay unsent (a failure, a stop).
        self._epoch = 0
        self._wake = asyncio.Event()
        self._stopping = False
        self._running = False
        self._paused_until = 0.0
        self._conn: asyncpg.Connection | None = None

    @property
    def running(self) -> bool:
        return self._running

    def unsettled(self) -> tuple[int, list[int]]:
        """For a writing transaction's check: the rows of this process a later row need not wait for,
        and the epoch they hold for (``committed`` leaves the rows of a stale one)."""
        return self._epoch, list(self._unsettled) if self._running else []

    def take_sent(self) -> tuple[int, list[int]]:
        """Acknowledged rows for a writing transaction to delete in its insert; ``deleted(handoff)``
        when it commits. Until then nobody else is given them."""
        if not self._acked or not self._running:
            return 0, []
        self._handoffs += 1
        ids, self._acked = self._acked, []
        self._deleting[self._handoffs] = (ids, asyncio.get_running_loop().time() + DELETE_HANDOFF_SECONDS)
        return self._handoffs, ids

    def committed(self, rows: list[CommittedRow], blocked: set[int], epoch: int, handoff: int = 0) -> None:
        """Called as a transaction with outbox rows commits (in commit order): ``rows`` to send, but
        those in ``blocked``, which wait behind an older row of their key for the relay, and all of them
        if rows were left since their check (``epoch``); the rows of ``handoff`` (``take_sent``) are
        deleted."""
        if handoff:
            ids, _ = self._deleting.pop(handoff, ((), 0.0))
            self._unsettled.difference_update(ids)
        if epoch != self._epoch:
            self._leave(rows, "order")
            return
        if blocked:
            self._leave([row for row in rows if row.id in blocked], "order")
            rows = [row for row in rows if row.id not in blocked]
        if not rows:
            return
        # Left before they became this process's own: no other row's check counted on them.
        if not self._running or self._stopping:
            self._leave(rows, "stopped")
            return
        if self._paused_until and asyncio.get_running_loop().time() < self._paused_until:
            self._leave(rows, "paused")
            return
        self._unsettled.update(row.id for row in rows)
        now = asyncio.get_running_loop().time()
        self._pending.extend((now, row) for row in rows)
        self._wake.set()

    def stop(self) -> None:
        """Send what is already committed, delete what was sent, then end ``run``."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        self._running = True
        loop = asyncio.get_running_loop()
        try:
            while True:
                self._reclaim_handoffs(loop.time())
                if self._pending:
                    # Everything committed so far, in one wait for Kafka.
                    batch_size = self.settings.outbox_batch_size
                    batch, self._pending = self._pending[:batch_size], self._pending[batch_size:]
                    rows = [row for _, row in batch]
                    if batch[0][0] < loop.time() - DIRECT_SEND_SECONDS:
                        # Fallen behind: the relay sends these and those queued behind them, once.
                        log.warning("direct publish fell behind; %d outbox rows are left to the relay",
                                    len(rows) + len(self._pending))
                        self._fail(rows, "late", loop)
                        continue
                    await self._send_or_leave(rows)
                    continue
                if self._acked and (self._stopping or loop.time() >= self._acked_since + DELETE_DELAY_SECONDS):
                    await self._delete_sent()
                    continue
                if self._stopping:
                    return
                self._wake.clear()
                wait = self._acked_since + DELETE_DELAY_SECONDS - loop.time() if self._acked else None
                if self._deleting:
                    wait = min(wait if wait is not None else DELETE_HANDOFF_SECONDS, DELETE_HANDOFF_SECONDS)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
        finally:
            self._running = False
            self._leave_after_failure([row for _, row in self._pending], "stopped")
            self._pending = []
            self._unsettled.clear()
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    await self._conn.close(timeout=2)

    async def _send_or_leave(self, rows: list[CommittedRow]) -> None:
        loop = asyncio.get_running_loop()
        try:
            if self._paused_until:
                if loop.time() < self._paused_until:
                    self._leave_after_failure(rows, "paused")
                    return
                self._paused_until = 0.0
            await self._send(rows)
        except (KafkaError, TimeoutError) as exc:
            log.warning("direct publish failed; %d outbox rows are left to the relay: %s", len(rows), exc)
            self._fail(rows, "kafka", loop)
            await self.producers.reset()
        except Exception:
            log.exception("direct publish failed unexpectedly; %d outbox rows are left to the relay", len(rows))
            self._fail(rows, "error", loop)

    async def _send(self, rows: list[CommittedRow]) -> None:
        producer = await self.producers.get()
        ack_timeout = self.settings.kafka_request_timeout_ms / 1000 + 5
        async with asyncio.timeout(ack_timeout):
            deliveries = [await producer.send(row.topic, value=row.value, key=row.key, headers=row.headers)
                          for row in rows]
            await asyncio.gather(*deliveries)
        service = self.settings.service_name
        for row in rows:
            self.metrics.events_published.labels(service, row.topic).inc()
        if not self._acked:
            self._acked_since = asyncio.get_running_loop().time()
        self._acked.extend(row.id for row in rows)

    async def _delete_sent(self) -> None:
        ids, self._acked = self._acked, []
        try:
            conn = await self._connection()
            await conn.execute(DELETE_SENT, ids)
        except Exception as exc:
            # Tried again after the delay; should the relay send them meanwhile, consumers skip the repeat.
            log.warning("could not delete %d sent outbox rows (%s: %s); retrying", len(ids), type(exc).__name__, exc)
            self._acked = ids + self._acked
            self._acked_since = asyncio.get_running_loop().time() + PAUSE_AFTER_FAILURE_SECONDS
            await self._drop_connection()
            if self._stopping:
                self._acked = []
            return
        self._unsettled.difference_update(ids)

    def _reclaim_handoffs(self, now: float) -> None:
        for handoff, (ids, until) in list(self._deleting.items()):
            if now >= until:
                del self._deleting[handoff]
                if not self._acked:
                    self._acked_since = now
                self._acked.extend(ids)

    def _fail(self, rows: list[CommittedRow], reason: str, loop: asyncio.AbstractEventLoop) -> None:
        """A send failed: its rows, and every row queued behind them, go to the relay."""
        queued, self._pending = self._pending, []
        self._leave_after_failure(rows, reason)
        self._leave_after_failure([row for _, row in queued], "paused")
        self._pause(loop)

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                asyncpg_dsn(self.db.url),
                timeout=CONNECT_TIMEOUT_SECONDS,
                server_settings={
                    "application_name": f"{self.settings.service_name}-outbox-publisher",
                    "statement_timeout": str(STATEMENT_TIMEOUT_MS),
                    # A delete lost in a PostgreSQL crash only leaves its rows for the relay to send
                    # again (at least once, as ever), so it need not wait for its own fsync.
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

    def _leave_after_failure(self, rows: list[CommittedRow], reason: str) -> None:
        """Rows left to the relay out of this process's own failure (not the order): later rows of their
        keys must wait for them, so they stop being this process's own and direct sending waits."""
        if rows:
            self._unsettled.difference_update(row.id for row in rows)
            self._epoch += 1
            self._leave(rows, reason)

    def _leave(self, rows: list[CommittedRow], reason: str) -> None:
        if rows:
            self.metrics.outbox_left_to_relay.labels(self.settings.service_name, reason).inc(len(rows))
