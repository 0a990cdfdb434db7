"""Routing's use cases over one transaction: route a scored lead, re-route on SLA breach, record a
CRM touch. Fairness lives in PostgreSQL: a team's row is locked while its rotation advances, and
the reps' counters are updated under their row locks, so replicas never race."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import Event, LeadRouted, LeadScored, LeadSla, LeadTouched, RoutedOwner, follow_up, new_event
from leadflow_contracts.events import TouchType
from leadflow_kit.outbox import Outbox
from leadflow_kit.webhooks import enqueue_webhook
from leadflow_routing import domain
from leadflow_routing.settings import Settings
from leadflow_routing.tables import assignment as assignment_table
from leadflow_routing.tables import lead as lead_table
from leadflow_routing.tables import rep as rep_table
from leadflow_routing.tables import routing_ruleset as ruleset_table
from leadflow_routing.tables import team as team_table
from leadflow_routing.tables import touch as touch_table

log = logging.getLogger(__name__)

SOURCE = "routing"
WEBHOOK_EVENT_TYPE = "lead.routed"
CLOSING_TOUCHES: frozenset[str] = frozenset({"converted", "disqualified"})

Outcome = Literal["assigned", "account_owner", "kept_owner", "fallback", "rerouted", "escalated"]


class RoutingMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.decisions = Counter(
            "leadflow_routing_decisions_total", "Routing decisions, by outcome", ["outcome"], registry=registry
        )
        self.fallback = Counter(
            "leadflow_routing_fallback_total", "Leads sent to a fallback queue, by the team that could not take them",
            ["team"], registry=registry,
        )


# -- rows to domain objects -----------------------------------------------------------------


def rep_from_row(row: Any) -> domain.Rep:
    return domain.Rep(
        id=row.id, name=row.name, email=row.email, team_id=row.team_id, territories=tuple(row.territories or ()),
        weight=row.weight, daily_capacity=row.daily_capacity, max_open_leads=row.max_open_leads,
        timezone=row.timezone, working_hours=domain.parse_working_hours(row.working_hours),
        out_of_office=tuple(
            domain.OutOfOffice(datetime.fromisoformat(o["start"]), datetime.fromisoformat(o["end"]), o.get("reason"))
            for o in row.out_of_office or ()
        ),
        active=row.active, open_leads=row.open_leads, assigned_today=row.assigned_today,
        assigned_day=row.assigned_day, rr_credit=row.rr_credit, last_assigned_at=row.last_assigned_at,
    )


def team_from_row(row: Any) -> domain.Team:
    return domain.Team(
        id=row.id, name=row.name, strategy=row.strategy, manager_rep_id=row.manager_rep_id,
        escalate_after_breaches=row.escalate_after_breaches, fallback_queue=row.fallback_queue,
        rr_last_rep_id=row.rr_last_rep_id,
    )


def ruleset_from_json(version: int, rules: Sequence[Mapping[str, Any]], fallback_queue: str | None) -> domain.RuleSet:
    return domain.RuleSet(
        version=version,
        rules=tuple(
            domain.Rule(
                id=r["id"], name=r.get("name") or "", match=r.get("match", "all"),
                conditions=tuple(domain.Condition(c["field"], c.get("op", "eq"), c.get("value"))
                                 for c in r.get("conditions", ())),
                team_id=r.get("team_id"), rep_id=r.get("rep_id"), enabled=r.get("enabled", True),
            )
            for r in rules
        ),
        fallback_queue=fallback_queue,
    )


async def active_ruleset(session: AsyncSession) -> domain.RuleSet | None:
    row = (await session.execute(select(ruleset_table).where(ruleset_table.c.active.is_(True)))).first()
    return ruleset_from_json(row.version, row.rules, row.fallback_queue) if row else None


async def lock_rep(session: AsyncSession, rep_id: str) -> domain.Rep | None:
    row = (await session.execute(select(rep_table).where(rep_table.c.id == rep_id).with_for_update())).first()
    return rep_from_row(row) if row else None


async def lock_team(session: AsyncSession, team_id: str) -> tuple[domain.Team | None, list[domain.Rep]]:
    """The team and its reps, row-locked (team first, reps by id: one lock order everywhere)."""
    row = (await session.execute(select(team_table).where(team_table.c.id == team_id).with_for_update())).first()
    if row is None:
        return None, []
    reps = (
        await session.execute(
            select(rep_table).where(rep_table.c.team_id == team_id).order_by(rep_table.c.id).with_for_update()
        )
    ).all()
    return team_from_row(row), [rep_from_row(r) for r in reps]


async def load_team(session: AsyncSession, team_id: str) -> tuple[domain.Team | None, list[domain.Rep]]:
    """Like ``lock_team`` without the locks: for dry runs."""
    row = (await session.execute(select(team_table).where(team_table.c.id == team_id))).first()
    if row is None:
        return None, []
    reps = (await session.execute(select(rep_table).where(rep_table.c.team_id == team_id).order_by(rep_table.c.id))
            ).all()
    return team_from_row(row), [rep_from_row(r) for r in reps]


# -- deciding -------------------------------------------------------------------------------


@dataclass
class Decision:
    outcome: Outcome
    reason: str
    rep: domain.Rep | None = None
    team_id: str | None = None
    queue: str | None = None
    rule_id: str | None = None
    ruleset_version: int | None = None
    strategy: str | None = None
    pick: domain.Pick | None = None
    audit: dict[str, Any] = field(default_factory=dict)
    fallback_team: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "owner": _owner_dict(self.rep),
            "team_id": self.team_id,
            "queue": self.queue,
            "rule_id": self.rule_id,
            "ruleset_version": self.ruleset_version,
            "strategy": self.strategy,
            "audit": self.audit,
        }


def _owner_dict(rep: domain.Rep | None) -> dict[str, Any] | None:
    if rep is None:
        return None
    return {"rep_id": rep.id, "name": rep.name, "email": rep.email, "team_id": rep.team_id}


async def decide(
    session: AsyncSession,
    data: Mapping[str, Any],
    now: datetime,
    settings: Settings,
    *,
    lock: bool = True,
    ruleset: domain.RuleSet | None = None,
) -> Decision:
    """Account owner first, then the first matching rule's rep or team, else the fallback queue.

    With ``lock`` the rows whose state the decision changes are locked until the transaction ends.
    """
    fields = domain.lead_fields(data)
    tier = data.get("tier")
    audit: dict[str, Any] = {"decided_at": now.isoformat(), "tier": tier}

    account = data.get("account") or {}
    owner_id = account.get("owner_rep_id")
    if owner_id:
        # Read first and lock only an available owner: holding an unavailable owner's lock while
        # waiting for a team's lock below could deadlock with that team's own assignments.
        owner = await _load_rep(session, owner_id)
        skipped: str | None = "unknown_rep" if owner is None else domain.unavailability(owner, now, tier=tier)
        if lock and owner is not None and skipped is None:
            owner = await lock_rep(session, owner_id)
            skipped = "unknown_rep" if owner is None else domain.unavailability(owner, now, tier=tier)
        audit["account_owner"] = {"account_id": account.get("account_id"), "rep_id": owner_id, "skipped": skipped}
        if owner is not None and skipped is None:
            return Decision("account_owner", f"account owner of {account.get('name') or account.get('account_id')}",
                            rep=owner, team_id=owner.team_id, audit=audit)

    ruleset = ruleset or await active_ruleset(session)
    audit["ruleset_version"] = ruleset.version if ruleset else None
    match = domain.match_rules(ruleset, fields)
    audit["rules"] = match.trace
    fallback_queue = (ruleset.fallback_queue if ruleset else None) or settings.default_fallback_queue
    version = ruleset.version if ruleset else None
    rule = match.rule
    if rule is None:
        audit["fallback"] = {"queue": fallback_queue, "why": "no_rule_matched"}
        return Decision("fallback", "no routing rule matched", queue=fallback_queue, ruleset_version=version,
                        audit=audit, fallback_team="none")

    if rule.rep_id is not None:
        rep = await lock_rep(session, rule.rep_id) if lock else await _load_rep(session, rule.rep_id)
        skipped = "unknown_rep" if rep is None else domain.unavailability(rep, now, tier=tier)
        audit["candidates"] = [{"rep_id": rule.rep_id, "skipped": skipped}]
        if rep is not None and skipped is None:
            return Decision("assigned", f"rule {rule.id} names rep {rep.id}", rep=rep, team_id=rep.team_id,
                            rule_id=rule.id, ruleset_version=version, audit=audit)
        audit["fallback"] = {"queue": fallback_queue, "why": f"rep {rule.rep_id} unavailable: {skipped}"}
        return Decision("fallback", f"rule {rule.id}: rep {rule.rep_id} unavailable ({skipped})",
                        queue=fallback_queue, rule_id=rule.id, ruleset_version=version, audit=audit,
                        fallback_team=rule.rep_id)

    team_id = rule.team_id or ""
    team, reps = await (lock_team(session, team_id) if lock else load_team(session, team_id))
    if team is None:
        audit["fallback"] = {"queue": fallback_queue, "why": f"unknown team {team_id}"}
        return Decision("fallback", f"rule {rule.id}: unknown team {team_id}", queue=fallback_queue,
                        rule_id=rule.id, ruleset_version=version, audit=audit, fallback_team=team_id)
    pick = domain.pick_rep(team, reps, fields, now, tier=tier)
    audit.update(pick.audit())
    audit["team_id"] = team.id
    if pick.rep_id is None:
        queue = team.fallback_queue or fallback_queue
        audit["fallback"] = {"queue": queue, "why": "whole team unavailable"}
        return Decision("fallback", f"rule {rule.id}: no rep of team {team.id} available", team_id=team.id,
                        queue=queue, rule_id=rule.id, ruleset_version=version, strategy=team.strategy, pick=pick,
                        audit=audit, fallback_team=team.id)
    chosen = next(r for r in reps if r.id == pick.rep_id)
    return Decision("assigned", f"rule {rule.id} → team {team.id} ({team.strategy})", rep=chosen, team_id=team.id,
                    rule_id=rule.id, ruleset_version=version, strategy=team.strategy, pick=pick, audit=audit)


async def _load_rep(session: AsyncSession, rep_id: str) -> domain.Rep | None:
    row = (await session.execute(select(rep_table).where(rep_table.c.id == rep_id))).first()
    return rep_from_row(row) if row else None


# -- applying -------------------------------------------------------------------------------


async def _count_assignment(session: AsyncSession, rep: domain.Rep, now: datetime) -> None:
    day = rep.local_day(now)
    await session.execute(
        update(rep_table)
        .where(rep_table.c.id == rep.id)
        .values(
            open_leads=rep_table.c.open_leads + 1,
            assigned_today=case((rep_table.c.assigned_day == day, rep_table.c.assigned_today + 1), else_=1),
            assigned_day=day,
            last_assigned_at=now,
        )
    )


async def _release(session: AsyncSession, rep_id: str) -> None:
    await session.execute(
        update(rep_table).where(rep_table.c.id == rep_id)
        .values(open_leads=func.greatest(rep_table.c.open_leads - 1, 0))
    )


async def _advance_strategy(session: AsyncSession, team_id: str, pick: domain.Pick) -> None:
    values: dict[str, Any] = {"assignments": team_table.c.assignments + 1}
    if pick.strategy == "round_robin":
        values["rr_last_rep_id"] = pick.rep_id
    await session.execute(update(team_table).where(team_table.c.id == team_id).values(**values))
    for rep_id, credit in pick.credits.items():
        await session.execute(update(rep_table).where(rep_table.c.id == rep_id).values(rr_credit=credit))


@dataclass
class Routed:
    assignment_id: str
    decision: Decision
    event: Event[LeadRouted]


async def apply_decision(
    session: AsyncSession,
    outbox: Outbox,
    lead: Any,
    decision: Decision,
    now: datetime,
    cause: Event[Any] | None,
    metrics: RoutingMetrics | None,
    *,
    reroute_reason: str | None = None,
    previous_owner: str | None = None,
) -> Routed:
    """Write the decision: counters, strategy state, the lead, the audit row, lead.routed, webhooks."""
    data: Mapping[str, Any] = lead.data
    if decision.rep is not None and decision.outcome != "kept_owner":
        await _count_assignment(session, decision.rep, now)
    if decision.pick is not None and decision.pick.rep_id is not None and decision.team_id:
        await _advance_strategy(session, decision.team_id, decision.pick)
    if previous_owner and (decision.rep is None or decision.rep.id != previous_owner):
        await _release(session, previous_owner)

    assignment_id = f"asg_{uuid.uuid4().hex}"
    owner = decision.rep
    status = "assigned" if owner is not None else "queued"
    await session.execute(
        update(lead_table).where(lead_table.c.id == lead.id).values(
            owner_rep_id=owner.id if owner else None, team_id=decision.team_id, queue=decision.queue,
            status=status, last_assignment_id=assignment_id, routed_at=now, updated_at=now,
        )
    )
    routed = LeadRouted(
        lead_id=lead.id,
        assignment_id=assignment_id,
        owner=RoutedOwner(rep_id=owner.id, name=owner.name, email=owner.email, team_id=owner.team_id)
        if owner else None,
        queue=decision.queue,
        reason=decision.reason,
        rule_id=decision.rule_id,
        strategy=decision.strategy,
        tier=data.get("tier"),
        score=data.get("score"),
        reroute=reroute_reason is not None,
        reroute_reason=reroute_reason,
        previous_owner_rep_id=previous_owner,
        escalated=decision.outcome == "escalated",
        form_key=data.get("form_key"),
        attribution=data.get("attribution") or {},
    )
    event: Event[LeadRouted] = (
        follow_up(cause, routed, source=SOURCE, subject=lead.id, time=now) if cause is not None
        else new_event(routed, source=SOURCE, subject=lead.id, correlation_id=lead.correlation_id,
                       lead_captured_at=lead.lead_captured_at, time=now)
    )
    await session.execute(
        insert(assignment_table).values(
            id=assignment_id, lead_id=lead.id, outcome=decision.outcome, rep_id=owner.id if owner else None,
            team_id=decision.team_id, queue=decision.queue, reason=decision.reason, rule_id=decision.rule_id,
            ruleset_version=decision.ruleset_version, strategy=decision.strategy,
            reroute=reroute_reason is not None, reroute_reason=reroute_reason,
            previous_owner_rep_id=previous_owner, escalated=decision.outcome == "escalated",
            audit=decision.audit, event_id=event.id, created_at=now,
        )
    )
    await outbox.add(session, event)
    await enqueue_webhook(
        session, event_type=WEBHOOK_EVENT_TYPE, lead_id=lead.id,
        data=webhook_data(lead.id, data, routed, decision, now), now=now,
        correlation_id=event.correlation_id, lead_captured_at=event.lead_captured_at,
    )
    if metrics is not None:
        metrics.decisions.labels(decision.outcome).inc()
        if decision.outcome == "fallback":
            metrics.fallback.labels(decision.fallback_team or "none").inc()
    if decision.outcome == "fallback":
        log.warning("lead %s went to fallback queue %s: %s", lead.id, decision.queue, decision.reason)
    else:
        log.info("lead %s routed (%s) to %s: %s", lead.id, decision.outcome,
                 owner.id if owner else decision.queue, decision.reason)
    return Routed(assignment_id, decision, event)


def webhook_data(
    lead_id: str, data: Mapping[str, Any], routed: LeadRouted, decision: Decision, now: datetime
) -> dict[str, Any]:
    """What the CRM receives: the lead, its enrichment, its score explained, the owner and why."""
    return {
        "lead_id": lead_id,
        "lead": {
            "id": lead_id,
            "profile": data.get("profile") or {},
            "form_key": data.get("form_key"),
            "attribution": data.get("attribution") or {},
            "lifecycle_stage": data.get("lifecycle_stage"),
            "duplicate_of": data.get("duplicate_of"),
        },
        "enrichment": {"account": data.get("account"), "quality": data.get("quality")},
        "score": {
            "score": data.get("score"),
            "fit_grade": data.get("fit_grade"),
            "engagement_level": data.get("engagement_level"),
            "tier": data.get("tier"),
            "is_mql": data.get("is_mql"),
            "model_version": data.get("model_version"),
            "explanation": data.get("breakdown") or [],
        },
        "owner": routed.owner.model_dump() if routed.owner else None,
        "queue": routed.queue,
        "routing": {
            "assignment_id": routed.assignment_id,
            "outcome": decision.outcome,
            "reason": routed.reason,
            "rule_id": routed.rule_id,
            "ruleset_version": decision.ruleset_version,
            "strategy": routed.strategy,
            "reroute": routed.reroute,
            "reroute_reason": routed.reroute_reason,
            "previous_owner_rep_id": routed.previous_owner_rep_id,
            "escalated": routed.escalated,
            "routed_at": now.isoformat(),
        },
    }


# -- use cases ------------------------------------------------------------------------------


async def _lock_lead(session: AsyncSession, lead_id: str) -> Any:
    return (await session.execute(select(lead_table).where(lead_table.c.id == lead_id).with_for_update())).first()


async def route_scored_lead(
    session: AsyncSession,
    outbox: Outbox,
    event: Event[LeadScored],
    now: datetime,
    settings: Settings,
    metrics: RoutingMetrics | None = None,
) -> Routed | None:
    """Route a newly scored lead; a lead (or duplicate) already routed keeps its owner.

    A re-score of a known lead (new activity, decay) only refreshes the stored snapshot.
    """
    scored = event.data
    payload = scored.model_dump(mode="json")
    existing = await _lock_lead(session, scored.lead_id)
    if existing is None:
        await session.execute(
            insert(lead_table).values(
                id=scored.lead_id, data=payload, correlation_id=event.correlation_id,
                lead_captured_at=event.lead_captured_at, created_at=now, updated_at=now,
            )
        )
    else:
        await session.execute(
            update(lead_table).where(lead_table.c.id == scored.lead_id).values(data=payload, updated_at=now)
        )
    lead = await _lock_lead(session, scored.lead_id)

    kept_from: Any = None
    if existing is not None and existing.status != "new":
        if scored.duplicate_of is None and scored.trigger != "enriched":
            return None
        if existing.owner_rep_id is not None:
            kept_from = existing
    if kept_from is None and scored.duplicate_of and scored.duplicate_of != scored.lead_id:
        original = (await session.execute(select(lead_table).where(lead_table.c.id == scored.duplicate_of))).first()
        if original is not None and original.owner_rep_id is not None:
            kept_from = original

    if kept_from is not None:
        owner = await lock_rep(session, kept_from.owner_rep_id) or domain.Rep(id=kept_from.owner_rep_id)
        decision = Decision(
            "kept_owner", f"duplicate of already-routed lead {kept_from.id}: keeps its owner",
            rep=owner, team_id=kept_from.team_id,
            audit={"decided_at": now.isoformat(), "kept_owner_of": kept_from.id,
                   "owner_rep_id": kept_from.owner_rep_id},
        )
        if kept_from.id != lead.id:
            await _count_assignment(session, owner, now)
        return await apply_decision(session, outbox, lead, decision, now, event, metrics)

    decision = await decide(session, payload, now, settings)
    return await apply_decision(session, outbox, lead, decision, now, event, metrics)


async def reroute_on_breach(
    session: AsyncSession,
    outbox: Outbox,
    event: Event[LeadSla],
    now: datetime,
    settings: Settings,
    metrics: RoutingMetrics | None = None,
) -> Routed | None:
    """On an SLA breach hand the lead to the next available rep of its team (never the same rep
    again) or, after enough breaches, to the team's manager."""
    sla = event.data
    if sla.kind != "breach":
        return None
    lead = await _lock_lead(session, sla.lead_id)
    if lead is None or lead.status in ("closed", "new"):
        log.info("breach for lead %s ignored: unknown or closed", sla.lead_id)
        return None
    if lead.owner_rep_id is None:
        return await _retry_queued(session, outbox, lead, event, now, settings, metrics)
    if sla.owner_rep_id and sla.owner_rep_id != lead.owner_rep_id:
        # The breach is about an owner the lead no longer has; it was already re-routed.
        log.info("breach for lead %s ignored: it is about former owner %s", sla.lead_id, sla.owner_rep_id)
        return None
    breach_count = max(lead.breach_count + 1, sla.breach_count)
    await session.execute(update(lead_table).where(lead_table.c.id == lead.id).values(breach_count=breach_count))
    current = lead.owner_rep_id
    data: Mapping[str, Any] = lead.data
    fields = domain.lead_fields(data)
    tier = data.get("tier")
    team_id = lead.team_id
    if team_id is None:
        owner = await _load_rep(session, current)
        team_id = owner.team_id if owner else None
    team, reps = await lock_team(session, team_id) if team_id else (None, [])
    audit: dict[str, Any] = {"decided_at": now.isoformat(), "tier": tier, "breach_count": breach_count,
                             "previous_owner_rep_id": current, "team_id": team_id}
    escalate = domain.should_escalate(breach_count, team, default_after=settings.default_escalate_after_breaches,
                                      requested=sla.escalate)
    decision: Decision | None = None
    if not escalate and team is not None:
        pick = domain.pick_rep(team, reps, fields, now, tier=tier, exclude=frozenset({current}))
        audit.update(pick.audit())
        if pick.rep_id is not None:
            chosen = next(r for r in reps if r.id == pick.rep_id)
            decision = Decision("rerouted", f"SLA breach #{breach_count}: reassigned within team {team.id}",
                                rep=chosen, team_id=team.id, strategy=team.strategy, pick=pick, audit=audit)
        else:
            escalate = True
            audit["escalation"] = "no other rep of the team is available"
    if decision is None and escalate and team is not None and team.manager_rep_id:
        manager = await lock_rep(session, team.manager_rep_id)
        skipped = "unknown_rep" if manager is None else ("inactive" if not manager.active else None)
        audit["manager"] = {"rep_id": team.manager_rep_id, "skipped": skipped}
        if manager is not None and skipped is None and manager.id != current:
            decision = Decision("escalated", f"SLA breach #{breach_count}: escalated to manager of team {team.id}",
                                rep=manager, team_id=team.id, audit=audit)
    if decision is None:
        log.warning("lead %s breached its SLA (#%d) but nobody else can take it; owner stays %s",
                    lead.id, breach_count, current)
        await session.execute(
            insert(assignment_table).values(
                id=f"asg_{uuid.uuid4().hex}", lead_id=lead.id, outcome="unchanged", rep_id=current,
                team_id=lead.team_id, reason=f"SLA breach #{breach_count}: no other rep available; owner kept",
                reroute=False, reroute_reason="sla_breach", audit=audit, created_at=now,
            )
        )
        return None
    reason = "sla_breach_escalation" if decision.outcome == "escalated" else "sla_breach"
    return await apply_decision(session, outbox, lead, decision, now, event, metrics, reroute_reason=reason,
                                previous_owner=current)


