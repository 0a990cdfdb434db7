"""Routing's use cases over one unit of work: route a scored lead, re-route on SLA breach, record a
CRM touch. Decisions are made by ``domain``; every read and write goes through ``uow.deps.store``.

There is no lock shared by every decision: a batch of events first locks, in one order everywhere
(its stored leads, then teams, then reps, each by id), every row its decisions may change, found by
reading without locks (``claims``). A scored batch takes its teams and reps without waiting
(``hold_rows``): the leads whose rows another transaction holds past a short grace are parked, and
routed in order once those rows are free (``route_parked_leads``, run by ``parking``). Batches of
different teams then route side by side, and two batches never wait on each other in a cycle. A row
only found later (a rule set activated, or a duplicate's original routed, between the claim and the
decision) is locked when reached; the deadlock that could then follow rolls the batch back and it is
handled again event by event.

A batch of ``lead.scored`` events runs a fixed number of statements whatever its size
(``ScoredBatch``): the claim returns the locked teams and reps, the batch's leads are stored in one
statement, and its decisions are made lead by lead in memory over those rows (each decision's changes
to cursors, loads, daily counts and credits applied before the next), then written with one statement
per table; webhooks and notifications likewise. The SLA and CRM paths still decide event by event."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import Event, LeadRouted, LeadScored, LeadSla, LeadTouched, follow_up, new_event
from leadflow_contracts.events import TouchType
from leadflow_kit.consumer import one_at_a_time
from leadflow_kit.uow import UnitOfWork
from leadflow_routing import domain, handoff_rules, lifecycle, sla_replica, sla_states
from leadflow_routing.bootstrap import Deps
from leadflow_routing.notifications.handlers import (
    KnownRecipients,
    RoutedNotice,
    notify_routed,
    notify_sla_warnings,
)
from leadflow_routing.settings import Settings
from leadflow_routing.store import (
    DecisionsWrite,
    ParkedRow,
    ParkedScored,
    RoutingStore,
    RulesetKey,
    ScoredInput,
    StoredLead,
    Touch,
    UpsertedLead,
    WebhookRequest,
)

log = logging.getLogger(__name__)

SOURCE = "routing"
WEBHOOK_EVENT_TYPE = lifecycle.ROUTED
WEBHOOK_UPDATE_EVENT_TYPE = lifecycle.UPDATED
CLOSING_TOUCHES: frozenset[str] = frozenset({"converted", "closed_lost"})


@dataclass
class Routed:
    assignment_id: str
    decision: domain.Decision
    event: Event[LeadRouted]
    # The owner to tell, when the caller tells the batch's owners at once (``notify=False``).
    notice: RoutedNotice | None = None


# -- subscriptions --------------------------------------------------------------------------


async def route_scored_leads(events: list[Event[LeadScored]], uow: UnitOfWork[Deps]) -> None:
    """Decide a poll's scored leads in order as one by one would, with a fixed number of statements for
    the batch: claim its rows, store its leads and note their MQL moments, then decide in memory (the roster
    advances lead by lead) and write every decision, webhook and notification at the end. Leads whose
    team or rep another transaction holds past the grace are parked (``claim_for_scored``)."""
    claim = await claim_for_scored(events, uow)
    if claim.parked:
        await uow.deps.store.park_scored(uow.session, claim.parked, uow.now())
        count = len(claim.parked)
        uow.after_commit(lambda: uow.deps.metrics.parked.inc(count))
        uow.after_commit(uow.deps.parked_waiting.set)
        log.info("%d of %d scored leads parked: their rows are busy (%s)", count, len(events),
                 ", ".join(sorted({w for p in claim.parked for w in p.waiting_for})))
    await _route_claimed(claim, uow)


async def route_parked_leads(uow: UnitOfWork[Deps], limit: int) -> ParkedRound:
    """Route the oldest parked leads whose rows are free now, in the order they arrived (one drainer
    across replicas at a time); the others stay parked."""
    store, session = uow.deps.store, uow.session
    if not await store.take_parked_turn(session):
        return ParkedRound(0, 0, busy=True)
    parked = await store.oldest_parked(session, limit)
    done = await _route_parked(uow, parked)
    return replace(done, full=len(parked) >= limit)


async def route_parked_lead(uow: UnitOfWork[Deps], seq: int) -> ParkedRound:
    """``route_parked_leads`` for one parked event (the drainer's one-by-one path)."""
    store, session = uow.deps.store, uow.session
    if not await store.take_parked_turn(session):
        return ParkedRound(0, 0, busy=True)
    return await _route_parked(uow, await store.parked(session, seq))


async def _route_parked(uow: UnitOfWork[Deps], parked: list[ParkedRow]) -> ParkedRound:
    if not parked:
        return ParkedRound(0, 0)
    claim = await claim_for_scored([p.event for p in parked], uow, parked_elsewhere=False)
    await _route_claimed(claim, uow)
    waiting = {id(p.event) for p in claim.parked}
    await uow.deps.store.unpark(uow.session, [p.seq for p in parked if id(p.event) not in waiting])
    routed = len(parked) - len(waiting)
    uow.after_commit(lambda: uow.deps.metrics.unparked.inc(routed))
    return ParkedRound(routed, len(waiting))


@dataclass(frozen=True)
class ParkedRound:
    routed: int
    still_parked: int
    # Another replica's drainer had the turn.
    busy: bool = False
    # The round took as many as it may: more may be waiting.
    full: bool = False


async def _route_claimed(claim: ScoredClaim, uow: UnitOfWork[Deps]) -> None:
    if not claim.ready:
        return
    batch = await ScoredBatch.open(claim.ready, uow, claim.roster, claim.facts, claim.channels)
    for event in one_at_a_time(claim.ready):
        now = uow.now()
        _collect(batch.notices, await route_scored_lead(event, uow, now, batch))
        batch.deliver_scored(event, now)
    await batch.write()


async def reroute_on_breaches(events: list[Event[LeadSla]], uow: UnitOfWork[Deps]) -> None:
    """A batch of warnings and breaches: the owners warned, the clocks' states for the queue listings, the
    ``lead.sla.*`` webhooks, each a statement or two for the whole batch; then each breach re-routed.

    Each warning or breach's webhook is queued before the re-route it causes, as the CRM expects them."""
    leads = await uow.deps.store.leads_for_webhook(uow.session, {e.data.lead_id for e in events})
    await notify_sla_warnings(events, leads, uow)
    await sla_states.record_sla_states(sla_states.fired(events), uow)
    await claim_for_breaches(events, uow)
    await lifecycle.deliver_sla(events, leads, uow)
    notices: list[RoutedNotice] = []
    for event in one_at_a_time(events):
        _collect(notices, await reroute_on_breach(event, uow, uow.now()))
    await notify_routed(uow, notices, uow.now())


def _collect(notices: list[RoutedNotice], routed: Routed | None) -> None:
    if routed is not None and routed.notice is not None:
        notices.append(routed.notice)


# -- claiming: the rows a batch's decisions may change, locked up front ----------------------


@dataclass
class Claims:
    """The teams (each with its reps) and the reps a batch's decisions may lock."""

    team_ids: set[str]
    rep_ids: set[str]

    def add_decision(self, facts: domain.LeadFacts, ruleset: domain.RuleSet | None) -> None:
        """What ``decide`` may lock for a lead: its account owner, and the rep or team of its rule."""
        if facts.account is not None and facts.account.owner_rep_id:
            self.rep_ids.add(facts.account.owner_rep_id)
        rule = domain.match_rules(ruleset, facts.fields).rule
        if rule is not None and rule.rep_id is not None:
            self.rep_ids.add(rule.rep_id)
        elif rule is not None and rule.team_id:
            self.team_ids.add(rule.team_id)


@dataclass
class ScoredClaim:
    """A scored batch's claim: the rows it holds, the events it may route now (in order), and those to
    park, each with what it waits for."""

    roster: domain.Roster
    ready: list[Event[LeadScored]]
    parked: list[ParkedScored]
    # What each event's decision reads of its lead, by event id: made once for the claim, read again by
    # the decision (a model_dump of the lead: made twice, 9 % of routing's CPU at the bench's 'max').
    facts: dict[str, domain.LeadFacts]
    # The channels of the reps the claim locked, read with their locks.
    channels: KnownRecipients


async def claim_for_scored(
    events: list[Event[LeadScored]], uow: UnitOfWork[Deps], *, parked_elsewhere: bool = True
) -> ScoredClaim:
    """Lock the batch's stored leads, then every team and rep its decisions may change: the owners
    a lead or its original already has, its account owner, its rule's rep or team.

    Teams and reps are locked without waiting (``hold_rows``): a row another transaction still holds
    after ``busy_row_grace_seconds`` parks the events that need it, so one slow team holds back only
    its own leads. An event whose lead (or original) has an earlier event parked, here or (with
    ``parked_elsewhere``) in the table, parks behind it."""
    store, session = uow.deps.store, uow.session
    originals = {e.data.duplicate_of for e in events if e.data.duplicate_of not in (None, e.data.lead_id)}
    leads = await store.lock_leads_for_routing(session, sorted({e.data.lead_id for e in events}),
                                               sorted(o for o in originals if o), parked=parked_elsewhere)
    ruleset = await _ruleset(uow, leads.active_ruleset)
    needs: list[Claims] = []
    facts: dict[str, domain.LeadFacts] = {}
    for event in events:
        scored = event.data
        owners = {leads.owners.get(scored.lead_id), leads.owners.get(scored.duplicate_of or "")}
        need = Claims(set(), {o for o in owners if o})
        facts[event.id] = domain.LeadFacts.of(scored)
        need.add_decision(facts[event.id], ruleset)
        needs.append(need)
    held = await hold_rows(uow, sorted(set().union(*(n.team_ids for n in needs))),
                           sorted(set().union(*(n.rep_ids for n in needs))))
    claim = ScoredClaim(held.roster, [], [], facts, held.channels)
    waiting_leads = set(leads.parked)
    for event, need in zip(events, needs, strict=True):
        scored = event.data
        waiting = [f"team:{t}" for t in sorted(need.team_ids & held.busy_teams)]
        waiting += [f"rep:{r}" for r in sorted(need.rep_ids & held.busy_reps)]
        waiting += [f"lead:{i}" for i in sorted({scored.lead_id, scored.duplicate_of or ""} & waiting_leads)]
        if waiting:
            claim.parked.append(ParkedScored(event, tuple(waiting)))
            waiting_leads.add(scored.lead_id)
        else:
            claim.ready.append(event)
    return claim


@dataclass
class HeldRows:
    roster: domain.Roster
    # Teams whose row, or a rep's of theirs, another transaction held past the grace; reps likewise.
    busy_teams: set[str]
    busy_reps: set[str]
    # The channels of the reps locked, read with their locks.
    channels: KnownRecipients


async def hold_rows(uow: UnitOfWork[Deps], team_ids: list[str], rep_ids: list[str]) -> HeldRows:
    """Lock the teams (each with every rep of it) and the reps named, never waiting on a row another
    transaction holds, so no deadlock can start here.

    While some are held elsewhere, every row taken is let go again (rolled back to a savepoint) and all
    are tried again a few milliseconds later, until they are free or ``busy_row_grace_seconds`` is over:
    a batch waiting for one team must not hold another team's row meanwhile, or the other replica's
    batches of that team would wait (and park) behind it. Then it keeps what it got. Rows this process
    already found held past the grace (``BusyRows``) are not waited for again."""
    if not team_ids and not rep_ids:
        return HeldRows(domain.Roster(), set(), set(), KnownRecipients())
    deps = uow.deps
    store, session, settings = deps.store, uow.session, deps.settings
    deadline = time.monotonic() + settings.busy_row_grace_seconds
    pause = 0.005
    await store.savepoint(session)
    while True:
        roster = domain.Roster()
        tried = await store.try_lock_roster(session, team_ids, rep_ids)
        busy_team_rows, busy_reps = tried.busy_teams, tried.busy_reps
        roster.teams.update(tried.teams)
        roster.reps.update(tried.reps)
        deps.busy_rows.free([*(f"team:{t}" for t in tried.teams), *(f"rep:{r}" for r in tried.reps)])
        busy = [*(f"team:{t}" for t in busy_team_rows), *(f"rep:{r}" for r in busy_reps)]
        if not busy or deps.busy_rows.all_known(busy) or time.monotonic() + pause > deadline:
            break
        await store.rollback_to_savepoint(session)
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.05)
    deps.busy_rows.mark(busy, settings.busy_row_memory_seconds)
    wanted = set(team_ids)
    busy_teams = set(busy_team_rows) | {t for t in busy_reps.values() if t in wanted}
    roster.team_ids = wanted - busy_teams
    return HeldRows(roster, busy_teams, set(busy_reps), KnownRecipients(frozenset(tried.reps), tried.recipients))


