"""Database access shared by every service: naming convention, engine, sessions, platform tables."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy import event as sa_event
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

OUTBOX_CHANNEL = "leadflow_outbox"
# The largest value an INTEGER column holds: API fields stored in one are bounded by it (422, not a 500).
INT_MAX = 2**31 - 1

_DRIVER_KEY = "leadflow.driver_connection"
_AFTER_COMMIT_KEY = "leadflow.after_commit"
_BEFORE_COMMIT_KEY = "leadflow.before_commit"


def new_metadata() -> MetaData:
    """A service's MetaData, with the platform tables (outbox, processed_event, api_key) on it."""
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    define_platform_tables(metadata)
    return metadata


def define_platform_tables(metadata: MetaData) -> None:
    Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("topic", String(255), nullable=False),
        Column("key", String(255), nullable=False),
        Column("headers", JSONB, nullable=False),
        Column("body", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # NULL while pending: the relay deletes a row once Kafka has it (relays before 2026-11-30 set it).
        Column("published_at", DateTime(timezone=True)),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", Text),
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
        # A direct publisher's check for an older row of the key it sends (not a walk over every id below).
        Index("ix_outbox_topic_key", "topic", "key", "id"),
    )
    Table(
        "processed_event",
        metadata,
        Column("consumer", String(255), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index("ix_processed_event_processed_at", "processed_at"),
    )
    Table(
        "api_key",
        metadata,
        Column("id", String(64), primary_key=True),
        Column("name", String(255), nullable=False),
        # Random and shown in listings, so a key can be told apart without any of its secret part.
        Column("public_id", String(16), nullable=False, unique=True),
        Column("key_hash", String(128), nullable=False, unique=True),
        Column("scopes", ARRAY(String(64)), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("revoked_at", DateTime(timezone=True)),
        Column("last_used_at", DateTime(timezone=True)),
    )


# How the event pipeline's connections plan their statements (``Platform.pipeline_db``): the consumers'
# batches, capture's grouped submissions, the publisher's deletes, the webhook dispatcher, enrichment's
# directory prefetch. Those are fixed statements over arrays of a batch's keys, each reaching its rows by
# index. PostgreSQL's default plans each of them afresh at every execution, as a plan estimated from the
# array's real length always looks cheaper than the generic one: planning was a quarter of their statement
# time at 100 leads/s (docs/performance.md, sessions 24 and 25).
# Here a statement is planned once per connection. A generic plan is made from the statistics of that
# moment and kept until the next ANALYZE or VACUUM of its tables: one made while a table was small (a young
# deployment; the outbox between vacuums, its dead rows uncounted) would scan or hash the whole table at
# every batch as it grows. So these connections also rule out scans and hash and merge joins wherever an
# index can answer instead (the planner still scans where nothing else can: a small settings table). Such
# a plan's cost counts the ruled-out step at 10^10, far past the point where PostgreSQL compiles a plan
# with JIT (about 120 ms a statement, measured): never worth it for statements of a millisecond, so JIT is off.
# Statements that read many rows (reports, searches, gauges, sweeps) stay on ``Platform.db``.
PIPELINE_PLANNING = {
    "plan_cache_mode": "force_generic_plan",
    "enable_seqscan": "off",
    "enable_hashjoin": "off",
    "enable_mergejoin": "off",
    "jit": "off",
}


class Database:
    def __init__(
        self, url: str, *, pool_size: int = 10, echo: bool = False, toast_compression: str | None = None,
        planning: dict[str, str] | None = None,
    ) -> None:
        """``toast_compression``: the method PostgreSQL compresses the large values these connections write
        with (``default_toast_compression``, set as each connection opens); None keeps the server's.
        ``planning``: planner settings for every connection (``PIPELINE_PLANNING``); None keeps the server's."""
        self.url = url
        server_settings = {"default_toast_compression": toast_compression} if toast_compression else {}
        server_settings |= planning or {}
        self.engine: AsyncEngine = create_async_engine(
            # No pre-ping: it costs a round trip per checkout on every hot path; stale connections
            # surface as errors that the consumer retries and the API answers with 503.
            url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800, echo=echo,
            connect_args={"server_settings": server_settings} if server_settings else {},
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error.

        Rows gathered with ``deferred_rows`` (the outbox's) are written just before the commit."""
        async with self.sessions() as session, session.begin():
            yield session
            while deferred := session.info.pop(_BEFORE_COMMIT_KEY, None):
                for write, rows in deferred.values():
                    await write(session, rows)

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled asyncpg connection outside any transaction, for a lone read that needs no transaction:
        one round trip, where ``transaction()`` costs three (BEGIN, the read, COMMIT)."""
        async with self.engine.connect() as connection:
            adapted: Any = (await connection.get_raw_connection()).dbapi_connection
            try:
                yield adapted.driver_connection
            except Exception:
                # SQLAlchemy does not see asyncpg's own errors: a connection the server closed (a restart)
                # would be handed out again and again. Drop it; the next checkout connects.
                await connection.invalidate()
                raise

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under ``session``, inside the session's transaction.

    The hot paths (a consumer's per-event statements, capture's form post) run plain SQL on it:
    building, caching and executing a SQLAlchemy statement costs about 0.4 ms of CPU, asyncpg's
    prepared statement about 0.07 ms (docs/performance.md). Statements here share the session's
    transaction and commit or roll back with it. Through SQLAlchemy's connection, JSON and JSONB
    parameters are passed as JSON *text* (``json.dumps``) and come back already decoded. Errors
    are asyncpg's own (``asyncpg.UniqueViolationError``), not SQLAlchemy's.
    """
    # Remembered for the rest of the transaction: finding it again through the session costs a
    # greenlet round trip per call, several per event.
    transaction = session.sync_session.get_transaction()
    remembered = session.info.get(_DRIVER_KEY)
    if remembered is not None and transaction is not None and remembered[0] is transaction:
        driver: asyncpg.Connection = remembered[1]
        return driver
    connection = await session.connection()
    adapted: Any = (await connection.get_raw_connection()).dbapi_connection
    if adapted._transaction is None:
        # SQLAlchemy begins lazily at its first statement; begin now, as it would, so these
        # statements are inside the transaction rather than in autocommit.
        try:
            await adapted._start_transaction()
        except BaseException:
            # SQLAlchemy does not see what fails here, and would hand the connection out again and again:
            # - a pooled connection the server closed (a restart);
            # - a cancel (a stop) during the BEGIN: asyncpg then still counts its transaction as the
            #   connection's own while SQLAlchemy counts none, so every later transaction on it ran as a
            #   savepoint inside a BEGIN nobody commits, and its writes, reported done, were lost when the
            #   connection closed.
            # Drop it; the next checkout connects.
            await asyncio.shield(connection.invalidate())
            raise
    driver = adapted.driver_connection
    session.info[_DRIVER_KEY] = (session.sync_session.get_transaction(), driver)
    return driver


# For the periodic jobs that read a large part of a table in the background (gauges over a window, sweeps),
# on the database the hand-off's statements run on, for the rest of their transaction:
# - no parallel workers: with PostgreSQL's default two, sla's funnel gauges ran as three processes over a
#   million leads, about 1.8 s of CPU in two seconds of every minute, competing with the pipeline for both cores
#   of a two-core server: the leads captured meanwhile waited p90 159 ms for their webhook against 36 ms
#   between refreshes, and 113 ms when the refresh ran without workers (docs/performance.md, session 26). Run
#   by one process, such a job takes a core at most and a little longer; nobody waits on it;
# - no JIT: a scan of a million rows crosses jit_above_cost, and compiling its expressions took 50-130 ms of
#   each gauge refresh for no faster scan.
BACKGROUND_SCAN = "SELECT set_config('jit', 'off', true), set_config('max_parallel_workers_per_gather', '0', true)"


async def as_background_scan(session: AsyncSession) -> None:
    """The rest of the session's transaction runs as a background job: one process, no JIT."""
    await (await driver_connection(session)).execute(BACKGROUND_SCAN)


def asyncpg_dsn(url: str) -> str:
    """The plain libpq URL asyncpg wants, from a SQLAlchemy ``postgresql+asyncpg://`` URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def after_commit(session: AsyncSession, action: Callable[[], None]) -> None:
    """Run ``action`` once the session's transaction commits, so a retried or rolled-back handler
    never counts a metric twice."""
    # A list on the session, run by one listener on every Session: registering a listener per
    # call (sqlalchemy.event.listen) cost 4 % of a consumer's CPU.
    session.info.setdefault(_AFTER_COMMIT_KEY, []).append(action)


def deferred_rows(
    session: AsyncSession, kind: str, write: Callable[[AsyncSession, list[Any]], Awaitable[None]]
) -> list[Any]:
    """The transaction's list of ``kind`` rows; ``Database.transaction`` hands it to ``write`` just
    before it commits, and a rollback drops it.

    For writes worth gathering into one statement per transaction: a batch of events then costs one
    round trip instead of one per event."""
    deferred: dict[str, tuple[Any, list[Any]]] = session.info.setdefault(_BEFORE_COMMIT_KEY, {})
    if kind not in deferred:
        deferred[kind] = (write, [])
    rows: list[Any] = deferred[kind][1]
    return rows


def pending_rows(session: AsyncSession, kind: str) -> list[Any]:
    """The transaction's ``kind`` rows gathered so far for ``Database.transaction`` to write (none: empty)."""
    deferred: dict[str, tuple[Any, list[Any]]] = session.info.get(_BEFORE_COMMIT_KEY) or {}
    return deferred[kind][1] if kind in deferred else []


def _refuse_unwritten(session: Session) -> None:
    # Only Database.transaction runs deferred writes; a commit anywhere else would lose them quietly.
    if session.info.get(_BEFORE_COMMIT_KEY):
        raise RuntimeError("deferred writes (outbox rows) pending at commit: commit through Database.transaction")


def _run_after_commit(session: Session) -> None:
    for action in session.info.pop(_AFTER_COMMIT_KEY, ()):
        action()


def _forget_pending(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT_KEY, None)
    session.info.pop(_BEFORE_COMMIT_KEY, None)


sa_event.listen(Session, "before_commit", _refuse_unwritten)
sa_event.listen(Session, "after_commit", _run_after_commit)
sa_event.listen(Session, "after_rollback", _forget_pending)
