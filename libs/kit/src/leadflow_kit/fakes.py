"""Fakes for unit tests of handlers: a unit of work with no database, whose outbox records what the
handler published. A service's unit tests pair it with an in-memory fake of its ``store.py``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import Event
from leadflow_kit.clock import FrozenClock
from leadflow_kit.outbox import Outbox
from leadflow_kit.uow import UnitOfWork

D = TypeVar("D")


class RecordingOutbox(Outbox):
    """Keeps what would have been written to the outbox, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event[Any]] = []
        self.tombstones: list[tuple[str, str]] = []

    async def add(self, session: AsyncSession, event: Event[Any]) -> None:
        self.events.append(event)

    def add_tombstone(self, session: AsyncSession, topic: str, key: str) -> None:
        self.tombstones.append((topic, key))

    def of_type(self, event_type: str) -> list[Event[Any]]:
        return [event for event in self.events if event.type == event_type]


class FakeUnitOfWork(UnitOfWork[D]):
    """A unit of work with no transaction: what would run after the commit runs at once."""

    def after_commit(self, action: Callable[[], None]) -> None:
        action()


def fake_unit_of_work(
    deps: D, now: datetime | None = None, prepared: dict[str, Any] | None = None
) -> tuple[UnitOfWork[D], RecordingOutbox, FrozenClock]:
    """A unit of work over ``deps`` (whose store is a fake) at a frozen time. It has no session: a handler
    that reaches past its store to the database fails the test, as it should."""
    outbox = RecordingOutbox()
    clock = FrozenClock(now or datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    return FakeUnitOfWork(cast(AsyncSession, None), outbox, clock, deps, prepared or {}), outbox, clock
