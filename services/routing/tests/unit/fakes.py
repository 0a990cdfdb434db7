"""An in-memory ``RoutingStore`` for handler unit tests: the routing path's reads and writes over
dicts, with the same effects as its SQL (counters, credits, the round-robin cursor, the lead's state)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import LeadScored
from leadflow_kit.platform import Platform
from leadflow_kit.webhooks import WebhookMetrics
from leadflow_routing import domain
from leadflow_routing.bootstrap import Deps
from leadflow_routing.metrics import RoutingMetrics
from leadflow_routing.notifications.messages import Recipient
from leadflow_routing.notifications.store import NewNotification, NotificationStore, StoredLeadNotice
from leadflow_routing.settings import Settings
from leadflow_routing.sla_states import SlaSeen
from leadflow_routing.store import (
    LifecycleMarks,
    RoutingStore,
    RulesetCache,
    RulesetKey,
    StoredLead,
    Touch,
    UpsertedLead,
    WebhookRequest,
)

RULESET_CREATED_AT = datetime(2026, 1, 1, tzinfo=UTC)


class FakeRoutingStore(RoutingStore):
    def __init__(self) -> None:
        self.reps: dict[str, domain.Rep] = {}
        self.teams: dict[str, domain.Team] = {}
        self.team_assignments: dict[str, int] = {}
        self.rulesets: dict[int, domain.RuleSet] = {}
        self.active_version: int | None = None
        self.leads: dict[str, StoredLead] = {}
        self.queues: dict[str, str | None] = {}  # lead id -> the queue it waits in
        self.assignments: list[domain.AssignmentWrite] = []
        self.owner_kept: list[tuple[str, str, Mapping[str, Any]]] = []
        self.webhooks: list[WebhookRequest] = []
        self.subscribed: set[str] = set()  # the webhook types some subscription names
        self.mql_notified: set[str] = set()
        self.touches: list[Touch] = []
        # Each batch's up-front lock of rows: (team ids, rep ids, with managers).
        self.claimed: list[tuple[list[str], list[str], bool]] = []
        self.notifications = FakeNotificationStore(self)
        self.created_queues: set[str] = set()
        self.sla_seen: dict[str, SlaSeen] = {}

    # -- arranging --

    def add_team(self, team: domain.Team, *reps: domain.Rep) -> None:
        self.teams[team.id] = team
        for rep in reps:
            self.reps[rep.id] = replace(rep, team_id=team.id)

    def activate(self, *rules: domain.Rule, fallback_queue: str | None = None,
                 handoff: domain.Handoff = "first_fill") -> domain.RuleSet:
        version = max(self.rulesets, default=0) + 1
        self.rulesets[version] = domain.RuleSet(version, tuple(rules), fallback_queue, handoff)
        self.active_version = version
        return self.rulesets[version]

    # -- routing --

    async def lock_leads_for_routing(
        self, session: AsyncSession, lead_ids: Sequence[str], original_ids: Sequence[str]
    ) -> set[str]:
        leads = [self.leads[i] for i in [*lead_ids, *original_ids] if i in self.leads]
        return {lead.owner_rep_id for lead in leads if lead.owner_rep_id is not None}

    async def lock_leads(self, session: AsyncSession, lead_ids: Sequence[str]) -> list[StoredLead]:
        return [self.leads[i] for i in sorted(lead_ids) if i in self.leads]

    async def lock_routing_rows(
        self, session: AsyncSession, team_ids: Sequence[str], rep_ids: Sequence[str], *, managers: bool
    ) -> None:
        self.claimed.append((list(team_ids), list(rep_ids), managers))

    async def upsert_scored_lead(
        self, session: AsyncSession, scored: LeadScored, *, correlation_id: str | None,
        lead_captured_at: datetime | None, now: datetime, duplicate_of: str | None,
    ) -> UpsertedLead:
        known = self.leads.get(scored.lead_id)
        lead = replace(known, scored=scored) if known is not None else StoredLead(
            scored.lead_id, scored, correlation_id, lead_captured_at, "new", None, None, 0)
        self.leads[lead.id] = lead
        original = self.leads.get(duplicate_of) if duplicate_of else None
        return UpsertedLead(lead, original.owner_rep_id if original else None,
                            original.team_id if original else None, await self.active_ruleset_key(session))

    async def lock_lead(self, session: AsyncSession, lead_id: str) -> StoredLead | None:
        return self.leads.get(lead_id)

    async def set_breach_count(self, session: AsyncSession, lead_id: str, breach_count: int) -> None:
        self.leads[lead_id] = replace(self.leads[lead_id], breach_count=breach_count)

    async def load_rep(self, session: AsyncSession, rep_id: str) -> domain.Rep | None:
        return self.reps.get(rep_id)

    async def lock_rep(self, session: AsyncSession, rep_id: str) -> domain.Rep | None:
        return self.reps.get(rep_id)

    async def team_with_reps(
        self, session: AsyncSession, team_id: str, *, lock: bool
    ) -> tuple[domain.Team | None, list[domain.Rep]]:
        team = self.teams.get(team_id)
        if team is None:
            return None, []
        return team, sorted((r for r in self.reps.values() if r.team_id == team_id), key=lambda r: r.id)

    async def active_ruleset_key(self, session: AsyncSession) -> RulesetKey | None:
        return RulesetKey(self.active_version, RULESET_CREATED_AT) if self.active_version is not None else None

    async def ruleset_version(self, session: AsyncSession, version: int) -> domain.RuleSet | None:
        return self.rulesets.get(version)

    async def active_ruleset(self, session: AsyncSession) -> domain.RuleSet | None:
        return self.rulesets.get(self.active_version) if self.active_version is not None else None

    async def write_assignment(self, session: AsyncSession, write: domain.AssignmentWrite) -> None:
        for rep_id, change in write.rep_changes.items():
            self.reps[rep_id] = _changed(self.reps[rep_id], change, write.at)
        if write.turn_team_id is not None and write.turn_team_id in self.teams:
            team = self.teams[write.turn_team_id]
            self.teams[team.id] = replace(team, rr_last_rep_id=write.rr_last_rep_id or team.rr_last_rep_id)
            self.team_assignments[team.id] = self.team_assignments.get(team.id, 0) + 1
        decision = write.decision
        self.leads[write.lead_id] = replace(
            self.leads[write.lead_id], status=write.status, owner_rep_id=decision.rep.id if decision.rep else None,
            team_id=decision.team_id)
        self.queues[write.lead_id] = decision.queue
        self.assignments.append(write)

    async def hold_in_nurture_until(self, session: AsyncSession, lead_id: str, until: datetime | None) -> None:
        self.leads[lead_id] = replace(self.leads[lead_id], handoff_after=until)

    async def record_owner_kept(
        self, session: AsyncSession, lead: StoredLead, reason: str, audit: Mapping[str, Any], now: datetime
    ) -> None:
        self.owner_kept.append((lead.id, reason, audit))

    async def enqueue_webhook(self, session: AsyncSession, webhook: WebhookRequest) -> None:
        self.webhooks.append(webhook)

    # -- queues people work --

    async def record_sla_seen(self, session: AsyncSession, seen: Sequence[SlaSeen]) -> None:
        for row in seen:
            if row.lead_id not in self.sla_seen or self.sla_seen[row.lead_id].at <= row.at:
                self.sla_seen[row.lead_id] = row

    async def lead_queue(self, session: AsyncSession, lead_id: str) -> str | None:
        return self.queues.get(lead_id)

    async def load_team(self, session: AsyncSession, team_id: str) -> domain.Team | None:
        return self.teams.get(team_id)

    async def queue_exists(self, session: AsyncSession, queue_id: str) -> bool:
        return queue_id in self.created_queues

    async def webhook_wanted(self, session: AsyncSession, event_types: Sequence[str]) -> bool:
        return bool(self.subscribed & set(event_types))

    async def mark_lifecycle(
        self, session: AsyncSession, lead_id: str, now: datetime, *, mql: bool, event_types: Sequence[str]
    ) -> LifecycleMarks | None:
        lead = self.leads.get(lead_id)
        if lead is None:
            return None
        first_mql = mql and lead_id not in self.mql_notified
        if mql:
            self.mql_notified.add(lead_id)
        return LifecycleMarks(lead.team_id, first_mql, bool(self.subscribed & set(event_types)))

    async def lead_for_webhook(self, session: AsyncSession, lead_id: str) -> StoredLead | None:
        return self.leads.get(lead_id)

    # -- CRM touches --

    async def find_touch(self, session: AsyncSession, integration: str | None, external_id: str) -> Touch | None:
        return next((t for t in self.touches if t.integration == integration and t.external_id == external_id), None)

    async def insert_touch(self, session: AsyncSession, touch: Touch) -> None:
        self.touches.append(touch)

    async def close_lead(self, session: AsyncSession, lead_id: str, owner_rep_id: str | None, now: datetime) -> None:
        self.leads[lead_id] = replace(self.leads[lead_id], status="closed")
        if owner_rep_id is not None:
            rep = self.reps[owner_rep_id]
            self.reps[owner_rep_id] = replace(rep, open_leads=max(rep.open_leads - 1, 0))


class FakeNotificationStore(NotificationStore):
    """Reps' channels and the notifications queued, over the routing fake's leads and reps."""

    def __init__(self, routing: FakeRoutingStore) -> None:
        self.routing = routing
        self.recipients: dict[str, Recipient] = {}
        self.queued: list[NewNotification] = []
        # The rep ids each read of the reps' channels asked for.
        self.recipient_reads: list[list[str]] = []

    async def recipients_of(self, session: AsyncSession, rep_ids: Collection[str]) -> dict[str, Recipient]:
        self.recipient_reads.append(sorted(rep_ids))
        found = {rep_id: self.recipients[rep_id] for rep_id in rep_ids
                 if rep_id in self.recipients and self.recipients[rep_id].channels}
        return {rep_id: recipient.model_copy(update={"team_id": self.routing.reps[rep_id].team_id})
                if rep_id in self.routing.reps else recipient for rep_id, recipient in found.items()}

    async def lead_for_notice(self, session: AsyncSession, lead_id: str) -> StoredLeadNotice | None:
        lead = self.routing.leads.get(lead_id)
        return None if lead is None else StoredLeadNotice(lead.scored, lead.status, lead.owner_rep_id)

    async def enqueue(self, session: AsyncSession, notes: Sequence[NewNotification]) -> None:
        seen = {(n.cause_event_id, n.content.rep_id, n.channel) for n in self.queued}
        self.queued += [n for n in notes if (n.cause_event_id, n.content.rep_id, n.channel) not in seen]


def _changed(rep: domain.Rep, change: domain.RepChange, at: datetime) -> domain.Rep:
    """What WRITE_DECISION does to one rep's row."""
    if change.counted_on is not None:
        today = rep.assigned_today + 1 if rep.assigned_day == change.counted_on else 1
        rep = replace(rep, open_leads=rep.open_leads + 1, assigned_today=today, assigned_day=change.counted_on,
                      last_assigned_at=at)
    elif change.released:
        rep = replace(rep, open_leads=max(rep.open_leads - 1, 0))
    return replace(rep, rr_credit=change.credit) if change.credit is not None else rep


def fake_deps(store: FakeRoutingStore | None = None, **settings: Any) -> Deps:
    """Routing's deps over a fake store; nothing here connects."""
    service_settings = Settings(environment="test", **settings)
    platform = Platform.build(service_settings)
    store = store or FakeRoutingStore()
    return Deps(platform=platform, settings=service_settings, metrics=RoutingMetrics(platform.metrics.registry),
                store=store, rulesets=RulesetCache(), webhook_metrics=WebhookMetrics(platform.metrics.registry),
                notifications=store.notifications)
