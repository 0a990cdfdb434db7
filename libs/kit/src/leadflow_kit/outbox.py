"""Transactional outbox: events are written with the state change, then sent to Kafka.

The process that committed them sends them right after the commit (``leadflow_kit.publisher``);
the relay is the backstop for what it could not send (a crash between commit and send, Kafka
down): it takes the outbox's head once that is older than ``BACKSTOP_AGE_SECONDS``. Only one relay
per service database publishes at a time (a PostgreSQL advisory lock), and no claimer, relay or
direct, takes a row while an older row of its key is still in the outbox, so a lead's events leave
in the order they were written even with several replicas running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import Event, EventData, encode_body, encode_headers
from leadflow_kit.clock import Clock, SystemClock
from leadflow_kit.db import (
    PIPELINE_PLANNING,
    Database,
    after_commit,
    asyncpg_dsn,
    deferred_rows,
    driver_connection,
    new_metadata,
    pending_rows,
)
from leadflow_kit.failures import is_infrastructure_error
from leadflow_kit.kafka import ProducerHolder
from leadflow_kit.metrics import ServiceMetrics
from leadflow_kit.publisher import BACKSTOP_AGE_SECONDS, INSERT_ROWS, CommittedRow, DirectPublisher
from leadflow_kit.settings import ServiceSettings

log = logging.getLogger(__name__)

_platform = new_metadata()
outbox_table = _platform.tables["outbox"]
processed_event_table = _platform.tables["processed_event"]

RELAY_LOCK_KEY = 0x1EADF10  # one advisory-lock key per database; every service has its own database

# PostgreSQL ends a relay session that has been silent this long (idle_session_timeout,
# idle_in_transaction_session_timeout) or whose statement runs this long (statement_timeout), and
# with it the session's lock: a frozen leader loses leadership within this, a standby takes over
# within STANDBY_RETRY_SECONDS more.
LEADER_SILENCE_SECONDS = 5
# A live leader is never that silent: each of its waits runs a statement this often.
LEADER_HEARTBEAT_SECONDS = 1.5
STANDBY_RETRY_SECONDS = 1.0
LEADER_CONNECT_TIMEOUT_SECONDS = 10.0
HOUSEKEEPING_TIMEOUT_SECONDS = 60.0
# A vanished client host (no FIN, no RST) is noticed by both ends after about idle + interval x count.
TCP_KEEPALIVE_IDLE_SECONDS = 5
TCP_KEEPALIVE_INTERVAL_SECONDS = 2
TCP_KEEPALIVE_COUNT = 3

T = TypeVar("T")


def relay_session_settings(service: str) -> dict[str, str]:
    """Per-session GUCs of a relay connection (any role may set them)."""
    silence_ms = str(LEADER_SILENCE_SECONDS * 1000)
    return {
        # The claim (_CLAIM_HEAD) must probe by index whatever the outbox's statistics say, as the pipeline's
        # statements do; unlike theirs, its plan is made afresh at each run (about once a second), from the
        # outbox's size then. A plan PostgreSQL kept after five runs over the usual empty outbox read the
        # whole outbox once per row claimed when a backlog came (1.7 s a claim in a quick bench at 400 leads/s).
        **PIPELINE_PLANNING,
        "plan_cache_mode": "force_custom_plan",
        "application_name": f"{service}-outbox-relay",
        "statement_timeout": silence_ms,
        "idle_in_transaction_session_timeout": silence_ms,
        "idle_session_timeout": silence_ms,
        "tcp_keepalives_idle": str(TCP_KEEPALIVE_IDLE_SECONDS),
        "tcp_keepalives_interval": str(TCP_KEEPALIVE_INTERVAL_SECONDS),
        "tcp_keepalives_count": str(TCP_KEEPALIVE_COUNT),
        # Data the server sent and nobody acknowledged: the session ends after this, too.
        "tcp_user_timeout": str((TCP_KEEPALIVE_IDLE_SECONDS + TCP_KEEPALIVE_INTERVAL_SECONDS * TCP_KEEPALIVE_COUNT)
                                * 1000),
    }


def keep_socket_alive(conn: asyncpg.Connection) -> None:
    """The client's side of the keepalives: asyncpg opens its socket without them."""
    transport = getattr(conn, "_transport", None)  # asyncpg has no public way to its socket
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    options = (("TCP_KEEPIDLE", TCP_KEEPALIVE_IDLE_SECONDS), ("TCP_KEEPINTVL", TCP_KEEPALIVE_INTERVAL_SECONDS),
               ("TCP_KEEPCNT", TCP_KEEPALIVE_COUNT))
    for option, value in options:
        if hasattr(socket, option):  # Linux names; other systems keep their defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


