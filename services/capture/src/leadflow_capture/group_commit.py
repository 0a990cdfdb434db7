"""Group commit: the form fills that arrive within a millisecond or two share one transaction.

Each request hands its work (a function of the unit of work) to ``GroupCommit.run`` and waits for the
group's commit before it answers, so a 202 still means the lead is stored. A group costs one BEGIN, one
outbox write and one COMMIT however many fills it holds. A fill that fails inside a group (a refused
fill rolls back what it wrote, a changed form, a deadlock) must not fail the others: the group is rolled
back and its fills run again one by one, each in its own transaction, as the consumer does for a failing
batch; a deadlock or serialization failure between groups is such a failure too. An outage fails every
fill of the group at once (each request then answers 503).

Nothing here is capture's own; it belongs in ``leadflow_kit`` beside ``unit_of_work`` once another
route needs it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg

from leadflow_kit.failures import is_infrastructure_error
from leadflow_kit.uow import UnitOfWork

log = logging.getLogger(__name__)

D = TypeVar("D")
T = TypeVar("T")

Work = Callable[[UnitOfWork[D]], Awaitable[Any]]
OpenUnitOfWork = Callable[[], AbstractAsyncContextManager[UnitOfWork[D]]]


@dataclass
class _Member(Generic[D]):
    work: Work[D]
    answer: asyncio.Future[Any]


class GroupCommit(Generic[D]):
    """Runs the works handed to ``run`` within ``window_seconds`` of the group's first (at most ``max_size``)
    in one unit of work; ``observe`` is told each group's size once it committed."""

    def __init__(self, open_uow: OpenUnitOfWork[D], window_seconds: float, max_size: int,
                 observe: Callable[[int], None] = lambda size: None) -> None:
        self.open_uow = open_uow
        self.window_seconds = window_seconds
        self.max_size = max_size
        self.observe = observe
        self._pending: list[_Member[D]] = []
        self._timer: asyncio.TimerHandle | None = None
        # Groups being committed; referenced so the loop does not drop their tasks.
        self._running: set[asyncio.Task[None]] = set()

    async def run(self, work: Callable[[UnitOfWork[D]], Awaitable[T]]) -> T:
        """``work``'s result once the transaction it ran in has committed; its exception if it failed alone."""
        if self.max_size <= 1 or self.window_seconds <= 0:
            return await self._alone(work)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()
        self._pending.append(_Member(work, answer))
        if len(self._pending) >= self.max_size:
            self._start_group()
        elif self._timer is None:
            self._timer = loop.call_later(self.window_seconds, self._start_group)
        # Shielded: a request given up on (its client gone) must not cancel the group the others wait for.
        return await asyncio.shield(answer)

    def _start_group(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        members, self._pending = self._pending, []
        if members:
            task = asyncio.get_running_loop().create_task(self._commit(members))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _commit(self, members: list[_Member[D]]) -> None:
        try:
            results = await self._together(members)
        except Exception as exc:
            if is_infrastructure_error(exc) and not _conflict(exc):
                for member in members:
                    _settle(member.answer, exc, None)
                return
            if len(members) > 1:
                log.info("a group of %d form fills failed (%s: %s); running them one by one",
                         len(members), type(exc).__name__, exc)
            for member in members:
                await self._one(member)
            return
        self.observe(len(members))
        for member, result in zip(members, results, strict=True):
            _settle(member.answer, None, result)

    async def _together(self, members: list[_Member[D]]) -> list[Any]:
        async with self.open_uow() as uow:
            return [await member.work(uow) for member in members]

    async def _one(self, member: _Member[D]) -> None:
        try:
            result = await self._alone(member.work)
        except Exception as exc:
            _settle(member.answer, exc, None)
        else:
            _settle(member.answer, None, result)

    async def _alone(self, work: Callable[[UnitOfWork[D]], Awaitable[T]]) -> T:
        async with self.open_uow() as uow:
            result = await work(uow)
        self.observe(1)
        return result


def _settle(answer: asyncio.Future[Any], error: BaseException | None, result: Any) -> None:
    if answer.done():
        return
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(result)


def _conflict(error: BaseException) -> bool:
    """A deadlock or serialization failure: transactions in each other's way, not an outage; alone, the
    fills go through. Raised by asyncpg itself on the hot path, or wrapped by SQLAlchemy at the commit."""
    wrapped = getattr(error, "orig", None)
    links = (error, error.__cause__, wrapped, getattr(wrapped, "__cause__", None))
    return any(isinstance(link, asyncpg.exceptions.TransactionRollbackError) for link in links)
