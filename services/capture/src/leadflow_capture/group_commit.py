"""Group commit: the form fills (or activity posts) that arrive within a millisecond or two share one
transaction.

Each request hands its item (a form fill, an activity post) and the work that stores a list of them to
``GroupCommit.run`` and waits for the group's commit before it answers, so a 202 still means the item is
stored. The work gets the whole group's items at once, so it can store them in a few statements
(capture's locks the fills, looks them up and inserts them in one statement each); a group costs one
BEGIN, those statements, one outbox write and one COMMIT however many items it holds. With
``behind_commit``, a group whose window ends while another of the same work is still committing waits
for that commit and takes what arrived meanwhile: on a busy machine, where a commit takes longer, groups
grow with it, and a quiet one waits no longer.

The work answers each item: a result, or an exception that is that item's refusal alone (the work wrote
nothing for it). A work that raises (a refused fill whose writes must roll back, a changed form, a
deadlock) must not fail the others: the group is rolled back and its items run again one by one, each in
its own transaction, as the consumer does for a failing batch; a deadlock or serialization failure
between groups is such a failure too. An outage fails every fill of the group at once (each request then
answers 503).

Nothing here is capture's own; it belongs in ``leadflow_kit`` beside ``unit_of_work`` once another
route needs it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg

from leadflow_kit.failures import is_infrastructure_error
from leadflow_kit.uow import UnitOfWork

log = logging.getLogger(__name__)

D = TypeVar("D")
Item = TypeVar("Item")
T = TypeVar("T")

# Each item's answer in order: its result, or the exception that refuses it alone.
Work = Callable[[list[Any], UnitOfWork[D]], Awaitable[Sequence[Any]]]
ItemWork = Callable[[list[Item], UnitOfWork[D]], Awaitable[Sequence[T | Exception]]]
OpenUnitOfWork = Callable[[], AbstractAsyncContextManager[UnitOfWork[D]]]


@dataclass
class _Member:
    item: Any
    answer: asyncio.Future[Any]


class GroupCommit(Generic[D]):
    """Runs the items handed to ``run`` within ``window_seconds`` of the group's first (at most ``max_size``),
    with the same work, in one unit of work; ``observe`` is told each group's size once it committed."""

    def __init__(self, open_uow: OpenUnitOfWork[D], window_seconds: float, max_size: int,
                 observe: Callable[[int], None] = lambda size: None, *, behind_commit: bool = False) -> None:
        self.open_uow = open_uow
        self.window_seconds = window_seconds
        self.max_size = max_size
        self.observe = observe
        # While a group of the same work is committing, a group whose window ended waits for that commit
        # (gathering what arrives meanwhile) instead of starting a transaction beside it.
        self.behind_commit = behind_commit
        self._pending: dict[Work[D], list[_Member]] = {}
        self._timers: dict[Work[D], asyncio.TimerHandle] = {}
        self._committing: dict[Work[D], int] = {}
        self._behind: set[Work[D]] = set()
        # Groups being committed; referenced so the loop does not drop their tasks.
        self._running: set[asyncio.Task[None]] = set()

    async def run(self, work: ItemWork[Item, D, T], item: Item) -> T:
        """``item``'s result once the transaction it was stored in has committed; its refusal, or the
        exception its work raised when it ran alone, is raised."""
        if self.max_size <= 1 or self.window_seconds <= 0:
            return await self._alone(work, item)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()
        pending = self._pending.setdefault(work, [])
        pending.append(_Member(item, answer))
        if len(pending) >= self.max_size:
            self._start_group(work)
        elif work not in self._timers and work not in self._behind:
            self._timers[work] = loop.call_later(self.window_seconds, self._window_ended, work)
        # Shielded: a request given up on (its client gone) must not cancel the group the others wait for.
        return await asyncio.shield(answer)

    def _window_ended(self, work: Work[D]) -> None:
        self._timers.pop(work, None)
        if self.behind_commit and self._committing.get(work):
            self._behind.add(work)
        else:
            self._start_group(work)

    def _start_group(self, work: Work[D]) -> None:
        timer = self._timers.pop(work, None)
        if timer is not None:
            timer.cancel()
        self._behind.discard(work)
        members = self._pending.pop(work, [])
        if members:
            self._committing[work] = self._committing.get(work, 0) + 1
            task = asyncio.get_running_loop().create_task(self._commit(work, members))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(lambda _: self._committed(work))

    def _committed(self, work: Work[D]) -> None:
        left = self._committing.get(work, 1) - 1
        if left > 0:
            self._committing[work] = left
        else:
            self._committing.pop(work, None)
        if work in self._behind:
            self._start_group(work)

    async def _commit(self, work: Work[D], members: list[_Member]) -> None:
        try:
            results = await self._together(work, members)
        except Exception as exc:
            if is_infrastructure_error(exc) and not _conflict(exc):
                for member in members:
                    _settle(member.answer, exc, None)
                return
            if len(members) > 1:
                log.info("a group of %d submissions failed (%s: %s); running them one by one",
                         len(members), type(exc).__name__, exc)
            for member in members:
                await self._one(work, member)
            return
        self.observe(len(members))
        for member, result in zip(members, results, strict=True):
            if isinstance(result, Exception):
                _settle(member.answer, result, None)
            else:
                _settle(member.answer, None, result)

    async def _together(self, work: Work[D], members: list[_Member]) -> Sequence[Any]:
        async with self.open_uow() as uow:
            return await work([member.item for member in members], uow)

    async def _one(self, work: Work[D], member: _Member) -> None:
        try:
            result = await self._alone(work, member.item)
        except Exception as exc:
            _settle(member.answer, exc, None)
        else:
            _settle(member.answer, None, result)

    async def _alone(self, work: ItemWork[Item, D, T], item: Item) -> T:
        async with self.open_uow() as uow:
            [result] = await work([item], uow)
        self.observe(1)
        if isinstance(result, Exception):
            raise result
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