async def _close(conn: asyncpg.Connection) -> None:
    """Close politely if the server answers soon, else just drop the socket (a half-open connection
    would otherwise hold the close, and the lock, for good)."""
    try:
        await conn.close(timeout=2)
    except Exception:
        conn.terminate()


_INSERT_ROW = (
    "INSERT INTO outbox (event_id, topic, key, headers, body) VALUES ($1, $2, $3, $4::jsonb, $5) RETURNING id"
)
# One statement for a batch's rows, ids assigned in the order the events were added.
_INSERT_ROWS = (
    "INSERT INTO outbox (event_id, topic, key, headers, body) "
    "SELECT event_id, topic, key, headers::jsonb, body "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY "
    "AS r(event_id, topic, key, headers, body, position) ORDER BY position RETURNING id, event_id"
)


# A consumer's inbox claim that the transaction's outbox statement makes: (consumer, event ids).
_INBOX_CLAIM_KEY = "leadflow.inbox_claim"
_CLAIM_EVENTS = (
    "INSERT INTO processed_event (consumer, event_id) SELECT $1, unnest($2::text[]) "
    "ON CONFLICT DO NOTHING RETURNING event_id"
)


class EventsAlreadyClaimed(Exception):
    """A batch claimed its events in the inbox after handling them, and some were processed before (a
    redelivery): its transaction rolls back, and the consumer handles the batch again, claiming first."""


async def claim_events(session: AsyncSession, consumer: str, event_ids: list[str]) -> set[str]:
    """Record a batch's events as processed by ``consumer`` in one statement; returns the ids not
    processed before (an id repeated within the batch is returned once)."""
    conn = await driver_connection(session)
    return {row["event_id"] for row in await conn.fetch(_CLAIM_EVENTS, consumer, event_ids)}


@dataclass(frozen=True)
class _Row:
    event_id: str
    topic: str
    key: str
    headers: list[tuple[str, bytes]]
    body: bytes  # as Kafka gets it (empty for a tombstone); the outbox stores its text

    def insert_parameters(self) -> tuple[str, str, str, str, str]:
        headers = orjson.dumps([[name, value.decode()] for name, value in self.headers]).decode()
        return self.event_id, self.topic, self.key, headers, self.body.decode()

    def committed(self, row_id: int) -> CommittedRow:
        return CommittedRow(row_id, self.topic, self.key.encode(), self.headers, self.body or None)


class Outbox:
    """Writes events into the outbox inside the caller's transaction.

    The rows are gathered and written in one statement just before ``Database.transaction``
    commits: a consumer's batch writes its events together. With a ``DirectPublisher`` attached
    (a running service), the committed rows are handed to it to be sent at once; the relay
    publishes whatever it leaves.
    """

    def __init__(self, topic_prefix: str = "") -> None:
        self.topic_prefix = topic_prefix
        self.publisher: DirectPublisher | None = None

    async def add(self, session: AsyncSession, event: Event[Any]) -> None:
        typed: Event[EventData] = event
        deferred_rows(session, "outbox", self._write_rows).append(_Row(
            typed.id, f"{self.topic_prefix}{typed.topic}", typed.subject, encode_headers(typed), encode_body(typed),
        ))

    def add_tombstone(self, session: AsyncSession, topic: str, key: str) -> None:
        """A record with ``key`` and no value on ``topic``: compaction then drops every earlier record
        of the key, and a consumer skips it. Stored as a row with an empty body (an event never has
        one), published in order with the events written around it."""
        deferred_rows(session, "outbox", self._write_rows).append(
            _Row(f"tombstone-{uuid.uuid4().hex}", f"{self.topic_prefix}{topic}", key, [], TOMBSTONE_BODY.encode())
        )

    async def claim_last(self, session: AsyncSession, consumer: str, event_ids: list[str]) -> None:
        """Claim a handled batch's events (all distinct) in ``consumer``'s inbox as the transaction's last
        write: in the statement that writes its outbox rows when it has some, else in one of its own now.
        Raises ``EventsAlreadyClaimed`` (the transaction must roll back) when any was processed before.

        A consumer claims last to save a round trip a batch; claiming first, it would skip a repeated
        event without handling it, while here a repeat (rare: a redelivery) costs a rolled-back try."""
        if pending_rows(session, "outbox"):
            session.info[_INBOX_CLAIM_KEY] = (consumer, event_ids)
            return
        await self._claim(session, consumer, event_ids)

    @staticmethod
    async def _claim(session: AsyncSession, consumer: str, event_ids: list[str]) -> None:
        claimed = await claim_events(session, consumer, event_ids)
        if len(claimed) < len(event_ids):
            raise EventsAlreadyClaimed(f"{len(event_ids) - len(claimed)} of {len(event_ids)} events processed before")

    async def _write_rows(self, session: AsyncSession, rows: list[_Row]) -> None:
        conn = await driver_connection(session)
        consumer, claiming = session.info.pop(_INBOX_CLAIM_KEY, ("", []))
        publisher = self.publisher
        if publisher is None or not publisher.running:
            # Nobody sends them after the commit: the relay does.
            if len(rows) == 1:
                await conn.fetchval(_INSERT_ROW, *rows[0].insert_parameters())
            else:
                await conn.fetch(_INSERT_ROWS, *zip(*(row.insert_parameters() for row in rows), strict=True))
            if claiming:
                await self._claim(session, consumer, claiming)
            return
        handoff, sent = publisher.take_sent()
        epoch, unsettled = publisher.unsettled()
        columns = list(zip(*(row.insert_parameters() for row in rows), strict=True))
        records = await conn.fetch(INSERT_ROWS, *columns, unsettled, sent, consumer, claiming)
        if records[0]["claimed"] < len(claiming):
            raise EventsAlreadyClaimed(f"{len(claiming) - records[0]['claimed']} of {len(claiming)} events "
                                       "processed before")
        ids = {record["event_id"]: record["id"] for record in records}
        blocked = {record["id"] for record in records if record["blocked"]}
        committed = [row.committed(ids[row.event_id]) for row in rows]
        after_commit(session, lambda: publisher.committed(committed, blocked, epoch, handoff))


