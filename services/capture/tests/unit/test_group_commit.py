"""Group commit over fake units of work: fills of the same moment share one, each gets its own answer, a
failing fill sends the group one by one, an outage fails them all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from leadflow_capture import handlers
from leadflow_capture.bootstrap import Deps
from leadflow_capture.domain import FormDefinition
from leadflow_capture.group_commit import GroupCommit
from leadflow_kit.fakes import fake_unit_of_work
from leadflow_kit.uow import UnitOfWork

from .fakes import FakeCaptureStore, fake_deps

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
FORM = FormDefinition("demo-request", "Demo request", allowed_origins=("*",))


@dataclass
class Transactions:
    """Fake units of work over ``deps``: which items each one ran, and whether it committed; ``work`` stores
    named items, raising what ``fails`` names and refusing what ``refuses`` names."""

    deps: Deps
    runs: list[list[str]] = field(default_factory=list)
    committed: list[bool] = field(default_factory=list)
    fails: dict[str, Exception] = field(default_factory=dict)
    refuses: dict[str, Exception] = field(default_factory=dict)

    @asynccontextmanager
    async def open(self) -> AsyncIterator[UnitOfWork[Deps]]:
        uow, _, _ = fake_unit_of_work(self.deps, NOW)
        self.runs.append([])
        self.committed.append(False)
        yield uow
        self.committed[-1] = True

    async def work(self, names: list[str], uow: UnitOfWork[Deps]) -> list[str | Exception]:
        self.runs[-1] += names
        for name in names:
            if name in self.fails:
                raise self.fails[name]
        return [self.refuses.get(name, f"answer to {name}") for name in names]


def grouped(transactions: Transactions, sizes: list[int], window: float = 0.01,
            max_size: int = 10) -> GroupCommit[Deps]:
    return GroupCommit(transactions.open, window, max_size, sizes.append)


@pytest.fixture
def transactions() -> Transactions:
    return Transactions(fake_deps(FakeCaptureStore()))


async def test_works_handed_in_within_the_window_share_one_transaction_and_each_gets_its_answer(transactions):
    sizes: list[int] = []
    group = grouped(transactions, sizes)

    answers = await asyncio.gather(*(group.run(transactions.work, f"fill {n}") for n in range(5)))

    assert answers == [f"answer to fill {n}" for n in range(5)]
    assert transactions.runs == [[f"fill {n}" for n in range(5)]]
    assert transactions.committed == [True]
    assert sizes == [5]


async def test_a_full_group_commits_at_once_and_the_rest_start_the_next(transactions):
    sizes: list[int] = []
    group = grouped(transactions, sizes, window=10.0, max_size=3)

    answers = await asyncio.wait_for(
        asyncio.gather(*(group.run(transactions.work, f"fill {n}") for n in range(6))), timeout=5)

    assert answers == [f"answer to fill {n}" for n in range(6)]
    assert transactions.runs == [["fill 0", "fill 1", "fill 2"], ["fill 3", "fill 4", "fill 5"]]
    assert sizes == [3, 3]


async def test_a_failing_fill_sends_the_group_one_by_one_and_fails_alone(transactions):
    sizes: list[int] = []
    group = grouped(transactions, sizes)
    transactions.fails["bad"] = failure = handlers.InvalidSubmission([])

    answers = await asyncio.gather(*(group.run(transactions.work, name) for name in ("a", "bad", "c")),
                                   return_exceptions=True)

    assert answers == ["answer to a", failure, "answer to c"]
    # The group's transaction rolled back at the failing fill; then each ran in one of its own.
    assert transactions.runs == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]
    assert transactions.committed == [False, True, False, True]
    assert sizes == [1, 1]


async def test_a_fill_refused_in_a_group_is_answered_alone_and_the_others_commit_together(transactions):
    sizes: list[int] = []
    group = grouped(transactions, sizes)
    transactions.refuses["bad"] = refused = handlers.InvalidSubmission([])

    answers = await asyncio.gather(*(group.run(transactions.work, name) for name in ("a", "bad", "c")),
                                   return_exceptions=True)

    assert answers == ["answer to a", refused, "answer to c"]
    assert transactions.runs == [["a", "bad", "c"]] and transactions.committed == [True]
    assert sizes == [3]


async def test_items_of_another_work_make_a_group_of_their_own(transactions):
    async def other(names: list[str], uow: UnitOfWork[Deps]) -> list[str]:
        transactions.runs[-1] += names
        return [f"other answer to {name}" for name in names]
    group = grouped(transactions, [])

    answers = await asyncio.gather(group.run(transactions.work, "a"), group.run(other, "b"),
                                   group.run(transactions.work, "c"))

    assert answers == ["answer to a", "other answer to b", "answer to c"]
    assert sorted(transactions.runs) == [["a", "c"], ["b"]]


async def test_an_outage_fails_every_fill_of_the_group_without_running_them_again(transactions):
    group = grouped(transactions, [])
    transactions.fails["a"] = down = ConnectionRefusedError("the database is down")

    answers = await asyncio.gather(group.run(transactions.work, "a"), group.run(transactions.work, "b"),
                                   return_exceptions=True)

    assert answers == [down, down]
    assert transactions.runs == [["a", "b"]]


async def test_a_deadlock_between_groups_sends_the_group_one_by_one(transactions):
    group = grouped(transactions, [])
    transactions.fails["b"] = deadlock = asyncpg.exceptions.DeadlockDetectedError("deadlock detected")

    answers = await asyncio.gather(group.run(transactions.work, "a"), group.run(transactions.work, "b"),
                                   return_exceptions=True)

    assert answers == ["answer to a", deadlock]
    assert transactions.runs == [["a", "b"], ["a"], ["b"]]


async def test_without_a_window_every_fill_has_its_own_transaction(transactions):
    sizes: list[int] = []
    group = grouped(transactions, sizes, window=0)

    answers = await asyncio.gather(*(group.run(transactions.work, f"fill {n}") for n in range(3)))

    assert answers == ["answer to fill 0", "answer to fill 1", "answer to fill 2"]
    assert transactions.runs == [["fill 0"], ["fill 1"], ["fill 2"]]
    assert sizes == [1, 1, 1]


async def test_a_request_given_up_on_does_not_cancel_its_group(transactions):
    group = grouped(transactions, [])
    waiting = asyncio.ensure_future(group.run(transactions.work, "gone"))
    staying = asyncio.ensure_future(group.run(transactions.work, "stays"))
    await asyncio.sleep(0)
    waiting.cancel()

    assert await staying == "answer to stays"
    assert transactions.runs == [["gone", "stays"]] and transactions.committed == [True]


async def test_a_double_submit_within_one_group_gets_the_first_fills_lead(transactions):
    store = transactions.deps.store
    assert isinstance(store, FakeCaptureStore)
    store.add_form(FORM, NOW - timedelta(days=1))
    group = grouped(transactions, [])

    first, again, other = await asyncio.gather(*(
        group.run(handlers.capture_form_fills, handlers.FormFill(FORM, {"email": email}))
        for email in ("ada@example.com", " ADA@example.com", "grace@example.com")))

    assert len(transactions.runs) == 1
    assert (first.kind, again.kind, other.kind) == ("accepted", "duplicate", "accepted")
    assert again.lead_id == first.lead_id != other.lead_id
    assert sorted(store.leads) == sorted([first.lead_id, other.lead_id])


@pytest.mark.parametrize(("behind_commit", "runs"), [
    (True, [["fill 1"], ["fill 2", "fill 3"]]),
    (False, [["fill 1"], ["fill 2"], ["fill 3"]]),
], ids=["behind-the-commit", "beside-it"])
async def test_fills_whose_window_ends_while_a_group_commits_wait_for_it_and_go_together(
    transactions, behind_commit, runs
):
    """A slow commit (a busy machine): fills whose windows end while it runs wait for it and share the next
    transaction, rather than each opening one beside it."""
    release = asyncio.Event()
    opened = transactions.open

    @asynccontextmanager
    async def slow_first_commit() -> AsyncIterator[UnitOfWork[Deps]]:
        first = not transactions.runs
        async with opened() as uow:
            yield uow
            if first:
                await release.wait()

    sizes: list[int] = []
    group = GroupCommit(slow_first_commit, 0.01, 10, sizes.append, behind_commit=behind_commit)
    fills = [asyncio.create_task(group.run(transactions.work, "fill 1"))]
    for name in ("fill 2", "fill 3"):
        await asyncio.sleep(0.05)  # each past the window of the one before
        fills.append(asyncio.create_task(group.run(transactions.work, name)))
    await asyncio.sleep(0.05)
    release.set()

    answers = await asyncio.gather(*fills)

    assert answers == [f"answer to fill {n}" for n in (1, 2, 3)]
    assert sorted(transactions.runs) == runs
    assert sorted(sizes) == sorted(len(run) for run in runs)
