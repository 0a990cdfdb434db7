"""Routing's use cases over one transaction: route a scored lead, re-route on SLA breach, record a
CRM touch. Fairness lives in PostgreSQL: a team's row is locked while its rotation advances, and
the reps' counters are updated under their row locks, so replicas never race.

The consumer paths run plain SQL on the transaction's asyncpg connection (``driver_connection``):
a SQLAlchemy statement costs several times the CPU of the same statement through asyncpg, and a
lead is routed in a handful of statements (upsert the lead, lock the team and its reps, write the
decision), see docs/performance.md."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

import asyncpg
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import Event, LeadRouted, LeadScored, LeadSla, LeadTouched, RoutedOwner, follow_up, new_event
from leadflow_contracts.events import TouchType
from leadflow_kit.db import driver_connection
from leadflow_kit.outbox import Outbox
from leadflow_kit.webhooks import enqueue_webhook
from leadflow_routing import domain
from leadflow_routing.settings import Settings
from leadflow_routing.tables import assignment as assignment_table
from leadflow_routing.tables import lead as lead_table
from leadflow_routing.tables import rep as rep_table
from leadflow_routing.tables import touch as touch_table

log = logging.getLogger(__name__)

SOURCE = "routing"
WEBHOOK_EVENT_TYPE = "lead.routed"
# A repeat fill of a lead already routed tells the CRM what changed; the hand-off is not restarted.
WEBHOOK_UPDATE_EVENT_TYPE = "lead.updated"
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

REP_COLUMNS = (
    "id", "name", "email", "team_id", "territories", "weight", "daily_capacity", "max_open_leads", "timezone",
    "working_hours", "out_of_office", "active", "open_leads", "assigned_today", "assigned_day", "rr_credit",
    "last_assigned_at",
)
TEAM_COLUMNS = ("id", "name", "strategy", "manager_rep_id", "escalate_after_breaches", "fallback_queue",
                "rr_last_rep_id")
REP_SELECT = ", ".join(REP_COLUMNS)
TEAM_SELECT = ", ".join(TEAM_COLUMNS)

SELECT_REP = f"SELECT {REP_SELECT} FROM rep WHERE id = $1"
LOCK_REP = f"{SELECT_REP} FOR UPDATE"
SELECT_TEAM = f"SELECT {TEAM_SELECT} FROM team WHERE id = $1"
LOCK_TEAM = f"{SELECT_TEAM} FOR UPDATE"
# One statement for a team and its reps. The team's columns carry a ``team_`` prefix, and FOR UPDATE
# locks the team's row, then each rep's in id order (the order of the rows): the lock order of
# every other path.
SELECT_TEAM_REPS = (
    "SELECT " + ", ".join(f"t.{c} AS team_{c}" for c in TEAM_COLUMNS) + ", "
    + ", ".join(f"r.{c}" for c in REP_COLUMNS)
    + " FROM team t JOIN rep r ON r.team_id = t.id WHERE t.id = $1 ORDER BY r.id"
)
LOCK_TEAM_REPS = f"{SELECT_TEAM_REPS} FOR UPDATE"


def rep_from_row(row: Any) -> domain.Rep:
    """A rep from any row that reads by column name (an asyncpg record, a SQLAlchemy row's mapping)."""
    return domain.Rep(
        id=row["id"], name=row["name"], email=row["email"], team_id=row["team_id"],
        territories=tuple(row["territories"] or ()), weight=row["weight"], daily_capacity=row["daily_capacity"],
        max_open_leads=row["max_open_leads"], timezone=row["timezone"],
        working_hours=domain.parse_working_hours(row["working_hours"]),
        out_of_office=tuple(
            domain.OutOfOffice(datetime.fromisoformat(o["start"]), datetime.fromisoformat(o["end"]), o.get("reason"))
            for o in row["out_of_office"] or ()
        ),
        active=row["active"], open_leads=row["open_leads"], assigned_today=row["assigned_today"],
        assigned_day=row["assigned_day"], rr_credit=row["rr_credit"], last_assigned_at=row["last_assigned_at"],
    )


def team_from_row(row: Any, prefix: str = "") -> domain.Team:
    return domain.Team(
        id=row[f"{prefix}id"], name=row[f"{prefix}name"], strategy=row[f"{prefix}strategy"],
        manager_rep_id=row[f"{prefix}manager_rep_id"],
        escalate_after_breaches=row[f"{prefix}escalate_after_breaches"],
        fallback_queue=row[f"{prefix}fallback_queue"], rr_last_rep_id=row[f"{prefix}rr_last_rep_id"],
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


@dataclass(frozen=True)
class StoredLead:
    """The lead row as the handlers use it."""

    id: str
    data: Mapping[str, Any]
    correlation_id: str | None
    lead_captured_at: datetime | None
    status: str
    owner_rep_id: str | None
    team_id: str | None
    breach_count: int


LEAD_SELECT = "id, data, correlation_id, lead_captured_at, status, owner_rep_id, team_id, breach_count"


def lead_from_row(row: Any, data: Mapping[str, Any] | None = None) -> StoredLead:
    return StoredLead(
        id=row["id"], data=row["data"] if data is None else data, correlation_id=row["correlation_id"],
        lead_captured_at=row["lead_captured_at"], status=row["status"], owner_rep_id=row["owner_rep_id"],
        team_id=row["team_id"], breach_count=row["breach_count"],
    )


class RulesetCache:
    """The routing rules of the version last seen active, per process.

    A version's rules never change once written (the admin API only adds versions and moves the
    ``active`` flag), so a version, told apart by its number and creation time (a recreated
    database reuses numbers), maps to one rule set for good. Which version is active is read again
    in each lead's first statement, so every replica follows an activation at its next lead.
    """

    def __init__(self) -> None:
        self._key: tuple[int, datetime] | None = None
        self._ruleset: domain.RuleSet | None = None

    async def get(self, conn: asyncpg.Connection, version: int | None, created_at: datetime | None
                  ) -> domain.RuleSet | None:
        """The rule set of ``version`` (None: no version is active)."""
        if version is None or created_at is None:
            return None
        if self._key == (version, created_at) and self._ruleset is not None:
            return self._ruleset
        row = await conn.fetchrow("SELECT rules, fallback_queue FROM routing_ruleset WHERE version = $1", version)
        if row is None:
            return None
        ruleset = ruleset_from_json(version, row["rules"], row["fallback_queue"])
        self._key, self._ruleset = (version, created_at), ruleset
        return ruleset

    async def active(self, conn: asyncpg.Connection) -> domain.RuleSet | None:
        row = await conn.fetchrow("SELECT version, created_at FROM routing_ruleset WHERE active")
        return await self.get(conn, row["version"], row["created_at"]) if row else None


async def active_ruleset(session: AsyncSession) -> domain.RuleSet | None:
    conn = await driver_connection(session)
    row = await conn.fetchrow("SELECT version, rules, fallback_queue FROM routing_ruleset WHERE active")
    return ruleset_from_json(row["version"], row["rules"], row["fallback_queue"]) if row else None


async def lock_rep(conn: asyncpg.Connection, rep_id: str) -> domain.Rep | None:
    row = await conn.fetchrow(LOCK_REP, rep_id)
    return rep_from_row(row) if row else None


async def _load_rep(conn: asyncpg.Connection, rep_id: str) -> domain.Rep | None:
    row = await conn.fetchrow(SELECT_REP, rep_id)
    return rep_from_row(row) if row else None


async def lock_team(conn: asyncpg.Connection, team_id: str) -> tuple[domain.Team | None, list[domain.Rep]]:
    """The team and its reps, row-locked (team first, reps by id: one lock order everywhere)."""
    return await _team_with_reps(conn, team_id, lock=True)


async def load_team(conn: asyncpg.Connection, team_id: str) -> tuple[domain.Team | None, list[domain.Rep]]:
    """Like ``lock_team`` without the locks: for dry runs."""
    return await _team_with_reps(conn, team_id, lock=False)


async def _team_with_reps(
    conn: asyncpg.Connection, team_id: str, *, lock: bool
) -> tuple[domain.Team | None, list[domain.Rep]]:
    rows = await conn.fetch(LOCK_TEAM_REPS if lock else SELECT_TEAM_REPS, team_id)
    if rows:
        return team_from_row(rows[0], "team_"), [rep_from_row(r) for r in rows]
    # No rep joined: the team has none, or does not exist.
    row = await conn.fetchrow(LOCK_TEAM if lock else SELECT_TEAM, team_id)
    return (team_from_row(row), []) if row else (None, [])


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
    conn: asyncpg.Connection,
    data: Mapping[str, Any],
    now: datetime,
    settings: Settings,
    ruleset: domain.RuleSet | None,
    *,
    lock: bool = True,
) -> Decision:
    """Account owner first, then the first matching rule of ``ruleset`` (the active one, or None
    when no version is active), its rep or team, else the fallback queue.

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
        owner = await _load_rep(conn, owner_id)
        skipped: str | None = "unknown_rep" if owner is None else domain.unavailability(owner, now, tier=tier)
        if lock and owner is not None and skipped is None:
            owner = await lock_rep(conn, owner_id)
            skipped = "unknown_rep" if owner is None else domain.unavailability(owner, now, tier=tier)
        audit["account_owner"] = {"account_id": account.get("account_id"), "rep_id": owner_id, "skipped": skipped}
        if owner is not None and skipped is None:
            return Decision("account_owner", f"account owner of {account.get('name') or account.get('account_id')}",
                            rep=owner, team_id=owner.team_id, audit=audit)

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
        rep = await lock_rep(conn, rule.rep_id) if lock else await _load_rep(conn, rule.rep_id)
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
    team, reps = await (lock_team(conn, team_id) if lock else load_team(conn, team_id))
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


# -- applying -------------------------------------------------------------------------------

# Everything a decision changes, in one statement: the reps' counters and credits, the team's turn,
# the lead, and the audit row. Each table is written once (of two updates of one row in one
# statement PostgreSQL applies only one), so a rep counted and re-credited is one row of ``change``.
# A counted rep takes a lead (its daily counter restarts on a new local day); a released one gives
# one back; a credit is its new weighted round-robin balance. A NULL team id advances no team.
WRITE_DECISION = """
WITH rep_change AS (
    UPDATE rep SET
        open_leads = CASE WHEN change.counted THEN rep.open_leads + 1
                          WHEN change.released THEN greatest(rep.open_leads - 1, 0)
                          ELSE rep.open_leads END,
        assigned_today = CASE WHEN NOT change.counted THEN rep.assigned_today
                              WHEN rep.assigned_day = change.day THEN rep.assigned_today + 1
                              ELSE 1 END,
        assigned_day = CASE WHEN change.counted THEN change.day ELSE rep.assigned_day END,
        last_assigned_at = CASE WHEN change.counted THEN $17 ELSE rep.last_assigned_at END,
        rr_credit = coalesce(change.credit, rep.rr_credit)
    FROM unnest($18::text[], $19::boolean[], $20::boolean[], $21::date[], $22::bigint[])
        AS change(id, counted, released, day, credit)
    WHERE rep.id = change.id
), team_turn AS (
    UPDATE team SET assignments = team.assignments + 1, rr_last_rep_id = coalesce($24, team.rr_last_rep_id)
    WHERE team.id = $23
), lead_change AS (
    UPDATE lead SET owner_rep_id = $4, team_id = $5, queue = $6, status = $25, last_assignment_id = $1,
        routed_at = $17, updated_at = $17
    WHERE lead.id = $2
)
INSERT INTO assignment (id, lead_id, outcome, rep_id, team_id, queue, reason, rule_id, ruleset_version,
    strategy, reroute, reroute_reason, previous_owner_rep_id, escalated, audit, event_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::jsonb, $16, $17)
"""


@dataclass
class _RepChange:
    counted_on: date | None = None
    released: bool = False
    credit: int | None = None


@dataclass
class Routed:
    assignment_id: str
    decision: Decision
    event: Event[LeadRouted]


async def apply_decision(
    session: AsyncSession,
    conn: asyncpg.Connection,
    outbox: Outbox,
    lead: StoredLead,
    decision: Decision,
    now: datetime,
    cause: Event[Any] | None,
    metrics: RoutingMetrics | None,
    *,
    reroute_reason: str | None = None,
    previous_owner: str | None = None,
    count_kept_owner: bool = False,
) -> Routed:
    """Write the decision: counters, strategy state, the lead, the audit row, lead.routed, webhooks.

    A kept owner is counted only with ``count_kept_owner`` (a duplicate of another lead): the lead
    it keeps was counted when it was routed.
    """
    data: Mapping[str, Any] = lead.data
    changes: dict[str, _RepChange] = {}
    if decision.rep is not None and (decision.outcome != "kept_owner" or count_kept_owner):
        changes.setdefault(decision.rep.id, _RepChange()).counted_on = decision.rep.local_day(now)
    turn_team_id: str | None = None
    rr_last_rep_id: str | None = None
    pick = decision.pick
    if pick is not None and pick.rep_id is not None and decision.team_id:
        turn_team_id = decision.team_id
        if pick.strategy == "round_robin":
            rr_last_rep_id = pick.rep_id
        for rep_id, credit in pick.credits.items():
            changes.setdefault(rep_id, _RepChange()).credit = credit
    if previous_owner and (decision.rep is None or decision.rep.id != previous_owner):
        changes.setdefault(previous_owner, _RepChange()).released = True

    assignment_id = f"asg_{uuid.uuid4().hex}"
    owner = decision.rep
    status = "assigned" if owner is not None else "queued"
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
        kept_owner=decision.outcome == "kept_owner",
        form_key=data.get("form_key"),
        attribution=data.get("attribution") or {},
    )
    event: Event[LeadRouted] = (
        follow_up(cause, routed, source=SOURCE, subject=lead.id, time=now) if cause is not None
        else new_event(routed, source=SOURCE, subject=lead.id, correlation_id=lead.correlation_id,
                       lead_captured_at=lead.lead_captured_at, time=now)
    )
    await conn.execute(
        WRITE_DECISION,
        assignment_id, lead.id, decision.outcome, owner.id if owner else None, decision.team_id, decision.queue,
        decision.reason, decision.rule_id, decision.ruleset_version, decision.strategy,
        reroute_reason is not None, reroute_reason, previous_owner, decision.outcome == "escalated",
        json.dumps(decision.audit), event.id, now,
        list(changes), [c.counted_on is not None for c in changes.values()],
        [c.released for c in changes.values()], [c.counted_on for c in changes.values()],
        [c.credit for c in changes.values()],
        turn_team_id, rr_last_rep_id, status,
    )
    await outbox.add(session, event)
    refill = decision.outcome == "kept_owner" and not count_kept_owner
    await enqueue_webhook(
        session, event_type=WEBHOOK_UPDATE_EVENT_TYPE if refill else WEBHOOK_EVENT_TYPE, lead_id=lead.id,
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

# The lead's snapshot is stored (inserted, or its data refreshed) and row-locked by the conflict, and
# the same statement reads what routing needs next: the row as it was (an update leaves status,
# owner and team alone), the owner of the lead it duplicates, and which ruleset version is active.
# It runs after the routing lock, so its snapshot sees every earlier routing transaction.
UPSERT_SCORED_LEAD = """
INSERT INTO lead (id, data, correlation_id, lead_captured_at, created_at, updated_at)
VALUES ($1, $2::jsonb, $3, $4, $5, $5)
ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, updated_at = EXCLUDED.updated_at
RETURNING id, correlation_id, lead_captured_at, status, owner_rep_id, team_id, breach_count,
    (SELECT original.owner_rep_id FROM lead original WHERE original.id = $6) AS original_owner_rep_id,
    (SELECT original.team_id FROM lead original WHERE original.id = $6) AS original_team_id,
    (SELECT version FROM routing_ruleset WHERE active) AS ruleset_version,
    (SELECT created_at FROM routing_ruleset WHERE active) AS ruleset_created_at
"""


async def _lock_lead(conn: asyncpg.Connection, lead_id: str) -> StoredLead | None:
    row = await conn.fetchrow(f"SELECT {LEAD_SELECT} FROM lead WHERE id = $1 FOR UPDATE", lead_id)
    return lead_from_row(row) if row else None


async def route_scored_lead(
    session: AsyncSession,
    outbox: Outbox,
    event: Event[LeadScored],
    now: datetime,
    settings: Settings,
    metrics: RoutingMetrics | None = None,
    rulesets: RulesetCache | None = None,
) -> Routed | None:
    """Route a newly scored lead; a lead (or duplicate) already routed keeps its owner.

    A re-score of a known lead (new activity, decay) only refreshes the stored snapshot.
    """
    conn = await driver_connection(session)
    scored = event.data
    payload = scored.model_dump(mode="json")
    duplicate_of = scored.duplicate_of if scored.duplicate_of != scored.lead_id else None
    row = await conn.fetchrow(
        UPSERT_SCORED_LEAD, scored.lead_id, json.dumps(payload), event.correlation_id, event.lead_captured_at, now,
        duplicate_of,
    )
    assert row is not None  # an upsert returns its row
    lead = lead_from_row(row, payload)

    # A new lead comes back with status "new", like one stored but never routed.
    kept_from: tuple[str, str, str | None] | None = None
    if lead.status != "new":
        if scored.duplicate_of is None and scored.trigger != "enriched":
            return None
        if lead.owner_rep_id is not None:
            kept_from = (lead.id, lead.owner_rep_id, lead.team_id)
    if kept_from is None and duplicate_of and row["original_owner_rep_id"] is not None:
        kept_from = (duplicate_of, row["original_owner_rep_id"], row["original_team_id"])

    if kept_from is not None:
        kept_id, kept_owner, kept_team = kept_from
        owner = await lock_rep(conn, kept_owner) or domain.Rep(id=kept_owner)
        decision = Decision(
            "kept_owner", f"duplicate of already-routed lead {kept_id}: keeps its owner",
            rep=owner, team_id=kept_team,
            audit={"decided_at": now.isoformat(), "kept_owner_of": kept_id, "owner_rep_id": kept_owner},
        )
        return await apply_decision(session, conn, outbox, lead, decision, now, event, metrics,
                                    count_kept_owner=kept_id != lead.id)

    ruleset = await (rulesets or RulesetCache()).get(conn, row["ruleset_version"], row["ruleset_created_at"])
    decision = await decide(conn, payload, now, settings, ruleset)
    return await apply_decision(session, conn, outbox, lead, decision, now, event, metrics)


async def reroute_on_breach(
    session: AsyncSession,
    outbox: Outbox,
    event: Event[LeadSla],
    now: datetime,
    settings: Settings,
    metrics: RoutingMetrics | None = None,
    rulesets: RulesetCache | None = None,
) -> Routed | None:
    """On an SLA breach hand the lead to the next available rep of its team (never the same rep
    again) or, after enough breaches, to the team's manager."""
    sla = event.data
    if sla.kind != "breach":
        return None
    conn = await driver_connection(session)
    lead = await _lock_lead(conn, sla.lead_id)
    if lead is None or lead.status in ("closed", "new"):
        log.info("breach for lead %s ignored: unknown or closed", sla.lead_id)
        return None
    if lead.owner_rep_id is None:
        return await _retry_queued(session, conn, outbox, lead, event, now, settings, metrics, rulesets)
    if sla.owner_rep_id and sla.owner_rep_id != lead.owner_rep_id:
        # The breach is about an owner the lead no longer has; it was already re-routed.
        log.info("breach for lead %s ignored: it is about former owner %s", sla.lead_id, sla.owner_rep_id)
        return None
    breach_count = max(lead.breach_count + 1, sla.breach_count)
    await conn.execute("UPDATE lead SET breach_count = $2 WHERE id = $1", lead.id, breach_count)
    current = lead.owner_rep_id
    data: Mapping[str, Any] = lead.data
    fields = domain.lead_fields(data)
    tier = data.get("tier")
    team_id = lead.team_id
    if team_id is None:
        owner = await _load_rep(conn, current)
        team_id = owner.team_id if owner else None
    team, reps = await lock_team(conn, team_id) if team_id else (None, [])
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
        manager = await lock_rep(conn, team.manager_rep_id)
        skipped = "unknown_rep" if manager is None else domain.manager_unavailability(manager, now, tier=tier)
        audit["manager"] = {"rep_id": team.manager_rep_id, "skipped": skipped}
        if manager is not None and skipped is None and manager.id != current:
            decision = Decision("escalated", f"SLA breach #{breach_count}: escalated to manager of team {team.id}",
                                rep=manager, team_id=team.id, audit=audit)
    if decision is None:
        log.warning("lead %s breached its SLA (#%d) but nobody else can take it; owner stays %s",
                    lead.id, breach_count, current)
        await conn.execute(
            "INSERT INTO assignment (id, lead_id, outcome, rep_id, team_id, reason, reroute, reroute_reason, audit,"
            " created_at) VALUES ($1, $2, 'unchanged', $3, $4, $5, false, 'sla_breach', $6::jsonb, $7)",
            f"asg_{uuid.uuid4().hex}", lead.id, current, lead.team_id,
            f"SLA breach #{breach_count}: no other rep available; owner kept", json.dumps(audit), now,
        )
        return None
    reason = "sla_breach_escalation" if decision.outcome == "escalated" else "sla_breach"
    return await apply_decision(session, conn, outbox, lead, decision, now, event, metrics, reroute_reason=reason,
                                previous_owner=current)


async def _retry_queued(
    session: AsyncSession,
    conn: asyncpg.Connection,
    outbox: Outbox,
    lead: StoredLead,
    event: Event[LeadSla],
    now: datetime,
    settings: Settings,
    metrics: RoutingMetrics | None,
    rulesets: RulesetCache | None,
) -> Routed | None:
    """A lead waiting in a queue breached: route it afresh, since someone may be available now."""
    breach_count = max(lead.breach_count + 1, event.data.breach_count)
    await conn.execute("UPDATE lead SET breach_count = $2 WHERE id = $1", lead.id, breach_count)
    ruleset = await (rulesets or RulesetCache()).active(conn)
    decision = await decide(conn, lead.data, now, settings, ruleset)
    if decision.outcome == "fallback":
        log.warning("queued lead %s breached its SLA (#%d) and still nobody can take it", lead.id, breach_count)
        return None
    decision.audit["breach_count"] = breach_count
    decision.outcome = "rerouted"
    return await apply_decision(session, conn, outbox, lead, decision, now, event, metrics,
                                reroute_reason="sla_breach")


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
    conn = await driver_connection(session)
    lead = await _lock_lead(conn, lead_id)
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
        await conn.execute("UPDATE lead SET status = 'closed', closed_at = $2, updated_at = $2 WHERE id = $1",
                           lead_id, now)
        if owner is not None:
            await conn.execute("UPDATE rep SET open_leads = greatest(open_leads - 1, 0) WHERE id = $1", owner)
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
