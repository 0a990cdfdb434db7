"""Fires SLA warnings and breaches when their time comes, exactly once per clock and threshold.

Each round reads only clocks whose ``next_fire_at`` has passed (a partial index holds just the
clocks with something left to fire), so 100,000 open clocks cost nothing until they fall due.
Due rows are claimed with ``FOR UPDATE SKIP LOCKED``: replicas split the work instead of
doubling it, and the ``lead.sla`` event is written to the outbox in the same transaction that
marks the threshold as fired. The ``sla_notice`` primary key backs that up in the database.
The app runs ``fire_due`` and ``refresh_open_clocks`` as periodic loops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leadflow_kit.uow import unit_of_work
from leadflow_sla import handlers
from leadflow_sla.domain import Fired

if TYPE_CHECKING:
    from leadflow_sla.bootstrap import Deps


class SlaScheduler:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def fire_due(self) -> list[Fired]:
        """Fire every threshold that has passed, a batch of clocks per transaction; returns what this
        replica fired."""
        batch_size = self.deps.settings.scheduler_batch_size
        fired: list[Fired] = []
        while True:
            async with unit_of_work(self.deps.platform, self.deps) as uow:
                batch, claimed = await handlers.fire_due_clocks(uow, batch_size)
            fired += batch
            if claimed < batch_size:
                return fired

    async def refresh_open_clocks(self) -> dict[str, int]:
        async with unit_of_work(self.deps.platform, self.deps) as uow:
            return await handlers.refresh_open_clocks(uow)
