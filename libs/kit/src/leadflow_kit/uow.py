"""The unit of work a use case runs in: one transaction, the outbox in it, the time, the service's deps.

The consumer opens one per batch of events; a route that runs a use case opens one with
``unit_of_work``. Handlers reach the database only through their service's store, which takes
``uow.session``; unit tests give them an in-memory store and ``leadflow_kit.fakes.fake_unit_of_work``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import Event
from leadflow_kit.clock import Clock
from leadflow_kit.db import Database, after_commit
from leadflow_kit.outbox import Outbox
from leadflow_kit.platform import Platform

D = TypeVar("D")


@dataclass
class UnitOfWork(Generic[D]):
    """What a handler may touch: one transaction, the outbox in it, the time, and the service's ``deps``."""

    session: AsyncSession
    outbox: Outbox
    clock: Clock
    deps: D
    # What the subscriptions' ``prepare`` steps found for this batch before its transaction began.
    prepared: Mapping[str, Any] = field(default_factory=dict)

    async def publish(self, event: Event[Any]) -> None:
        await self.outbox.add(self.session, event)

    def publish_tombstone(self, topic: str, key: str) -> None:
        self.outbox.add_tombstone(self.session, topic, key)

    def now(self) -> datetime:
        return self.clock.now()

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` (a metric, say) once the transaction commits: never for a rolled-back or
        retried batch, so nothing is counted twice."""
        after_commit(self.session, action)


@asynccontextmanager
async def unit_of_work(platform: Platform, deps: D, db: Database | None = None) -> AsyncIterator[UnitOfWork[D]]:
    """A transaction for a use case a route runs: committed when the block ends, rolled back on error. On
    ``platform.db`` unless ``db`` says otherwise (``platform.pipeline_db`` for a hot path's batch statements)."""
    async with (db or platform.db).transaction() as session:
        yield UnitOfWork(session, platform.outbox, platform.clock, deps)
