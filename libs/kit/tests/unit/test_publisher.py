"""The direct publisher's bookkeeping, with a stand-in producer: which rows go out and in what order,
which are left to the relay after a failure, and which sent rows a writing transaction deletes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka.errors import KafkaConnectionError

from leadflow_kit import publisher as publisher_module
from leadflow_kit.db import Database
from leadflow_kit.metrics import ServiceMetrics
from leadflow_kit.publisher import CommittedRow, DirectPublisher
from leadflow_kit.settings import ServiceSettings

SERVICE = "kit-publisher-unit"


class FakeProducer:
    """Acknowledges at once, or fails while ``down``; records what it was given, in order."""

    def __init__(self) -> None:
        self.sent: list[bytes | None] = []
        self.down = False
        self.resets = 0

    async def get(self) -> FakeProducer:
        return self

    async def reset(self) -> None:
        self.resets += 1

    async def send(self, topic: str, value: bytes | None, key: bytes, headers: Any) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.down:
            done.set_exception(KafkaConnectionError("broker down"))
        else:
            self.sent.append(value)
            done.set_result(None)
        return done


def row(row_id: int, key: str = "lead-1") -> CommittedRow:
    return CommittedRow(row_id, "t", key.encode(), [], f"event-{row_id}".encode())


@asynccontextmanager
async def running() -> AsyncIterator[tuple[DirectPublisher, FakeProducer, list[list[int]]]]:
    settings = ServiceSettings(service_name=SERVICE, database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none")
    producer = FakeProducer()
    publisher = DirectPublisher(settings, Database(settings.database_url), producer,  # type: ignore[arg-type]
                                ServiceMetrics(SERVICE))
    deleted: list[list[int]] = []

    async def delete_sent() -> None:
        ids, publisher._acked = publisher._acked, []
        deleted.append(ids)
        publisher._unsettled.difference_update(ids)

    publisher._delete_sent = delete_sent  # type: ignore[method-assign]
    task = asyncio.create_task(publisher.run())
    await settle()
    assert publisher.running
    try:
        yield publisher, producer, deleted
    finally:
        publisher.stop()
        await asyncio.wait_for(task, 5)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def left(publisher: DirectPublisher, reason: str) -> float:
    value: float = publisher.metrics.outbox_left_to_relay.labels(SERVICE, reason)._value.get()
    return value


async def test_committed_rows_go_out_in_commit_order_and_stay_unsettled_until_deleted() -> None:
    async with running() as (publisher, producer, deleted):
        epoch, _ = publisher.unsettled()
        publisher.committed([row(1), row(2, "lead-2")], set(), epoch)
        publisher.committed([row(3)], set(), epoch)
        await settle()
        assert producer.sent == [b"event-1", b"event-2", b"event-3"]
        # Sent, not yet deleted: a later row of their key need not wait for them.
        assert sorted(publisher.unsettled()[1]) == [1, 2, 3]
        handoff, sent = publisher.take_sent()
        assert sent == [1, 2, 3] and publisher.take_sent() == (0, [])
        publisher.committed([row(4)], set(), epoch, handoff)  # the writer's transaction deleted them
        await settle()
        assert publisher.unsettled()[1] == [4]
    assert deleted == [[4]]  # the stop deletes what was sent and not yet deleted


async def test_a_row_with_an_older_row_of_its_key_is_left_to_the_relay() -> None:
    async with running() as (publisher, producer, _):
        epoch, _ = publisher.unsettled()
        publisher.committed([row(1, "lead-a"), row(2, "lead-b")], {2}, epoch)
        await settle()
    assert producer.sent == [b"event-1"]
    assert left(publisher, "order") == 1


async def test_after_a_failed_send_rows_checked_before_it_go_to_the_relay_too() -> None:
    async with running() as (publisher, producer, _):
        checked_before, _ = publisher.unsettled()
        producer.down = True
        publisher.committed([row(1)], set(), checked_before)
        await settle()
        assert left(publisher, "kafka") == 1 and producer.resets == 1
        assert publisher.unsettled()[1] == []  # a later row of its key now waits behind it
        producer.down = False
        # Its check counted row 1 as this process's own: it must not overtake it.
        publisher.committed([row(2)], set(), checked_before)
        await settle()
        assert left(publisher, "order") == 1
        # Checked after the failure (row 1 was not left out of it), within the pause: to the relay.
        checked_after, _ = publisher.unsettled()
        publisher.committed([row(3, "lead-other")], set(), checked_after)
        await settle()
        assert left(publisher, "paused") == 1
        publisher._paused_until = 0.0  # the pause is over
        checked_after, _ = publisher.unsettled()
        publisher.committed([row(4, "lead-other")], set(), checked_after)
        await settle()
    assert producer.sent == [b"event-4"]


async def test_sent_rows_handed_to_a_transaction_that_never_commits_come_back(monkeypatch: Any) -> None:
    monkeypatch.setattr(publisher_module, "DELETE_HANDOFF_SECONDS", 0.05)
    async with running() as (publisher, _, deleted):
        epoch, _ = publisher.unsettled()
        publisher.committed([row(1)], set(), epoch)
        await settle()
        _, sent = publisher.take_sent()
        assert sent == [1]
        await asyncio.sleep(0.3)  # rolled back: nobody calls committed with the handoff
        assert deleted == [[1]]
        assert publisher.unsettled()[1] == []


async def test_rows_still_queued_long_after_their_commit_are_left_to_the_relay_unsent(monkeypatch: Any) -> None:
    """A sender that fell behind must not race the relay, which takes a row at the backstop age: rows queued
    longer than DIRECT_SEND_SECONDS since their commit go to the relay, with every row behind them."""
    async with running() as (publisher, producer, _):
        epoch, _ = publisher.unsettled()
        monkeypatch.setattr(publisher_module, "DIRECT_SEND_SECONDS", -1.0)  # every row is already late
        publisher.committed([row(1), row(2, "lead-2")], set(), epoch)
        await settle()
        assert producer.sent == []
        assert left(publisher, "late") == 2
        # Left out of this process's own: a later row of their keys waits behind them.
        assert publisher.unsettled()[1] == []
        monkeypatch.setattr(publisher_module, "DIRECT_SEND_SECONDS", 1.0)
        publisher._paused_until = 0.0
        checked_after, _ = publisher.unsettled()
        publisher.committed([row(3, "lead-3")], set(), checked_after)
        await settle()
    assert producer.sent == [b"event-3"]
