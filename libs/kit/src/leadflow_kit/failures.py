"""Which failures are an outage and which belong to the work itself.

An outage (the database or the broker unreachable, a connection reset or closed, a server
shutting down, a serialization failure, a deadlock, a timeout) passes by itself: the work is
retried, with backoff, for as long as it lasts. Anything else is the work's own failure, retried a
few times and then given up on (a consumer sends the event to its dead-letter topic).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import asyncpg
from aiokafka.errors import KafkaError
from sqlalchemy import exc as sa_exc

from leadflow_kit.db import Database

# How long the database may take to answer before a failure is taken for an outage.
DATABASE_CHECK_SECONDS = 2.0

# PostgreSQL's SQLSTATE classes that say nothing about the statement: 08 connection exception,
# 57 operator intervention (shutdown, "the database system is starting up", statement_timeout),
# 40 transaction rollback (serialization failure, deadlock), 53 insufficient resources (too many
# connections), 55P03 lock_timeout, 25P03 idle_in_transaction_session_timeout.
_POSTGRES_OUTAGES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.LockNotAvailableError,
    asyncpg.exceptions.IdleInTransactionSessionTimeoutError,
)
_NETWORK_OUTAGES: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, socket.gaierror)
# SQLAlchemy's own: a pool that cannot hand out a connection in time, a connection it gave up on.
_SQLALCHEMY_OUTAGES: tuple[type[BaseException], ...] = (sa_exc.OperationalError, sa_exc.TimeoutError)


def is_infrastructure_error(error: BaseException) -> bool:
    """True when ``error``, or any error it was raised from or wraps, is an outage."""
    return any(_names_outage(link) for link in _causes(error))


async def is_outage(error: BaseException, db: Database) -> bool:
    """An infrastructure error, or any error while the database does not answer (a connection cut
    mid-statement can surface as a client-side error that names no outage)."""
    if is_infrastructure_error(error):
        return True
    try:
        await asyncio.wait_for(db.ping(), DATABASE_CHECK_SECONDS)
    except Exception:
        return True
    return False


def _names_outage(error: BaseException) -> bool:
    if isinstance(error, _POSTGRES_OUTAGES + _NETWORK_OUTAGES + _SQLALCHEMY_OUTAGES):
        return True
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    # asyncpg raises the bare InterfaceError for "connection is closed"; its subclasses are about
    # the query's own input (bad argument types, unsupported features), which no retry fixes.
    if type(error) is asyncpg.InterfaceError:
        return True
    # asyncio's connect raises a bare OSError when every address of the host refused or was unreachable;
    # its subclasses are about files and permissions.
    if type(error) is OSError:
        return True
    return isinstance(error, KafkaError) and bool(error.retriable)


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error, what it was raised from or during, and the driver error a SQLAlchemy error wraps."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        link = pending.pop()
        if link is None or id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        orig = getattr(link, "orig", None)
        pending += [orig if isinstance(orig, BaseException) else None, link.__cause__, link.__context__]