async def claim_for_breaches(events: list[Event[LeadSla]], uow: UnitOfWork[Deps]) -> None:
    """Lock the breached leads, then their teams (with their managers) and owners; a lead waiting in
    a queue claims what a fresh decision would."""
    store, session = uow.deps.store, uow.session
    leads = await store.lock_leads(session, sorted({e.data.lead_id for e in events if e.data.kind == "breach"}))
    claims = Claims(set(), set())
    ruleset: domain.RuleSet | None = None
    for lead in leads:
        if lead.status in ("closed", "new", "nurture"):
            continue
        if lead.owner_rep_id is None:
            ruleset = ruleset or await _ruleset(uow, await store.active_ruleset_key(session))
            claims.add_decision(domain.LeadFacts.of(lead.scored), ruleset)
            if lead.team_id:  # its team's manager, should nobody else take it
                claims.team_ids.add(lead.team_id)
            continue
        claims.rep_ids.add(lead.owner_rep_id)
        team_id = lead.team_id
        if team_id is None:
            owner = await store.load_rep(session, lead.owner_rep_id)
            team_id = owner.team_id if owner else None
        if team_id:
            claims.team_ids.add(team_id)
    await store.lock_routing_rows(session, sorted(claims.team_ids), sorted(claims.rep_ids), managers=True)