# An outbox row with this body is a tombstone: the relay publishes it with no value.
TOMBSTONE_BODY = ""


# The outbox's stale rows (a direct send failed or never happened, or the row waits behind an older
# one of its key), in id order: only rows older than the backstop age, each by its own age, never a young
# row behind a stale one, which its writer may be sending or have sent and not yet deleted. Rows of a key
# with an older row outside the claim (one a direct publisher is sending, or a young one) wait.
# The older row is looked for as INSERT_ROWS looks for it (leadflow_kit.publisher): a probe of
# ix_outbox_topic_key per row claimed (OFFSET 0 keeps the NOT EXISTS from becoming an anti-join planned as
# a scan), ``id + 0`` and no ``published_at IS NULL``, so that no whole scan of an index the condition names
# competes with the probe (a row an old relay marked published holds its key's rows until housekeeping
# deletes it).
_CLAIM_HEAD = """
WITH head AS (
    SELECT id FROM outbox WHERE published_at IS NULL AND created_at < now() - make_interval(secs => $2)
    ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
)
DELETE FROM outbox o USING head WHERE o.id = head.id
AND NOT EXISTS (
    SELECT 1 FROM outbox older
    WHERE older.topic = o.topic AND older.key = o.key AND older.id + 0 < o.id
    AND older.id NOT IN (SELECT id FROM head)
    OFFSET 0
)
RETURNING o.id, o.topic, o.key, o.headers, o.body
"""


async def _send_rows(producer: AIOKafkaProducer, rows: list[asyncpg.Record]) -> None:
    """Send claimed outbox rows in the order given and wait for Kafka's acks."""
    deliveries = []
    for row in rows:
        headers = [(name, value.encode()) for name, value in orjson.loads(row["headers"])]
        value = None if row["body"] == TOMBSTONE_BODY else row["body"].encode()
        deliveries.append(await producer.send(row["topic"], value=value, key=row["key"].encode(), headers=headers))
    await asyncio.gather(*deliveries)


