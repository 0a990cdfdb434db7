"""Which failures are an outage (retried while it lasts) and which are the event's own (dead-lettered)."""

import socket
from typing import cast

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError, RecordTooLargeError
from pydantic import BaseModel, ValidationError
from sqlalchemy import exc as sa_exc

from leadflow_contracts import MalformedEvent
from leadflow_kit.consumer import PermanentError
from leadflow_kit.db import Database
from leadflow_kit.failures import is_infrastructure_error, is_outage


def raised_from(error: BaseException, cause: BaseException) -> BaseException:
    try:
        raise error from cause
    except BaseException as caught:
        return caught


def wrapped_by_sqlalchemy(driver_error: BaseException, kind: type[sa_exc.DBAPIError]) -> sa_exc.DBAPIError:
    """What SQLAlchemy's asyncpg dialect raises: its error, holding the dialect's adapted error as
    ``orig``, which was raised from asyncpg's own."""
    adapted = raised_from(Exception(str(driver_error)), driver_error)
    return kind("SELECT 1", None, adapted)


class Lead(BaseModel):
    email: str


def validation_error() -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Lead.model_validate({"email": 7})
    return caught.value


@pytest.mark.parametrize("error", [
    ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 15432)"),
    ConnectionResetError(104, "Connection reset by peer"),
    OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 15432, 0, 0)"),
    socket.gaierror(-2, "Name or service not known"),
    TimeoutError(),
    asyncpg.InterfaceError("connection is closed"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
    asyncpg.exceptions.SerializationError("could not serialize access due to concurrent update"),
    asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
    asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.exceptions.LockNotAvailableError("canceling statement due to lock timeout"),
    wrapped_by_sqlalchemy(asyncpg.InterfaceError("connection is closed"), sa_exc.InterfaceError),
    wrapped_by_sqlalchemy(asyncpg.exceptions.DeadlockDetectedError("deadlock detected"), sa_exc.DBAPIError),
    sa_exc.OperationalError("SELECT 1", None, Exception("server closed the connection unexpectedly")),
    sa_exc.TimeoutError("QueuePool limit of size 20 overflow 20 reached, connection timed out"),
    sa_exc.DBAPIError("SELECT 1", None, Exception("gone"), connection_invalidated=True),
    KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 19092)]"),
    # A handler's own error raised while the connection was going away still comes from the outage.
    raised_from(RuntimeError("could not store the score"), ConnectionResetError()),
], ids=lambda error: type(error).__name__)
def test_an_unreachable_or_contended_database_or_broker_is_an_outage(error: BaseException) -> None:
    assert is_infrastructure_error(error)


@pytest.mark.parametrize("error", [
    MalformedEvent("not an event"),
    PermanentError("the lead has no email"),
    validation_error(),
    RuntimeError("this lead always fails"),
    KeyError("team"),
    ValueError("bad score"),
    FileNotFoundError(2, "No such file or directory"),
    asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
    asyncpg.exceptions.DataError("invalid input syntax for type uuid"),
    asyncpg.exceptions.UndefinedColumnError("column \"x\" does not exist"),
    # asyncpg's InterfaceError subclasses are about the statement's own input.
    asyncpg.exceptions._base.DataError("invalid input for query argument $1: 'x' (an integer is required)"),
    wrapped_by_sqlalchemy(asyncpg.UniqueViolationError("duplicate key"), sa_exc.IntegrityError),
    wrapped_by_sqlalchemy(asyncpg.exceptions._base.DataError("invalid input for query argument $1"),
                          sa_exc.InterfaceError),
    RecordTooLargeError("the message is too large"),
], ids=lambda error: type(error).__name__)
def test_an_events_own_failure_is_not_an_outage(error: BaseException) -> None:
    assert not is_infrastructure_error(error)


class FakeDatabase:
    def __init__(self, answers: bool) -> None:
        self.answers = answers

    async def ping(self) -> None:
        if not self.answers:
            raise ConnectionRefusedError(111, "Connection refused")


@pytest.mark.parametrize(("error", "database_answers", "outage"), [
    (asyncpg.exceptions.InternalClientError("cannot switch to state 15"), False, True),
    (RuntimeError("this lead always fails"), True, False),
    (RuntimeError("this lead always fails"), False, True),
    (asyncpg.exceptions.DeadlockDetectedError("deadlock detected"), True, True),
], ids=["client-error-while-down", "own-error-while-up", "own-error-while-down", "deadlock-while-up"])
async def test_any_error_while_the_database_does_not_answer_is_an_outage(
    error: BaseException, database_answers: bool, outage: bool
) -> None:
    assert await is_outage(error, cast(Database, FakeDatabase(database_answers))) is outage