# -- deciding -------------------------------------------------------------------------------


class Rows(Protocol):
    """Where a decision reads the reps and teams it may change."""

    locks: bool

    async def read_rep(self, rep_id: str) -> domain.Rep | None: ...

    async def lock_rep(self, rep_id: str) -> domain.Rep | None: ...

    async def team_with_reps(self, team_id: str) -> tuple[domain.Team | None, list[domain.Rep]]: ...


@dataclass
class StoreRows:
    """Rows read from the database as a decision needs them; with ``locks`` locked (the one-event paths)."""

    store: RoutingStore
    session: AsyncSession
    locks: bool = True

    async def read_rep(self, rep_id: str) -> domain.Rep | None:
        return await self.store.load_rep(self.session, rep_id)

    async def lock_rep(self, rep_id: str) -> domain.Rep | None:
        read = self.store.lock_rep if self.locks else self.store.load_rep
        return await read(self.session, rep_id)

    async def team_with_reps(self, team_id: str) -> tuple[domain.Team | None, list[domain.Rep]]:
        return await self.store.team_with_reps(self.session, team_id, lock=self.locks)


@dataclass
class RosterRows:
    """A batch's rows: those its claim locked, as its decisions left them (``roster``); a row only found
    later (see the module's docstring) is locked when first needed and joins the roster."""

    store: RoutingStore
    session: AsyncSession
    roster: domain.Roster
    locks: bool = True

    async def read_rep(self, rep_id: str) -> domain.Rep | None:
        if rep_id in self.roster.reps:
            return self.roster.reps[rep_id]
        return await self.store.load_rep(self.session, rep_id)

    async def lock_rep(self, rep_id: str) -> domain.Rep | None:
        if rep_id not in self.roster.reps:
            self.roster.reps[rep_id] = await self.store.lock_rep(self.session, rep_id)
        return self.roster.reps[rep_id]

    async def team_with_reps(self, team_id: str) -> tuple[domain.Team | None, list[domain.Rep]]:
        if team_id not in self.roster.team_ids:
            team, reps = await self.store.team_with_reps(self.session, team_id, lock=True)
            self.roster.add_team(team, team_id, reps)
        return self.roster.team_with_reps(team_id)


