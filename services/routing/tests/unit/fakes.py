"""An in-memory ``RoutingStore`` for handler unit tests: the routing path's reads and writes over
dicts, with the same effects as its SQL (counters, credits, the round-robin cursor, the lead's state)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import SlaPolicyTerms
from leadflow_kit.platform import Platform
from leadflow_kit.webhooks import WebhookMetrics
from leadflow_routing import domain
from leadflow_routing.bootstrap import Deps
from leadflow_routing.metrics import RoutingMetrics
from leadflow_routing.notifications.messages import Recipient
from leadflow_routing.notifications.store import NewNotification, NotificationStore
from leadflow_routing.settings import Settings
from leadflow_routing.sla_replica_store import ReplicaSnapshot, SlaReplicaStore
from leadflow_routing.sla_states import SlaSeen
from leadflow_routing.store import (
    DecisionsWrite,
    LeadsClaim,
    ParkedScored,
    RoutingStore,
    RulesetCache,
    RulesetKey,
    ScoredInput,
    StoredLead,
    Touch,
    TriedRoster,
    UpsertedBatch,
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
        self.sla_replica = FakeSlaReplicaStore()
        self.decision_writes = 0  # batches' WRITE_DECISIONS statements
        # Team and rep ids another transaction holds (their leads park), and what was parked.
        self.busy_rows: set[str] = set()
        self.parked_events: list[ParkedScored] = []

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
        self, session: AsyncSession, lead_ids: Sequence[str], original_ids: Sequence[str], *, parked: bool = True
    ) -> LeadsClaim:
        leads = [self.leads[i] for i in [*lead_ids, *original_ids] if i in self.leads]
        waiting = {p.event.data.lead_id for p in self.parked_events} if parked else set()
        return LeadsClaim({lead.id: lead.owner_rep_id for lead in leads if lead.owner_rep_id is not None},
                          frozenset(waiting & {*lead_ids, *original_ids}), await self.active_ruleset_key(session))

    async def try_lock_roster(
        self, session: AsyncSession, team_ids: Sequence[str], rep_ids: Sequence[str]
    ) -> TriedRoster:
        self.claimed.append((list(team_ids), list(rep_ids), False))  # each try: the claim, as the tests read it
        teams = {t: self.teams[t] for t in team_ids if t in self.teams and t not in self.busy_rows}
        wanted = [r for r in self.reps.values() if r.id in rep_ids or r.team_id in teams]
        locked = {r.id: r for r in wanted if r.id not in self.busy_rows}
        self.notifications.roster_reads.append(sorted(locked))
        return TriedRoster(teams, {t for t in team_ids if t in self.teams and t in self.busy_rows}, locked,
                           {r.id: r.team_id for r in wanted if r.id in self.busy_rows},
                           self.notifications.told_through_channels(locked))

    async def savepoint(self, session: AsyncSession) -> None:
        pass

    async def rollback_to_savepoint(self, session: AsyncSession) -> None:
        pass

    async def park_scored(self, session: AsyncSession, parked: Sequence[ParkedScored], now: datetime) -> None:
        self.parked_events.extend(parked)

    async def lock_leads(self, session: AsyncSession, lead_ids: Sequence[str]) -> list[StoredLead]:
        return [self.leads[i] for i in sorted(lead_ids) if i in self.leads]

    async def lock_routing_rows(
        self, session: AsyncSession, team_ids: Sequence[str], rep_ids: Sequence[str], *, managers: bool
    ) -> domain.Roster:
        self.claimed.append((list(team_ids), list(rep_ids), managers))
        roster = domain.Roster(team_ids=set(team_ids))
        roster.teams.update((t, self.teams[t]) for t in team_ids if t in self.teams)
        named = set(rep_ids) | {self.teams[t].manager_rep_id or "" for t in team_ids if managers and t in self.teams}
        roster.reps.update((r.id, r) for r in self.reps.values() if r.id in named or r.team_id in team_ids)
        return roster

    async def upsert_scored_leads(
        self, session: AsyncSession, leads: Sequence[ScoredInput], original_ids: Sequence[str], now: datetime,
        *, lifecycle_types: Sequence[str] = (),
    ) -> UpsertedBatch:
        before = {i.scored.lead_id: self.leads.get(i.scored.lead_id) for i in leads}
        originals = {o: (self.leads[o].owner_rep_id, self.leads[o].team_id) for o in original_ids if o in self.leads}
        for i in leads:
            known = before[i.scored.lead_id]
            self.leads[i.scored.lead_id] = replace(known, scored=i.scored) if known is not None else StoredLead(
                i.scored.lead_id, i.scored, i.correlation_id, i.lead_captured_at, "new", None, None, 0)
        first_mql = frozenset(i.scored.lead_id for i in leads if i.mql and i.scored.lead_id not in self.mql_notified)
        self.mql_notified |= {i.scored.lead_id for i in leads if i.mql}
        return UpsertedBatch({i: self.leads[i] for i in before}, originals, await self.active_ruleset_key(session),
                             first_mql, bool(self.subscribed & set(lifecycle_types)))

    async def write_decisions(self, session: AsyncSession, write: DecisionsWrite) -> None:
        self.decision_writes += 1
        for rep in write.reps:
            self.reps[rep.id] = rep
        for team_id, turns in write.turns.items():
            team = self.teams[team_id]
            self.teams[team_id] = replace(team, rr_last_rep_id=turns.rr_last_rep_id or team.rr_last_rep_id)
            self.team_assignments[team_id] = self.team_assignments.get(team_id, 0) + turns.count
        for assignment in write.assignments:
            self._write_lead(assignment)
        for lead_id in write.handoff_cleared:
            self.leads[lead_id] = replace(self.leads[lead_id], handoff_after=None)

    def _write_lead(self, write: domain.AssignmentWrite) -> None:
        decision = write.decision
        self.leads[write.lead_id] = replace(
            self.leads[write.lead_id], status=write.status, owner_rep_id=decision.rep.id if decision.rep else None,
            team_id=decision.team_id)
        self.queues[write.lead_id] = decision.queue
        self.assignments.append(write)

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
            self.reps[rep_id] = domain.changed_rep(self.reps[rep_id], change, write.at)
        if write.turn_team_id is not None and write.turn_team_id in self.teams:
            team = self.teams[write.turn_team_id]
            self.teams[team.id] = replace(team, rr_last_rep_id=write.rr_last_rep_id or team.rr_last_rep_id)
            self.team_assignments[team.id] = self.team_assignments.get(team.id, 0) + 1
        self._write_lead(write)

    async def hold_in_nurture_until(self, session: AsyncSession, lead_id: str, until: datetime | None) -> None:
        self.leads[lead_id] = replace(self.leads[lead_id], handoff_after=until)

    async def record_owner_kept(
        self, session: AsyncSession, lead: StoredLead, reason: str, audit: Mapping[str, Any], now: datetime
    ) -> None:
        self.owner_kept.append((lead.id, reason, audit))

    async def enqueue_webhook(self, session: AsyncSession, webhook: WebhookRequest) -> None:
        self.webhooks.append(webhook)

    async def enqueue_webhooks(self, session: AsyncSession, webhooks: Sequence[WebhookRequest],
                               hand_off: object = None) -> None:
        self.webhooks += webhooks

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

    async def webhook_wanted_now(self, db: Any, event_types: Sequence[str]) -> bool:
        return bool(self.subscribed & set(event_types))

    async def leads_for_webhook(self, session: AsyncSession, lead_ids: Collection[str]) -> dict[str, StoredLead]:
        return {lead_id: self.leads[lead_id] for lead_id in lead_ids if lead_id in self.leads}

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
        # The rep ids each read of the reps' channels asked for, and those a scored batch's claim read with
        # the reps' locks (``try_lock_roster``).
        self.recipient_reads: list[list[str]] = []
        self.roster_reads: list[list[str]] = []

    async def recipients_of(self, session: AsyncSession, rep_ids: Collection[str]) -> dict[str, Recipient]:
        if not rep_ids:
            return {}
        self.recipient_reads.append(sorted(rep_ids))
        return self.told_through_channels(rep_ids)

    def told_through_channels(self, rep_ids: Collection[str]) -> dict[str, Recipient]:
        found = {rep_id: self.recipients[rep_id] for rep_id in rep_ids
                 if rep_id in self.recipients and self.recipients[rep_id].channels}
        return {rep_id: recipient.model_copy(update={"team_id": self.routing.reps[rep_id].team_id})
                if rep_id in self.routing.reps else recipient for rep_id, recipient in found.items()}

    async def enqueue(self, session: AsyncSession, notes: Sequence[NewNotification]) -> None:
        seen = {(n.cause_event_id, n.content.rep_id, n.channel) for n in self.queued}
        self.queued += [n for n in notes if (n.cause_event_id, n.content.rep_id, n.channel) not in seen]


class FakeSlaReplicaStore(SlaReplicaStore):
    """The replica of sla's policies and reps' calendars, newest record per key (as the upserts keep it)."""

    def __init__(self) -> None:
        self.policies: dict[str, tuple[SlaPolicyTerms | None, datetime]] = {}
        self.calendars: dict[str, tuple[dict[str, Any] | None, datetime]] = {}
        self.reads = 0

    async def save_policy(
        self, session: AsyncSession, policy_id: str, terms: SlaPolicyTerms | None, changed_at: datetime
    ) -> None:
        if policy_id not in self.policies or self.policies[policy_id][1] <= changed_at:
            self.policies[policy_id] = (terms, changed_at)

    async def save_calendar(
        self, session: AsyncSession, rep_id: str, business_hours: dict[str, Any] | None, changed_at: datetime
    ) -> None:
        if rep_id not in self.calendars or self.calendars[rep_id][1] <= changed_at:
            self.calendars[rep_id] = (business_hours, changed_at)

    async def snapshot(self, session: AsyncSession, tiers: Sequence[str], rep_ids: Sequence[str]) -> ReplicaSnapshot:
        self.reads += 1
        live = sorted((policy_id, terms) for policy_id, (terms, _) in self.policies.items()
                      if terms is not None and terms.tier in tiers and terms.active)
        hours: dict[str, dict[str, Any]] = {}
        for rep_id in rep_ids:
            calendar = self.calendars.get(rep_id, (None, None))[0]
            if calendar is not None:
                hours[rep_id] = calendar
        return ReplicaSnapshot(replicated=bool(self.policies), policies=live, owner_hours=hours)


def fake_deps(store: FakeRoutingStore | None = None, **settings: Any) -> Deps:
    """Routing's deps over a fake store; nothing here connects."""
    service_settings = Settings(environment="test", **settings)
    platform = Platform.build(service_settings)
    store = store or FakeRoutingStore()
    return Deps(platform=platform, settings=service_settings, metrics=RoutingMetrics(platform.metrics.registry),
                store=store, rulesets=RulesetCache(), webhook_metrics=WebhookMetrics(platform.metrics.registry),
                notifications=store.notifications, sla_replica=store.sla_replica)