async def _retry_queued(
    session: AsyncSession,
    outbox: Outbox,
    lead: Any,
    event: Event[LeadSla],
    now: datetime,
    settings: Settings,
    metrics: RoutingMetrics | None,
) -> Routed | None:
    """A lead waiting in a queue breached: route it afresh, since someone may be available now."""
    breach_count = max(lead.breach_count + 1, event.data.breach_count)
    await session.execute(update(lead_table).where(lead_table.c.id == lead.id).values(breach_count=breach_count))
    decision = await decide(session, lead.data, now, settings)
    if decision.outcome == "fallback":
        log.warning("queued lead %s breached its SLA (#%d) and still nobody can take it", lead.id, breach_count)
        return None
    decision.audit["breach_count"] = breach_count
    decision.outcome = "rerouted"
    return await apply_decision(session, outbox, lead, decision, now, event, metrics, reroute_reason="sla_breach")


class UnknownLead(LookupError):
    pass


@dataclass(frozen=True)
class TouchRecorded:
    touch_id: str
    lead_id: str
    touch_type: str
    owner_rep_id: str | None
    owner_mismatch: bool
    duplicate: bool = False


async def record_touch(
    session: AsyncSession,
    outbox: Outbox,
    lead_id: str,
    *,
    touch_type: TouchType,
    now: datetime,
    rep_id: str | None = None,
    reason: str | None = None,
    occurred_at: datetime | None = None,
    integration: str | None = None,
    external_id: str | None = None,
) -> TouchRecorded:
    """A CRM callback becomes a touch row and a ``lead.touched`` event, in one transaction.

    An event naming a rep other than the owner is kept, flagged ``owner_mismatch``.
    """
    lead = await _lock_lead(session, lead_id)
    if lead is None:
        raise UnknownLead(lead_id)
    if external_id is not None:
        seen = (
            await session.execute(
                select(touch_table).where(touch_table.c.integration == integration,
                                          touch_table.c.external_id == external_id)
            )
        ).first()
        if seen is not None:
            return TouchRecorded(seen.id, seen.lead_id, seen.touch_type, seen.owner_rep_id, seen.owner_mismatch,
                                 duplicate=True)
    owner = lead.owner_rep_id
    mismatch = rep_id is not None and rep_id != owner
    touch_id = f"tch_{uuid.uuid4().hex}"
    when = occurred_at or now
    await session.execute(
        insert(touch_table).values(
            id=touch_id, lead_id=lead_id, touch_type=touch_type, rep_id=rep_id, owner_rep_id=owner,
            owner_mismatch=mismatch, reason=reason, integration=integration, external_id=external_id,
            occurred_at=when, created_at=now,
        )
    )
    if touch_type in CLOSING_TOUCHES and lead.status != "closed":
        await session.execute(
            update(lead_table).where(lead_table.c.id == lead_id).values(status="closed", closed_at=now, updated_at=now)
        )
        if owner is not None:
            await _release(session, owner)
    if mismatch:
        log.warning("CRM reported %s on lead %s by %s, but the owner is %s", touch_type, lead_id, rep_id, owner)
    touched = LeadTouched(
        lead_id=lead_id, touch_id=touch_id, touch_type=touch_type, occurred_at=when, rep_id=rep_id or owner,
        reason=reason, integration=integration, owner_mismatch=mismatch,
    )
    await outbox.add(
        session,
        new_event(touched, source=SOURCE, subject=lead_id, correlation_id=lead.correlation_id,
                  lead_captured_at=lead.lead_captured_at, time=now),
    )
    return TouchRecorded(touch_id, lead_id, touch_type, owner, mismatch)