async def decide(
    store: RoutingStore,
    session: AsyncSession,
    facts: domain.LeadFacts,
    now: datetime,
    settings: Settings,
    ruleset: domain.RuleSet | None,
    *,
    lock: bool = True,
    rows: Rows | None = None,
) -> domain.Decision:
    """Account owner first, then the first matching rule of ``ruleset`` (the active one, or None
    when no version is active), its rep or team, else the fallback queue.

    With ``lock`` the rows whose state the decision changes are locked until the transaction ends;
    ``rows`` (a batch's) replaces reading them from ``store``.
    """
    rows = rows or StoreRows(store, session, lock)
    audit: dict[str, Any] = {"decided_at": now.isoformat(), "tier": facts.tier}
    by_owner = await _account_owner(rows, facts, now, audit)
    if by_owner is not None:
        return by_owner
    version = ruleset.version if ruleset else None
    audit["ruleset_version"] = version
    match = domain.match_rules(ruleset, facts.fields)
    audit["rules"] = match.trace
    fallback_queue = (ruleset.fallback_queue if ruleset else None) or settings.default_fallback_queue
    if match.rule is None:
        return domain.no_rule_decision(version, fallback_queue, audit)
    matched = domain.MatchedRule(match.rule, version, fallback_queue)
    if match.rule.rep_id is not None:
        rep = await rows.lock_rep(match.rule.rep_id)
        return domain.rep_rule_decision(matched, rep, now, tier=facts.tier, audit=audit)
    team, reps = await rows.team_with_reps(match.rule.team_id or "")
    return domain.team_rule_decision(matched, team, reps, facts, now, audit)


async def _account_owner(
    rows: Rows, facts: domain.LeadFacts, now: datetime, audit: dict[str, Any]
) -> domain.Decision | None:
    account = facts.account
    if account is None or not account.owner_rep_id:
        return None
    owner_id = account.owner_rep_id
    # Read first and lock only an available owner: holding an unavailable owner's lock while
    # waiting for a team's lock below could deadlock with that team's own assignments.
    owner = await rows.read_rep(owner_id)
    skipped = domain.skip_reason(owner, now, tier=facts.tier)
    if rows.locks and owner is not None and skipped is None:
        owner = await rows.lock_rep(owner_id)
        skipped = domain.skip_reason(owner, now, tier=facts.tier)
    return domain.account_owner_decision(account, owner, skipped, audit)


async def _ruleset(uow: UnitOfWork[Deps], key: RulesetKey | None) -> domain.RuleSet | None:
    """The rule set of version ``key`` (None: no version is active), read once per process."""
    if key is None:
        return None
    cached = uow.deps.rulesets.get(key)
    if cached is not None:
        return cached
    ruleset = await uow.deps.store.ruleset_version(uow.session, key.version)
    if ruleset is not None:
        uow.deps.rulesets.put(key, ruleset)
    return ruleset


# -- use cases ------------------------------------------------------------------------------