class OutboxRelay:
    """Publishes the outbox while it holds the database's relay lock; stands by while another does.

    The lock lives as long as the leader's session, so the session is made to end when the leader
    stops working: PostgreSQL closes it after LEADER_SILENCE_SECONDS without a statement (a frozen
    process, a hung loop) and probes its socket with TCP keepalives (a host or network gone), and
    the leader bounds its own waits on a connection that stopped answering. A standby then takes the
    lock within STANDBY_RETRY_SECONDS.
    """

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
        backoff = 1.0
        while not self._stopping.is_set():
            try:
                await self._lead_while_holding_lock()
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_infrastructure_error(exc):
                    # The database is down or restarting: one line per try, no stack trace.
                    log.warning("outbox relay cannot reach its database (%s: %s); retrying in %.0fs",
                                type(exc).__name__, exc, backoff)
                else:
                    log.warning("outbox relay lost its database connection; retrying", exc_info=True)
                if await self._sleep(backoff):
                    return
                backoff = min(backoff * 2, 5.0)

    async def _connect(self) -> asyncpg.Connection:
        conn: asyncpg.Connection = await asyncpg.connect(
            asyncpg_dsn(self.db.url),
            timeout=LEADER_CONNECT_TIMEOUT_SECONDS,
            # The client's own bound on a statement, for a server that stopped answering at all.
            command_timeout=LEADER_SILENCE_SECONDS + 2,
            server_settings=relay_session_settings(self.settings.service_name),
        )
        keep_socket_alive(conn)
        return conn

    async def _lead_while_holding_lock(self) -> None:
        conn = await self._connect()
        loop = asyncio.get_running_loop()
        try:
            backlog_due = 0.0
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_KEY):
                # Another replica relays this database; stand by in case it dies.
                if loop.time() >= backlog_due:
                    await self._refresh_backlog_metrics()
                    backlog_due = loop.time() + 5
                if await self._sleep(STANDBY_RETRY_SECONDS):
                    return
            log.info("outbox relay is leading")
            housekeeping_due = backlog_due = 0.0
            while not self._stopping.is_set():
                # The direct publishers send fresh rows; the relay looks for stale ones on a timer.
                self._wake.clear()
                await self._publish_pending(conn)
                # The backlog gauge is refreshed on a timer, not per publish: a COUNT(*) per lead is
                # a visible share of the hot path's CPU.
                if loop.time() >= backlog_due:
                    await self._while_leading(conn, self._refresh_backlog_metrics(), HOUSEKEEPING_TIMEOUT_SECONDS)
                    backlog_due = loop.time() + 5
                if loop.time() >= housekeeping_due:
                    await self._while_leading(conn, self._housekeeping(), HOUSEKEEPING_TIMEOUT_SECONDS)
                    housekeeping_due = loop.time() + 30
                with contextlib.suppress(TimeoutError):
                    await self._while_leading(conn, self._wake.wait(), self.settings.outbox_poll_interval_seconds)
                if conn.is_closed():
                    raise ConnectionError("relay connection closed")
        finally:
            await _close(conn)

    async def _while_leading(self, conn: asyncpg.Connection, work: Awaitable[T], timeout: float) -> T:
        """``work``'s result, waited for at most ``timeout`` seconds (then TimeoutError), with a
        statement on the leader's connection every LEADER_HEARTBEAT_SECONDS meanwhile: the session
        ends after LEADER_SILENCE_SECONDS of silence, which must only ever happen to a frozen leader."""
        task = asyncio.ensure_future(work)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError(f"no answer within {timeout:.1f}s")
                done, _ = await asyncio.wait({task}, timeout=min(remaining, LEADER_HEARTBEAT_SECONDS))
                if done:
                    return task.result()
                if loop.time() < deadline:
                    await conn.execute("SELECT 1")
        finally:
            task.cancel()

    async def _publish_pending(self, conn: asyncpg.Connection) -> None:
        """Publish everything pending, retrying with backoff while Kafka refuses."""
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                sent = await self.publish_batch(conn)
            except KafkaError as exc:
                log.warning("outbox publish failed; rows stay pending: %s", exc)
                await self._record_failure(str(exc))
                await self.producers.reset()
                with contextlib.suppress(TimeoutError):
                    await self._while_leading(conn, self._stopping.wait(), backoff + random.uniform(0, backoff))
                backoff = min(backoff * 2, 5.0)
                continue
            # Anything else is the leader's own connection: lead again on a new one.
            if sent < self.settings.outbox_batch_size:
                break

    async def publish_batch(self, conn: asyncpg.Connection) -> int:
        """Publish the oldest pending rows on the leader's connection; returns how many went out.

        The rows are deleted as they are claimed, in one statement: nothing reads a published row,
        and an update that a later cleanup deletes cost the database twice the writes. The delete
        stays invisible until the Kafka acks below, and is rolled back with the transaction if
        they fail, so a row leaves the outbox only once Kafka has it. Kafka's failures raise
        ``KafkaError``; the connection's raise its own.
        """
        producer = await self.producers.get()
        async with conn.transaction():
            claimed = await conn.fetch(_CLAIM_HEAD, self.settings.outbox_batch_size, BACKSTOP_AGE_SECONDS)
            if not claimed:
                return 0
            # RETURNING promises no order, and a lead's events must leave in the order they were written.
            rows = sorted(claimed, key=lambda row: row["id"])
            # The idempotent producer never expires a batch by itself, and a send waiting for a topic's
            # metadata on a producer that a direct sender's failure reset meanwhile never returns: so the
            # sends and their acks are bounded here. The transaction stays open meanwhile, so the wait
            # keeps the leader's session talking.
            ack_timeout = self.settings.kafka_request_timeout_ms / 1000 + 5
            try:
                await self._while_leading(conn, _send_rows(producer, rows), ack_timeout)
            except TimeoutError as exc:
                raise KafkaTimeoutError(f"no acknowledgement from Kafka within {ack_timeout:.0f}s") from exc
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
