"""Fires SLA warnings and breaches when their time comes, exactly once per clock and threshold.

Each tick reads only clocks whose ``next_fire_at`` has passed (a partial index holds just the
clocks with something left to fire), so 100,000 open clocks cost nothing until they fall due.
Due rows are claimed with ``FOR UPDATE SKIP LOCKED``: replicas split the work instead of
doubling it, and the ``lead.sla`` event is written to the outbox in the same transaction that
marks the threshold as fired. The ``sla_notice`` primary key backs that up in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import Event, LeadSla, new_event
from leadflow_kit.clock import Clock
from leadflow_kit.db import Database, after_commit, driver_connection
from leadflow_kit.failures import is_infrastructure_error
from leadflow_kit.outbox import Outbox
from leadflow_sla import domain
from leadflow_sla.metrics import SlaMetrics
from leadflow_sla.tables import sla_clock

log = logging.getLogger(__name__)

_CLAIM_DUE = """
SELECT * FROM sla_clock WHERE next_fire_at <= $1 ORDER BY next_fire_at LIMIT $2 FOR UPDATE SKIP LOCKED
"""
_BREACHES_OF_LEAD = "SELECT count(*) FROM sla_notice WHERE lead_id = $1 AND kind = 'breach'"
_RECORD_NOTICE = """
INSERT INTO sla_notice (clock_id, kind, event_id, lead_id, threshold_at, emitted_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING
RETURNING event_id
"""

# Called inside the firing transaction (event, the clock's target seconds), to enqueue notifications with it.
Notify = Callable[[AsyncSession, Event[LeadSla], int], Awaitable[Any]]


@dataclass(frozen=True)
class Fired:
    clock_id: str
    lead_id: str
    kind: Literal["warning", "breach"]
    event_id: str


class SlaScheduler:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        clock: Clock,
        metrics: SlaMetrics,
        *,
        batch_size: int = 200,
        notify: Notify | None = None,
        source: str = "sla",
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.clock = clock
        self.metrics = metrics
        self.batch_size = batch_size
        self.notify = notify
        self.source = source

    async def run(self, interval_seconds: float, stopping: asyncio.Event | None = None) -> None:
        stopping = stopping or asyncio.Event()
        while not stopping.is_set():
            try:
                await self.fire_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("SLA scheduler tick failed (%s: %s); retrying next tick", type(exc).__name__, exc,
                            exc_info=not is_infrastructure_error(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), interval_seconds)

    async def fire_due(self) -> list[Fired]:
        """Fire every threshold that has passed; returns what this replica fired."""
        fired: list[Fired] = []
        while True:
            batch, claimed = await self._fire_batch()
            fired += batch
            if claimed < self.batch_size:
                return fired

    async def _fire_batch(self) -> tuple[list[Fired], int]:
        now = self.clock.now()
        fired: list[Fired] = []
        async with self.db.transaction() as session:
            # Plain SQL on the session's connection: a firing runs once per clock and threshold, so about
            # twice per lead left untouched, and a SQLAlchemy statement costs about six times the CPU.
            conn = await driver_connection(session)
            due = await conn.fetch(_CLAIM_DUE, now, self.batch_size)
            for clock in due:
                fired += await self._fire_clock(session, conn, clock, now)
        return fired, len(due)

    async def _fire_clock(
        self, session: AsyncSession, conn: asyncpg.Connection, clock: asyncpg.Record, now: datetime
    ) -> list[Fired]:
        fired: list[Fired] = []
        warned, breached = clock["warned_at"] is not None, clock["breached_at"] is not None
        changes: dict[str, Any] = {}
        for kind in domain.due_thresholds(now, clock["warning_at"], clock["due_at"], warned, breached):
            breach_number = 0
            if kind == "breach":
                # Counted from the notices rather than kept on the lead row: the scheduler never waits for a
                # lock the consumer may hold (it holds lead rows, then clock rows; the scheduler holds clocks).
                breach_number = 1 + await conn.fetchval(_BREACHES_OF_LEAD, clock["lead_id"])
            data = LeadSla(
                lead_id=clock["lead_id"], clock_id=clock["id"], kind=kind, tier=clock["tier"],
                owner_rep_id=clock["owner_rep_id"], team_id=clock["team_id"], started_at=clock["started_at"],
                due_at=clock["due_at"], breach_count=breach_number,
                escalate=kind == "breach" and domain.should_escalate(breach_number, clock["breach_limit"]),
            )
            sla_event = new_event(data, source=self.source, subject=clock["lead_id"],
                                  correlation_id=clock["correlation_id"],
                                  lead_captured_at=clock["lead_captured_at"], time=now)
            threshold_at = clock["warning_at"] if kind == "warning" else clock["due_at"]
            recorded = await conn.fetchval(_RECORD_NOTICE, clock["id"], kind, sla_event.id, clock["lead_id"],
                                           threshold_at, now)
            if recorded is None:
                log.error("SLA %s for clock %s was already emitted; not emitting again", kind, clock["id"])
                continue
            await self.outbox.add(session, sla_event)
            if self.notify is not None:
                await self.notify(session, sla_event, clock["target_seconds"])
            if kind == "warning":
                changes["warned_at"] = now
                warned = True
            else:
                changes.update(breached_at=now, breach_number=breach_number)
                breached = True
            fired.append(Fired(clock["id"], clock["lead_id"], kind, sla_event.id))
            counter = self.metrics.warnings if kind == "warning" else self.metrics.breaches
            labels = (clock["tier"], domain.team_label(clock["team_id"]))
            after_commit(session, counter.labels(*labels).inc)
            log.info("SLA %s for lead %s (tier %s, due %s)", kind, clock["lead_id"], clock["tier"], clock["due_at"])
        changes["next_fire_at"] = domain.next_fire_at(clock["warning_at"], clock["due_at"], warned, breached)
        # Sorted, so each set of fired thresholds is one statement text in asyncpg's prepared-statement cache.
        columns = sorted(changes)
        assignments = ", ".join(f"{column} = ${n}" for n, column in enumerate(columns, start=2))
        await conn.execute(f"UPDATE sla_clock SET {assignments} WHERE id = $1", clock["id"],
                           *(changes[c] for c in columns))
        return fired

    async def refresh_open_clocks(self) -> dict[str, int]:
        async with self.db.transaction() as session:
            rows = (
                await session.execute(
                    select(sla_clock.c.tier, func.count())
                    .where(sla_clock.c.status == "open")
                    .group_by(sla_clock.c.tier)
                )
            ).all()
        counts: dict[str, int] = dict.fromkeys(domain.TIERS, 0)
        counts.update({row[0]: int(row[1]) for row in rows})
        for tier, count in counts.items():
            self.metrics.open_clocks.labels(tier).set(count)
        return counts