async def route_scored_lead(
    event: Event[LeadScored], uow: UnitOfWork[Deps], now: datetime, batch: ScoredBatch
) -> Routed | None:
    """Route a newly scored lead; a lead (or duplicate) already routed keeps its owner.

    Under the ``mql`` hand-off a new lead that is not an MQL waits in nurture. A re-score of a known
    lead (new activity, decay, model change) only refreshes the stored snapshot, unless the lead waits
    in nurture and is now an MQL: then it is handed to sales (see ``handoff_rules``).
    """
    scored = event.data
    duplicate_of = scored.duplicate_of if scored.duplicate_of != scored.lead_id else None
    stored = batch.stored(scored, duplicate_of)
    lead = stored.lead
    # A new lead comes back with status "new", like one stored but never routed.
    kept_from: tuple[str, str, str | None] | None = None
    if lead.status == "nurture":
        return await hand_off_from_nurture(uow, lead, stored.active_ruleset, event, now, batch)
    if lead.status != "new":
        if scored.duplicate_of is None and scored.trigger != "enriched":
            return None
        if lead.owner_rep_id is not None:
            kept_from = (lead.id, lead.owner_rep_id, lead.team_id)
    if kept_from is None and duplicate_of and stored.original_owner_rep_id is not None:
        kept_from = (duplicate_of, stored.original_owner_rep_id, stored.original_team_id)

    if kept_from is not None:
        kept_id, kept_owner, kept_team = kept_from
        owner = await batch.rows.lock_rep(kept_owner) or domain.Rep(id=kept_owner)
        decision = domain.kept_owner_decision(kept_id, owner, kept_team, now)
        return await apply_decision(uow, lead, decision, event, now, count_kept_owner=kept_id != lead.id,
                                    batch=batch)

    ruleset = await _ruleset(uow, stored.active_ruleset)
    if lead.status == "new" and handoff_rules.holds_in_nurture(ruleset, scored):
        held = handoff_rules.nurture_decision("not an MQL yet: waits in nurture until it becomes one", now,
                                          tier=scored.tier, ruleset_version=ruleset.version if ruleset else None)
        return await apply_decision(uow, lead, held, event, now, batch=batch)
    decision = await decide(uow.deps.store, uow.session, batch.facts[event.id], now, uow.deps.settings,
                            ruleset, rows=batch.rows)
    return await apply_decision(uow, lead, decision, event, now, batch=batch)


async def hand_off_from_nurture(
    uow: UnitOfWork[Deps], lead: StoredLead, ruleset_key: RulesetKey | None, event: Event[LeadScored],
    now: datetime, batch: ScoredBatch,
) -> Routed | None:
    """A lead waiting in nurture goes to sales the moment a re-score finds it an MQL (by activities, a
    model change, decay reversing), once the cool-down after the CRM sent it back has passed."""
    if not handoff_rules.ready_for_handoff(lead.scored, lead.handoff_after, now):
        return None
    ruleset = await _ruleset(uow, ruleset_key)
    decision = await decide(uow.deps.store, uow.session, batch.facts[event.id], now, uow.deps.settings,
                            ruleset, rows=batch.rows)
    batch.clear_handoff(lead.id)
    return await apply_decision(uow, lead, decision, event, now, reroute=domain.Reroute("mql"), batch=batch)


async def reroute_on_breach(event: Event[LeadSla], uow: UnitOfWork[Deps], now: datetime) -> Routed | None:
    """On an SLA breach hand the lead to the next available rep of its team (never the same rep
    again) or, after enough breaches, to the team's manager."""
    store, sla = uow.deps.store, event.data
    if sla.kind != "breach":
        return None
    lead = await store.lock_lead(uow.session, sla.lead_id)
    if lead is None or lead.status in ("closed", "new", "nurture"):
        log.info("breach for lead %s ignored: unknown, closed or in nurture", sla.lead_id)
        return None
    if lead.owner_rep_id is None:
        return await _retry_queued(uow, lead, event, now)
    if sla.owner_rep_id and sla.owner_rep_id != lead.owner_rep_id:
        # The breach is about an owner the lead no longer has; it was already re-routed.
        log.info("breach for lead %s ignored: it is about former owner %s", sla.lead_id, sla.owner_rep_id)
        return None
    breach_count = max(lead.breach_count + 1, sla.breach_count)
    await store.set_breach_count(uow.session, lead.id, breach_count)
    current = lead.owner_rep_id
    team_id = lead.team_id
    if team_id is None:
        owner = await store.load_rep(uow.session, current)
        team_id = owner.team_id if owner else None
    team, reps = await store.team_with_reps(uow.session, team_id, lock=True) if team_id else (None, [])
    facts = domain.LeadFacts.of(lead.scored)
    audit: dict[str, Any] = {"decided_at": now.isoformat(), "tier": facts.tier, "breach_count": breach_count,
                             "previous_owner_rep_id": current, "team_id": team_id}
    escalate = domain.should_escalate(breach_count, team, requested=sla.escalate,
                                      default_after=uow.deps.settings.default_escalate_after_breaches)
    decision: domain.Decision | None = None
    if not escalate and team is not None:
        decision = domain.reroute_within_team(team, reps, facts, now, current=current, breach_count=breach_count,
                                              audit=audit)
        escalate = decision is None
    if decision is None and escalate and team is not None and team.manager_rep_id:
        manager = await store.lock_rep(uow.session, team.manager_rep_id)
        decision = domain.escalation_decision(team, manager, now, tier=facts.tier, current=current,
                                              breach_count=breach_count, audit=audit)
    if decision is None:
        log.warning("lead %s breached its SLA (#%d) but nobody else can take it; owner stays %s",
                    lead.id, breach_count, current)
        await store.record_owner_kept(uow.session, lead, f"SLA breach #{breach_count}: no other rep available; "
                                      "owner kept", audit, now)
        return None
    reason = "sla_breach_escalation" if decision.outcome == "escalated" else "sla_breach"
    return await apply_decision(uow, lead, decision, event, now, reroute=domain.Reroute(reason, current), notify=False)