async def assignment_view(session: AsyncSession, lead_id: str) -> dict[str, Any] | None:
    """The lead's current owner and the full audit trail of every decision about it."""
    lead = (await session.execute(select(lead_table).where(lead_table.c.id == lead_id))).first()
    if lead is None or lead.status == "new":
        return None
    owner = None
    if lead.owner_rep_id:
        rep = (await session.execute(select(rep_table).where(rep_table.c.id == lead.owner_rep_id))).first()
        owner = {"rep_id": lead.owner_rep_id, "name": rep.name if rep else None, "email": rep.email if rep else None,
                 "team_id": rep.team_id if rep else lead.team_id}
    history = (
        await session.execute(
            select(assignment_table).where(assignment_table.c.lead_id == lead_id)
            .order_by(assignment_table.c.created_at, assignment_table.c.id)
        )
    ).all()
    current = next((h for h in history if h.id == lead.last_assignment_id), None)
    return {
        "lead_id": lead_id,
        "status": lead.status,
        "owner": owner,
        "team_id": lead.team_id,
        "queue": lead.queue,
        "assignment_id": lead.last_assignment_id,
        "reason": current.reason if current else None,
        "rule_id": current.rule_id if current else None,
        "strategy": current.strategy if current else None,
        "routed_at": lead.routed_at,
        "breach_count": lead.breach_count,
        "history": [
            {
                "assignment_id": h.id, "at": h.created_at, "outcome": h.outcome, "rep_id": h.rep_id,
                "team_id": h.team_id, "queue": h.queue, "reason": h.reason, "rule_id": h.rule_id,
                "ruleset_version": h.ruleset_version, "strategy": h.strategy, "reroute": h.reroute,
                "reroute_reason": h.reroute_reason, "previous_owner_rep_id": h.previous_owner_rep_id,
                "escalated": h.escalated, "audit": h.audit,
            }
            for h in history
        ],
    }
