"""An in-memory ``SlaStore`` for unit tests of sla's handlers: the statements the handlers use, over dicts
and lists, with the same effects (upserts, ``ON CONFLICT DO NOTHING``, which clocks an update touches)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts.sla_policy import Policy
from leadflow_kit.platform import Platform
from leadflow_kit.webhooks import WebhookMetrics
from leadflow_sla.bootstrap import Deps
from leadflow_sla.domain import LeadChanges, LeadFacts, Notice, SlaClock, TimelineEvent, TimelineRecord
from leadflow_sla.metrics import SlaMetrics
from leadflow_sla.notify import Notification
from leadflow_sla.settings import Settings
from leadflow_sla.store import SlaStore


class FakeSlaStore(SlaStore):
    def __init__(
        self, policies: list[Policy] | None = None, calendars: dict[str, dict[str, Any]] | None = None
    ) -> None:
        self.policies = policies or []
        self.calendars = calendars or {}
        self.timelines: dict[str, list[TimelineEvent]] = {}
        self.leads: dict[str, LeadFacts] = {}
        self.clocks: dict[str, SlaClock] = {}  # in the order they were inserted
        self.notices: dict[tuple[str, str], Notice] = {}
        self.notifications: list[Notification] = []
        self._ids = itertools.count(1)
        self.policy_reads = 0
        self.clock_inserts = 0

    # -- the consumer ---------------------------------------------------------------------

    async def record_and_lock(
        self, session: AsyncSession, records: list[TimelineRecord]
    ) -> tuple[dict[str, LeadFacts], set[int]]:
        firsts = set()
        for position, record in enumerate(records):
            earlier = [e for e in self.timelines.get(record.subject, []) if e.stage == record.stage and (
                record.earlier_event_type_prefix is None
                or str(e.details.get("event_type", "")).startswith(record.earlier_event_type_prefix))]
            recorded = []
            for lead_id in record.lead_ids:
                timeline = self.timelines.setdefault(lead_id, [])
                if any(e.event_id == record.event_id for e in timeline):
                    continue
                timeline.append(TimelineEvent(next(self._ids), record.event_id, record.event_type, record.stage,
                                              record.source, record.at, record.lead_captured_at, record.details))
                recorded.append(lead_id)
            if record.measured and record.subject in recorded and not earlier:
                firsts.add(position)
            self.leads.setdefault(record.facts_lead_id,
                                  LeadFacts(record.facts_lead_id, captured_at=record.lead_captured_at))
        return {r.facts_lead_id: self.leads[r.facts_lead_id] for r in records}, firsts

    async def update_leads(self, session: AsyncSession, changes: Mapping[str, LeadChanges]) -> None:
        for lead_id, lead_changes in changes.items():
            self.leads[lead_id] = replace(self.leads[lead_id], **lead_changes)

    async def merge_into(
        self, session: AsyncSession, fill_lead_id: str, captured_at: datetime | None, lead_id: str
    ) -> None:
        existing = self.leads.get(fill_lead_id)
        self.leads[fill_lead_id] = (replace(existing, merged_into=lead_id) if existing is not None
                                    else LeadFacts(fill_lead_id, captured_at=captured_at, merged_into=lead_id))

    async def policies_and_calendars(
        self, session: AsyncSession, rep_ids: Sequence[str]
    ) -> tuple[list[Policy], dict[str, dict[str, Any]]]:
        self.policy_reads += 1
        calendars = {rep_id: self.calendars[rep_id] for rep_id in rep_ids if rep_id in self.calendars}
        return list(self.policies), (calendars if self.policies else {})

    async def insert_clocks(self, session: AsyncSession, clocks: Sequence[SlaClock]) -> None:
        self.clock_inserts += 1
        for clock in clocks:
            if clock.id not in self.clocks and all(c.routed_event_id != clock.routed_event_id
                                                   for c in self.clocks.values()):
                self.clocks[clock.id] = clock

    async def supersede_older_clocks(self, session: AsyncSession, lead_id: str) -> None:
        running = [c for c in self.clocks.values() if c.lead_id == lead_id and c.status == "open"]
        if not running:
            return
        # The latest by start time; of clocks started together, the one inserted last.
        latest = max(enumerate(running), key=lambda pair: (pair[1].started_at, pair[0]))[1]
        for clock in running:
            if clock.id != latest.id:
                self.clocks[clock.id] = replace(clock, status="superseded", next_fire_at=None,
                                                stopped_at=latest.started_at, stop_reason="rerouted")

    async def stop_clocks(self, session: AsyncSession, lead_id: str, at: datetime, reason: str) -> list[SlaClock]:
        stopped = []
        for clock in list(self.clocks.values()):
            if clock.lead_id == lead_id and clock.status == "open" and clock.started_at <= at:
                self.clocks[clock.id] = replace(clock, status="stopped", stopped_at=at, stop_reason=reason,
                                                next_fire_at=None)
                stopped.append(self.clocks[clock.id])
        return stopped

    # -- the scheduler ----------------------------------------------------------------------

    async def claim_due_clocks(self, session: AsyncSession, now: datetime, limit: int) -> list[SlaClock]:
        due = [c for c in self.clocks.values() if c.next_fire_at is not None and c.next_fire_at <= now]
        return sorted(due, key=lambda c: c.next_fire_at or now)[:limit]

    async def record_notices(self, session: AsyncSession, notices: Sequence[Notice]) -> dict[tuple[str, str], int]:
        before = {lead_id: sum(1 for n in self.notices.values() if n.lead_id == lead_id and n.kind == "breach")
                  for lead_id in {n.lead_id for n in notices}}
        recorded: dict[tuple[str, str], int] = {}
        for notice in notices:
            if (notice.clock_id, notice.kind) not in self.notices:
                self.notices[(notice.clock_id, notice.kind)] = notice
                recorded[(notice.clock_id, notice.kind)] = before[notice.lead_id]
        return recorded

    async def update_clock(self, session: AsyncSession, clock_id: str, changes: Mapping[str, Any]) -> None:
        self.clocks[clock_id] = replace(self.clocks[clock_id], **changes)

    async def update_fired_clocks(self, session: AsyncSession, changes: Mapping[str, Mapping[str, Any]]) -> None:
        for clock_id, changed in changes.items():
            await self.update_clock(session, clock_id, changed)

    async def enqueue_notifications(
        self, session: AsyncSession, notifications: Sequence[Notification], now: datetime
    ) -> None:
        self.notifications += notifications

    async def open_clock_counts(self, session: AsyncSession) -> dict[str, int]:
        counts: dict[str, int] = {}
        for clock in self.clocks.values():
            if clock.status == "open":
                counts[clock.tier] = counts.get(clock.tier, 0) + 1
        return counts

    # -- reads ------------------------------------------------------------------------------

    async def read_one_snapshot(self, session: AsyncSession) -> None:
        pass  # one process's dicts: every read sees the same state

    async def timeline_events(self, session: AsyncSession, lead_id: str) -> list[TimelineEvent]:
        return sorted(self.timelines.get(lead_id, []), key=lambda e: e.at)

    async def lead_facts(self, session: AsyncSession, lead_id: str) -> LeadFacts | None:
        return self.leads.get(lead_id)

    async def clocks_of_lead(self, session: AsyncSession, lead_id: str) -> list[SlaClock]:
        return sorted((c for c in self.clocks.values() if c.lead_id == lead_id), key=lambda c: c.started_at)

    # -- what a test asks ---------------------------------------------------------------------

    def clocks_of(self, lead_id: str, status: str | None = None) -> list[SlaClock]:
        return [c for c in self.clocks.values() if c.lead_id == lead_id and status in (None, c.status)]


def fake_deps(store: FakeSlaStore | None = None, **settings: Any) -> Deps:
    """sla's Deps over the fake store; nothing connects."""
    app_settings = Settings(environment="test", **settings)
    platform = Platform.build(app_settings)
    registry = platform.metrics.registry
    return Deps(platform=platform, settings=app_settings, metrics=SlaMetrics(registry), store=store or FakeSlaStore(),
                webhook_metrics=WebhookMetrics(registry))