async def _retry_queued(
    uow: UnitOfWork[Deps], lead: StoredLead, event: Event[LeadSla], now: datetime
) -> Routed | None:
    """A lead waiting in a queue breached: route it afresh, since someone may be available now."""
    store = uow.deps.store
    breach_count = max(lead.breach_count + 1, event.data.breach_count)
    await store.set_breach_count(uow.session, lead.id, breach_count)
    ruleset = await _ruleset(uow, await store.active_ruleset_key(uow.session))
    decision = await decide(store, uow.session, domain.LeadFacts.of(lead.scored), now, uow.deps.settings, ruleset)
    if decision.outcome == "fallback":
        return await _escalate_queued(uow, lead, event, breach_count, decision.audit, now)
    decision.audit["breach_count"] = breach_count
    decision.outcome = "rerouted"
    return await apply_decision(uow, lead, decision, event, now, reroute=domain.Reroute("sla_breach"), notify=False)


async def _escalate_queued(
    uow: UnitOfWork[Deps], lead: StoredLead, event: Event[LeadSla], breach_count: int, audit: dict[str, Any],
    now: datetime,
) -> Routed | None:
    """Nobody can take a queued lead that breached: like an assigned one, it goes to the manager of
    its team (the team whose fallback queue it waits in); without one it stays queued, audited."""
    store = uow.deps.store
    audit["breach_count"] = breach_count
    team = await store.load_team(uow.session, lead.team_id) if lead.team_id else None
    if team is not None and team.manager_rep_id:
        manager = await store.lock_rep(uow.session, team.manager_rep_id)
        decision = domain.escalation_decision(team, manager, now, tier=lead.scored.tier, current="",
                                              breach_count=breach_count, audit=audit)
        if decision is not None:
            return await apply_decision(uow, lead, decision, event, now,
                                        reroute=domain.Reroute("sla_breach_escalation"), notify=False)
    log.warning("queued lead %s breached its SLA (#%d) and still nobody can take it", lead.id, breach_count)
    await store.record_owner_kept(uow.session, lead, f"SLA breach #{breach_count} in a queue: nobody can take it; "
                                  "it stays queued", audit, now)
    return None


# -- applying -------------------------------------------------------------------------------


async def apply_decision(
    uow: UnitOfWork[Deps],
    lead: StoredLead,
    decision: domain.Decision,
    cause: Event[LeadScored] | Event[LeadSla] | Event[LeadTouched],
    now: datetime,
    *,
    reroute: domain.Reroute | None = None,
    count_kept_owner: bool = False,
    notify: bool = True,
    batch: ScoredBatch | None = None,
) -> Routed:
    """Write the decision: counters, strategy state, the lead, the audit row, lead.routed, webhooks.

    The new owner is told here, or with ``notify=False`` by the caller with its batch's other owners
    (``Routed.notice``). With ``batch`` the decision joins the batch's, written at its end."""
    store = uow.deps.store
    notify = notify and batch is None
    previous_owner = reroute.previous_owner_rep_id if reroute else None
    changes, turn_team_id, rr_last_rep_id = domain.rep_changes(
        decision, now, previous_owner=previous_owner, count_kept_owner=count_kept_owner)
    assignment_id = f"asg_{uuid.uuid4().hex}"
    routed = domain.lead_routed(lead.id, assignment_id, lead.scored, decision, reroute)
    event: Event[LeadRouted] = follow_up(cause, routed, source=SOURCE, subject=lead.id, time=now)
    write = domain.AssignmentWrite(
        assignment_id, lead.id, decision, reroute, event.id, now, changes, turn_team_id, rr_last_rep_id)
    if batch is not None:
        await batch.record(write)
    else:
        await store.write_assignment(uow.session, write)
    await uow.publish(event)
    refill = decision.outcome == "kept_owner" and not count_kept_owner
    if decision.outcome != "nurture":
        # The CRM hears of hand-offs to sales; a lead held in (or sent back to) nurture is marketing's.
        # In a batch the SLA clock joins the payload when the batch is written (one replica read for all).
        data = ({**domain.webhook_data(lead.scored, routed, decision, now), "sla": None} if batch is not None
                else await lifecycle.routed_data(uow, lead.scored, routed, decision, now))
        webhook = WebhookRequest(
            WEBHOOK_UPDATE_EVENT_TYPE if refill else WEBHOOK_EVENT_TYPE, lead.id, data, now, event.correlation_id,
            event.lead_captured_at, lifecycle.lead_facts(replace(lead, team_id=domain.decision_team(decision))),
        )
        if batch is not None:
            batch.webhooks.append(webhook)
            batch.clocks.append((data, routed, now))
        else:
            await store.enqueue_webhook(uow.session, webhook)
    notice = RoutedNotice(lead.scored, event) if not refill else None
    if notice is not None and notify:
        await notify_routed(uow, [notice], now)
    uow.deps.metrics.decisions.labels(decision.outcome).inc()
    if decision.outcome == "fallback":
        uow.deps.metrics.fallback.labels(decision.fallback_team or "none").inc()
        log.warning("lead %s went to fallback queue %s: %s", lead.id, decision.queue, decision.reason)
    else:
        log.debug("lead %s routed (%s) to %s: %s", lead.id, decision.outcome,
                 decision.rep.id if decision.rep else decision.queue, decision.reason)
    return Routed(assignment_id, decision, event, None if notify else notice)


# -- a batch of scored leads ------------------------------------------------------------------


@dataclass
class ScoredBatch:
    """A batch of ``lead.scored`` events as its decisions leave it, in memory until ``write``.

    ``leads`` holds each of the batch's leads as the events before have left it (what the one-by-one
    path read back from the database), ``rows`` the claimed teams and reps likewise; the decisions'
    audit rows, webhooks and notifications are kept in the batch's order."""

    uow: UnitOfWork[Deps]
    rows: RosterRows
    leads: dict[str, StoredLead]
    originals: dict[str, tuple[str | None, str | None]]
    active_ruleset: RulesetKey | None
    # Each event's ``LeadFacts``, by event id, as its claim made them.
    facts: dict[str, domain.LeadFacts]
    assignments: list[domain.AssignmentWrite] = field(default_factory=list)
    webhooks: list[WebhookRequest] = field(default_factory=list)
    notices: list[RoutedNotice] = field(default_factory=list)
    handoff_cleared: set[str] = field(default_factory=set)
    first_mql: set[str] = field(default_factory=set)
    lifecycle_wanted: bool = False
    # The channels of the reps its claim locked: the owners' notifications need no read for them.
    channels: KnownRecipients = field(default_factory=KnownRecipients)
    # The routed webhooks' payloads still to get their ``sla`` block, with the routing and its time.
    clocks: list[tuple[dict[str, Any], LeadRouted, datetime]] = field(default_factory=list)

    @classmethod
    async def open(cls, events: list[Event[LeadScored]], uow: UnitOfWork[Deps], roster: domain.Roster,
                   facts: dict[str, domain.LeadFacts], channels: KnownRecipients) -> ScoredBatch:
        """Store the batch's leads in one statement (each once: its last snapshot, its first correlation), which
        also notes their first MQL moments (before the decisions: it changes nothing they read) and says
        whether anyone subscribes to ``lead.mql`` or ``lead.stage_changed`` when an event may send one."""
        first: dict[str, Event[LeadScored]] = {}
        last: dict[str, LeadScored] = {}
        mql: set[str] = set()
        lifecycle_moment = False
        for event in events:
            first.setdefault(event.data.lead_id, event)
            last[event.data.lead_id] = event.data
            if event.data.is_mql:
                mql.add(event.data.lead_id)
            lifecycle_moment = lifecycle_moment or event.data.is_mql or lifecycle.stage_changed(event.data)
        inputs = [ScoredInput(last[i], first[i].correlation_id, first[i].lead_captured_at, i in mql)
                  for i in sorted(last)]
        originals = sorted({e.data.duplicate_of for e in events if e.data.duplicate_of} - set(last))
        store, session = uow.deps.store, uow.session
        upserted = await store.upsert_scored_leads(
            session, inputs, originals, uow.now(),
            lifecycle_types=[lifecycle.MQL, lifecycle.STAGE_CHANGED] if lifecycle_moment else [])
        return cls(uow, RosterRows(store, session, roster), dict(upserted.leads), upserted.originals,
                   upserted.active_ruleset, facts, first_mql=set(upserted.first_mql),
                   lifecycle_wanted=upserted.lifecycle_wanted, channels=channels)

    def stored(self, scored: LeadScored, duplicate_of: str | None) -> UpsertedLead:
        """The lead of ``scored`` as the batch's earlier events left it, with the routing of its original."""
        lead = replace(self.leads[scored.lead_id], scored=scored)
        original: tuple[str | None, str | None] = (None, None)
        if duplicate_of in self.leads:
            known = self.leads[duplicate_of]
            original = (known.owner_rep_id, known.team_id)
        elif duplicate_of is not None:
            original = self.originals.get(duplicate_of, (None, None))
        return UpsertedLead(lead, original[0], original[1], self.active_ruleset)

    def clear_handoff(self, lead_id: str) -> None:
        self.handoff_cleared.add(lead_id)
        self.leads[lead_id] = replace(self.leads[lead_id], handoff_after=None)

    async def record(self, write: domain.AssignmentWrite) -> None:
        for rep_id in write.rep_changes:
            await self.rows.lock_rep(rep_id)
        self.rows.roster.apply(write)
        self.assignments.append(write)
        decision = write.decision
        self.leads[write.lead_id] = replace(
            self.leads[write.lead_id], status=write.status, owner_rep_id=decision.rep.id if decision.rep else None,
            team_id=decision.team_id)

    def deliver_scored(self, event: Event[LeadScored], now: datetime) -> None:
        """``lifecycle.deliver_scored`` for one event of the batch, after its decision."""
        scored = event.data
        if not self.lifecycle_wanted or not (scored.is_mql or lifecycle.stage_changed(scored)):
            return
        first_mql = scored.is_mql and scored.lead_id in self.first_mql
        if first_mql:
            self.first_mql.discard(scored.lead_id)
        self.webhooks += lifecycle.scored_webhooks(event, self.leads[scored.lead_id].team_id, first_mql, now)

    async def write(self) -> None:
        """The decisions in one statement, the webhooks in the batch's order in one, then the notifications."""
        store, session = self.uow.deps.store, self.uow.session
        roster = self.rows.roster
        await store.write_decisions(session, DecisionsWrite(
            self.assignments, roster.changed(), roster.turns, frozenset(self.handoff_cleared)))
        clocks = await sla_replica.routed_clocks(self.uow, [(routed, at) for _, routed, at in self.clocks])
        for (data, _, _), clock in zip(self.clocks, clocks, strict=True):
            data["sla"] = clock
        await store.enqueue_webhooks(session, self.webhooks, self.uow.deps.webhook_hand_off)
        await notify_routed(self.uow, self.notices, self.uow.now(), self.channels)


# -- CRM touches ----------------------------------------------------------------------------


async def back_to_nurture(uow: UnitOfWork[Deps], lead: StoredLead, touch: Event[LeadTouched], now: datetime) -> None:
    """The CRM disqualified or recycled the lead: it leaves its owner (or queue) for nurture, with the
    touch's reason, and is not handed off again before the cool-down ends."""
    data, cooldown = touch.data, uow.deps.settings.recycle_cooldown_seconds
    until = handoff_rules.cooldown_end(now, cooldown)
    decision = handoff_rules.nurture_decision(
        f"{data.touch_type} by the CRM" + (f": {data.reason}" if data.reason else ""), now, tier=lead.scored.tier,
        extra={"touch_id": data.touch_id, "handoff_after": until.isoformat()},
    )
    await apply_decision(uow, lead, decision, touch, now,
                         reroute=domain.Reroute(data.touch_type, lead.owner_rep_id))
    await uow.deps.store.hold_in_nurture_until(uow.session, lead.id, until)



class UnknownLead(LookupError):
    pass


@dataclass(frozen=True)
class CrmTouch:
    """A CRM callback about a lead."""

    lead_id: str
    touch_type: TouchType
    rep_id: str | None = None
    reason: str | None = None
    occurred_at: datetime | None = None
    integration: str | None = None
    external_id: str | None = None
    amount: Decimal | None = None
    currency: str | None = None


@dataclass(frozen=True)
class TouchRecorded:
    touch_id: str
    lead_id: str
    touch_type: str
    owner_rep_id: str | None
    owner_mismatch: bool
    duplicate: bool = False


async def record_touch(uow: UnitOfWork[Deps], crm: CrmTouch) -> TouchRecorded:
    """A CRM callback becomes a touch row and a ``lead.touched`` event, in one transaction.

    An event naming a rep other than the owner is kept, flagged ``owner_mismatch``.
    """
    store, now, lead_id = uow.deps.store, uow.now(), crm.lead_id
    lead = await store.lock_lead(uow.session, lead_id)
    if lead is None:
        raise UnknownLead(lead_id)
    if crm.external_id is not None:
        seen = await store.find_touch(uow.session, crm.integration, crm.external_id)
        if seen is not None:
            return TouchRecorded(seen.id, seen.lead_id, seen.touch_type, seen.owner_rep_id, seen.owner_mismatch,
                                 duplicate=True)
    owner = lead.owner_rep_id
    mismatch = crm.rep_id is not None and crm.rep_id != owner
    touch = Touch(
        id=f"tch_{uuid.uuid4().hex}", lead_id=lead_id, touch_type=crm.touch_type, rep_id=crm.rep_id,
        owner_rep_id=owner, owner_mismatch=mismatch, reason=crm.reason, integration=crm.integration,
        external_id=crm.external_id, occurred_at=crm.occurred_at or now, created_at=now,
    )
    await store.insert_touch(uow.session, touch)
    if crm.touch_type in CLOSING_TOUCHES and lead.status != "closed":
        await store.close_lead(uow.session, lead_id, owner, now)
    if mismatch:
        log.warning("CRM reported %s on lead %s by %s, but the owner is %s", crm.touch_type, lead_id, crm.rep_id,
                    owner)
    touched = LeadTouched(
        lead_id=lead_id, touch_id=touch.id, touch_type=crm.touch_type, occurred_at=touch.occurred_at,
        rep_id=crm.rep_id or owner, reason=crm.reason, integration=crm.integration, owner_mismatch=mismatch,
        amount=crm.amount, currency=crm.currency,
    )
    touched_event = new_event(touched, source=SOURCE, subject=lead_id, correlation_id=lead.correlation_id,
                              lead_captured_at=lead.lead_captured_at, time=now)
    await uow.publish(touched_event)
    await lifecycle.deliver_touched(uow, lead, touched_event, now)
    if crm.touch_type in handoff_rules.BACK_TO_NURTURE and lead.status not in ("closed", "new"):
        await back_to_nurture(uow, lead, touched_event, now)
    return TouchRecorded(touch.id, lead_id, crm.touch_type, owner, mismatch)
