"""Every SQL statement of routing, behind named methods that take the transaction first.

The consumer paths run plain SQL on the transaction's asyncpg connection (``driver_connection``):
a SQLAlchemy statement costs several times the CPU of the same statement through asyncpg, and a
batch of scored leads is routed in seven statements whatever its size (lock its leads with the active rule
set's key, a savepoint, its teams and reps with the reps' channels, store the leads with their MQL moments,
write the decisions, read sla's replicated policies, queue the webhooks), see docs/performance.md.
Fairness lives in PostgreSQL: a team's row is locked while its rotation advances, and the reps' counters
are updated under their row locks, so replicas never race.
The admin routes' statements are SQLAlchemy Core, as they were.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import Event, LeadScored
from leadflow_kit.db import Database, driver_connection
from leadflow_kit.webhooks import (
    WebhookHandOff,
    WebhookToQueue,
    enqueue_webhook,
    enqueue_webhooks,
    subscription_patterns,
    subscription_table,
)
from leadflow_routing import domain
from leadflow_routing.notifications.messages import Recipient
from leadflow_routing.notifications.store import recipient_from_row
from leadflow_routing.schemas import (
    QueueCreate,
    RepFields,
    RuleSetCreate,
    RuleSetPublic,
    TeamCreate,
    TeamPublic,
    TeamUpdate,
)
from leadflow_routing.sla_states import SlaSeen
from leadflow_routing.tables import assignment as assignment_table
from leadflow_routing.tables import lead as lead_table
from leadflow_routing.tables import queue as queue_table
from leadflow_routing.tables import rep as rep_table
from leadflow_routing.tables import routing_ruleset as ruleset_table
from leadflow_routing.tables import team as team_table
from leadflow_routing.tables import touch as touch_table

# Held by every change of the rule sets and by the deletions they could name, so a rule set never
# names a team that a concurrent deletion removes.
RULES_LOCK = 0x5EB0

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
LEAD_SELECT = "id, data, correlation_id, lead_captured_at, status, owner_rep_id, team_id, breach_count, handoff_after"

# A batch's up-front locks, one order everywhere: its stored leads by id, then teams by id, then reps
# by id (ORDER BY sorts below the row locking, so rows are locked in that order). Lead rows of a
# batch belong to its partitions, so two consumers never contend for them; the owners returned are
# those of the batch's leads and of the leads they duplicate (read, not locked).
# With $3, it also names those of the leads (or originals) that have scored events parked: a lead's
# later events park behind its earlier ones. A last row (only ``ruleset_version``/``ruleset_created_at``
# set) is the active rule set's key, which the claim needs next: no round trip of its own.
LOCK_LEADS_OWNERS = """
WITH locked AS (SELECT id, owner_rep_id FROM lead WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE)
SELECT id, owner_rep_id, false AS parked, NULL::int AS ruleset_version, NULL::timestamptz AS ruleset_created_at
FROM locked WHERE owner_rep_id IS NOT NULL
UNION ALL SELECT id, owner_rep_id, false, NULL, NULL FROM lead WHERE id = ANY($2::text[]) AND owner_rep_id IS NOT NULL
UNION ALL SELECT DISTINCT lead_id, NULL, true, NULL::int, NULL::timestamptz
FROM parked_lead WHERE $3 AND lead_id = ANY($1::text[] || $2::text[])
UNION ALL SELECT NULL, NULL, NULL, version, created_at FROM routing_ruleset WHERE active
"""
LOCK_TEAMS = f"SELECT {TEAM_SELECT} FROM team WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"
# The reps named, every rep of the teams named and, with $3, the teams' managers.
LOCK_REPS = f"""
SELECT {REP_SELECT} FROM rep
WHERE id = ANY($2::text[]) OR team_id = ANY($1::text[])
    OR ($3 AND id IN (SELECT manager_rep_id FROM team WHERE id = ANY($1::text[])))
ORDER BY id FOR UPDATE
"""

# The scored path's locks, taken without waiting, in one statement: the teams named, then the reps named
# and every rep of the teams it locked. A row another transaction holds comes back with only its
# ``wanted_*`` id set (the caller waits a grace, then parks the leads that need it); SKIP LOCKED never
# waits, so taking both kinds in one statement cannot deadlock. Columns are those of the locked row
# (the latest version), never the statement's snapshot. A team's row has the ``locked_team_`` columns
# and ``wanted_team_id``, a rep's the rep columns, the channels it is told a routing through
# (``notify_*``: the batch's notifications need no read of their own for the reps it locked) and
# ``wanted_rep_id`` (the other kind's are NULL, typed by casting NULL to the table's row type).
TRY_LOCK_ROSTER = f"""
WITH teams AS (SELECT {TEAM_SELECT} FROM team WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE SKIP LOCKED),
reps AS (
    SELECT {", ".join(f"rep.{c}" for c in REP_COLUMNS)}, coalesce(s.email, rep.email) AS notify_email,
        s.slack_user_id AS notify_slack_user_id, s.channels AS notify_channels
    FROM rep LEFT JOIN rep_notification_settings s ON s.rep_id = rep.id AND cardinality(s.channels) > 0
    WHERE rep.id = ANY($2::text[]) OR rep.team_id IN (SELECT id FROM teams)
    ORDER BY rep.id FOR UPDATE OF rep SKIP LOCKED
)
SELECT {", ".join(f"l.{c} AS locked_team_{c}" for c in TEAM_COLUMNS)}, t.id::text AS wanted_team_id,
       {", ".join(f"(NULL::rep).{c}" for c in REP_COLUMNS)},
       (NULL::rep_notification_settings).email AS notify_email,
       (NULL::rep_notification_settings).slack_user_id AS notify_slack_user_id,
       (NULL::rep_notification_settings).channels AS notify_channels,
       NULL::text AS wanted_rep_id, NULL::text AS wanted_rep_team_id
FROM team t LEFT JOIN teams l ON l.id = t.id WHERE t.id = ANY($1::text[])
UNION ALL
SELECT {", ".join(f"(NULL::team).{c}" for c in TEAM_COLUMNS)}, NULL, {", ".join(f"l.{c}" for c in REP_COLUMNS)},
       l.notify_email, l.notify_slack_user_id, l.notify_channels, w.id, w.team_id
FROM rep w LEFT JOIN reps l ON l.id = w.id WHERE w.id = ANY($2::text[]) OR w.team_id IN (SELECT id FROM teams)
"""
PARK_SCORED = """
INSERT INTO parked_lead (lead_id, event, waiting_for, parked_at)
SELECT lead_id, event, ARRAY(SELECT jsonb_array_elements_text(waiting_for)), $4
FROM unnest($1::text[], $2::jsonb[], $3::jsonb[]) AS p(lead_id, event, waiting_for)
"""
# One drainer at a time across replicas (a transaction-scoped advisory lock), so a lead's parked events
# are taken in order by one transaction.
PARKED_TURN_KEY = 0x5041524B  # "PARK"
OLDEST_PARKED = "SELECT seq, event, attempts FROM parked_lead ORDER BY seq LIMIT $1 FOR UPDATE"

# A batch's scored leads stored in one statement, each once (the data of its batch's last event, the
# correlation of its first, as one upsert per event leaves them), row-locked by the conflict; it returns
# each row as it was before (an update leaves status, owner and team alone), then the owners and teams
# of the leads they duplicate ($6, read as the statement starts), and the active rule set's version.
# It also notes the leads' first MQL moments once (lead.mql is sent once): a lead one of whose events is
# an MQL ($7) gets ``mql_notified_at`` unless it has one, and is a first MQL when this statement set it
# (the RETURNING's subquery reads the row, by key, as the statement's snapshot saw it before its own
# write; a lead it inserts was not there). ``lifecycle_wanted``: whether any subscription takes one of
# the lifecycle types $8 (false when none is asked for).
UPSERT_SCORED_LEADS = """
WITH given AS (
    SELECT * FROM unnest($1::text[], $2::jsonb[], $3::text[], $4::timestamptz[], $7::boolean[])
        AS g(id, data, correlation_id, lead_captured_at, mql)
), stored AS (
    INSERT INTO lead (id, data, correlation_id, lead_captured_at, created_at, updated_at, mql_notified_at)
    SELECT id, data, correlation_id, lead_captured_at, $5, $5, CASE WHEN mql THEN $5::timestamptz END
    FROM given ORDER BY id
    ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, updated_at = EXCLUDED.updated_at,
        mql_notified_at = coalesce(lead.mql_notified_at, EXCLUDED.mql_notified_at)
    RETURNING id, correlation_id, lead_captured_at, status, owner_rep_id, team_id, breach_count, handoff_after,
        mql_notified_at IS NOT NULL
            AND (SELECT before.mql_notified_at FROM lead AS before WHERE before.id = lead.id) IS NULL AS first_mql
), active AS (SELECT version, created_at FROM routing_ruleset WHERE active)
SELECT true AS stored, s.*, a.version AS ruleset_version, a.created_at AS ruleset_created_at,
    cardinality($8::varchar[]) > 0
        AND EXISTS (SELECT 1 FROM webhook_subscription WHERE deleted_at IS NULL AND event_types && $8::varchar[])
        AS lifecycle_wanted
FROM stored s LEFT JOIN active a ON true
UNION ALL
SELECT false, id, correlation_id, lead_captured_at, status, owner_rep_id, team_id, breach_count, handoff_after,
    false, NULL, NULL, false
FROM lead WHERE id = ANY($6::text[])
"""

# A batch's decisions in one statement, each table once: the reps' counters and credits as the batch
# left them (its rows are locked, so the values computed in memory are the truth), the teams' turns, each
# lead's last decision, and every decision's audit row in order.
WRITE_DECISIONS = """
WITH rep_change AS (
    UPDATE rep SET open_leads = c.open_leads, assigned_today = c.assigned_today, assigned_day = c.assigned_day,
        last_assigned_at = c.last_assigned_at, rr_credit = c.rr_credit
    FROM unnest($1::text[], $2::int[], $3::int[], $4::date[], $5::timestamptz[], $6::bigint[])
        AS c(id, open_leads, assigned_today, assigned_day, last_assigned_at, rr_credit)
    WHERE rep.id = c.id
), team_turn AS (
    UPDATE team SET assignments = team.assignments + t.turns, rr_last_rep_id = coalesce(t.last_rep, team.rr_last_rep_id)
    FROM unnest($7::text[], $8::int[], $9::text[]) AS t(id, turns, last_rep)
    WHERE team.id = t.id
), lead_change AS (
    UPDATE lead SET owner_rep_id = l.owner_rep_id, team_id = l.team_id, queue = l.queue, status = l.status,
        last_assignment_id = l.assignment_id, routed_at = l.at, updated_at = l.at,
        handoff_after = CASE WHEN l.clear_handoff THEN NULL ELSE lead.handoff_after END
    FROM unnest($10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::timestamptz[],
                $17::boolean[]) AS l(id, owner_rep_id, team_id, queue, status, assignment_id, at, clear_handoff)
    WHERE lead.id = l.id
)
INSERT INTO assignment (id, lead_id, outcome, rep_id, team_id, queue, reason, rule_id, ruleset_version,
    strategy, reroute, reroute_reason, previous_owner_rep_id, escalated, audit, event_id, created_at)
SELECT * FROM unnest($18::text[], $19::text[], $20::text[], $21::text[], $22::text[], $23::text[], $24::text[],
    $25::text[], $26::int[], $27::text[], $28::boolean[], $29::text[], $30::text[], $31::boolean[], $32::jsonb[],
    $33::text[], $34::timestamptz[])
"""

# Any subscription (disabled ones hold their deliveries) to one of the patterns.
WEBHOOK_WANTED = (
    "SELECT EXISTS (SELECT 1 FROM webhook_subscription WHERE deleted_at IS NULL AND event_types && $1::varchar[])"
)

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


# -- typed values ---------------------------------------------------------------------------


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


def ruleset_from_json(
    version: int, rules: Sequence[Mapping[str, Any]], fallback_queue: str | None, handoff: domain.Handoff = "first_fill"
) -> domain.RuleSet:
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
        handoff=handoff,
    )


@dataclass(frozen=True)
class StoredLead:
    """The lead row as the handlers use it: its latest ``lead.scored`` snapshot and routing state."""

    id: str
    scored: LeadScored
    correlation_id: str | None
    lead_captured_at: datetime | None
    status: str
    owner_rep_id: str | None
    team_id: str | None
    breach_count: int
    # Set when the CRM sent the lead back to nurture: no hand-off to sales before then.
    handoff_after: datetime | None = None


def _patterns(event_types: Sequence[str]) -> list[str]:
    return sorted({pattern for event_type in event_types for pattern in subscription_patterns(event_type)})


def lead_from_row(row: Any, scored: LeadScored | None = None) -> StoredLead:
    return StoredLead(
        id=row["id"], scored=LeadScored.model_validate(row["data"]) if scored is None else scored,
        correlation_id=row["correlation_id"], lead_captured_at=row["lead_captured_at"], status=row["status"],
        owner_rep_id=row["owner_rep_id"], team_id=row["team_id"], breach_count=row["breach_count"],
        handoff_after=row["handoff_after"],
    )


@dataclass(frozen=True)
class LeadsClaim:
    """A scored batch's stored leads, locked: the owners of them and of their originals (lead id: rep),
    which of them have scored events parked, and the rule set active then (None: none is)."""

    owners: Mapping[str, str]
    parked: frozenset[str]
    active_ruleset: RulesetKey | None = None


@dataclass(frozen=True)
class TriedRoster:
    """What ``try_lock_roster`` took: the teams and reps locked (by id), the teams another transaction
    holds, the reps it holds (id: their team), and those of the reps locked that are told a routing
    through a channel, as notifications reach them."""

    teams: dict[str, domain.Team]
    busy_teams: set[str]
    reps: dict[str, domain.Rep]
    busy_reps: dict[str, str | None]
    recipients: dict[str, Recipient] = field(default_factory=dict)


@dataclass(frozen=True)
class ParkedScored:
    """A scored event to park, and the rows it waits for (``team:<id>``, ``rep:<id>``, ``lead:<id>``)."""

    event: Event[LeadScored]
    waiting_for: tuple[str, ...]


@dataclass(frozen=True)
class ParkedRow:
    seq: int
    event: Event[LeadScored]
    attempts: int


@dataclass(frozen=True)
class ParkedLead:
    seq: int
    lead_id: str
    waiting_for: list[str]
    attempts: int
    last_error: str | None
    parked_at: datetime


def _parked_row(row: Any) -> ParkedRow:
    # The session's connection decodes jsonb (SQLAlchemy's codec); a bare asyncpg one gives text.
    event = row["event"]
    parsed = (Event[LeadScored].model_validate_json(event) if isinstance(event, str)
              else Event[LeadScored].model_validate(event))
    return ParkedRow(row["seq"], parsed, row["attempts"])


@dataclass(frozen=True)
class RulesetKey:
    """A rule set version as stored: its number and creation time (a recreated database reuses numbers)."""

    version: int
    created_at: datetime


class RulesetCache:
    """The routing rules of the version last seen active, per process.

    A version's rules never change once written (the admin API only adds versions and moves the
    ``active`` flag), so a version, told apart by its number and creation time, maps to one rule set
    for good. Which version is active is read again in each lead's first statement, so every replica
    follows an activation at its next lead.
    """

    def __init__(self) -> None:
        self._key: RulesetKey | None = None
        self._ruleset: domain.RuleSet | None = None

    def get(self, key: RulesetKey) -> domain.RuleSet | None:
        return self._ruleset if self._key == key else None

    def put(self, key: RulesetKey, ruleset: domain.RuleSet) -> None:
        self._key, self._ruleset = key, ruleset


@dataclass(frozen=True)
class UpsertedLead:
    """A scored lead as stored, the routing of the lead it duplicates, and the active rule set."""

    lead: StoredLead
    original_owner_rep_id: str | None
    original_team_id: str | None
    active_ruleset: RulesetKey | None


@dataclass(frozen=True)
class ScoredInput:
    """A lead as a batch stores it: its last event's snapshot, its first event's correlation, and whether any
    of its events is an MQL (its first MQL moment is noted if it has none)."""

    scored: LeadScored
    correlation_id: str | None
    lead_captured_at: datetime | None
    mql: bool = False


@dataclass(frozen=True)
class UpsertedBatch:
    """A batch's scored leads as they were before it (their snapshots the batch's), the owners and teams
    of the other leads they duplicate, and the active rule set."""

    leads: dict[str, StoredLead]
    originals: dict[str, tuple[str | None, str | None]]
    active_ruleset: RulesetKey | None
    # The leads whose first MQL moment the batch noted, and whether any subscription takes the lifecycle
    # types asked for.
    first_mql: frozenset[str] = frozenset()
    lifecycle_wanted: bool = False


@dataclass(frozen=True)
class DecisionsWrite:
    """A batch's decisions: each one's audit row (in order), the reps and teams as the batch left them,
    and the leads whose nurture cool-down a hand-off ended."""

    assignments: Sequence[domain.AssignmentWrite]
    reps: Sequence[domain.Rep]
    turns: Mapping[str, domain.TeamTurns]
    handoff_cleared: frozenset[str]


@dataclass(frozen=True)
class Touch:
    id: str
    lead_id: str
    touch_type: str
    rep_id: str | None
    owner_rep_id: str | None
    owner_mismatch: bool
    reason: str | None
    integration: str | None
    external_id: str | None
    occurred_at: datetime
    created_at: datetime


# A CRM webhook to queue for every subscription to its ``event_type`` (the kit's type).
WebhookRequest = WebhookToQueue


@dataclass(frozen=True)
class AssignmentRecord:
    id: str
    created_at: datetime
    outcome: str
    rep_id: str | None
    team_id: str | None
    queue: str | None
    reason: str
    rule_id: str | None
    ruleset_version: int | None
    strategy: str | None
    reroute: bool
    reroute_reason: str | None
    previous_owner_rep_id: str | None
    escalated: bool
    audit: dict[str, Any]


@dataclass(frozen=True)
class OwnerRecord:
    rep_id: str
    name: str | None
    email: str | None
    team_id: str | None


@dataclass(frozen=True)
class LeadAssignments:
    """A lead's routing state, its owner, and every decision about it (oldest first)."""

    lead_id: str
    status: str
    owner: OwnerRecord | None
    team_id: str | None
    queue: str | None
    last_assignment_id: str | None
    routed_at: datetime | None
    breach_count: int
    history: list[AssignmentRecord]


@dataclass(frozen=True)
class RepRecord:
    """A rep as stored: the routing view of it, its schedule as written, and when it changed."""

    rep: domain.Rep
    working_hours: dict[str, list[str]] | None
    out_of_office: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class QueueRecord:
    id: str
    name: str
    description: str | None
    created_at: datetime


@dataclass(frozen=True)
class QueuedLead:
    lead_id: str
    queued_at: datetime | None
    team_id: str | None


@dataclass(frozen=True)
class QueueEntry:
    """A lead waiting in a queue, as a worked queue lists it: what a rep needs to pick it, and the
    last SLA warning or breach of its current clock (None: none fired yet)."""

    lead_id: str
    queued_at: datetime
    team_id: str | None
    tier: str | None
    score: float | None
    company: str | None
    job_title: str | None
    country: str | None
    sla_kind: str | None
    sla_due_at: datetime | None
    sla_breach_count: int | None


# A queue's waiting leads (after a (routed_at, id) position: the next page), oldest first, each with the
# SLA row of the clock started when it was queued (sla starts it at the routed event's time, the lead's
# routed_at). Both read the partial index ix_lead_queued_routed_at in order.
QUEUE_PAGE = """
SELECT l.id, l.routed_at, l.team_id, l.data->>'tier' AS tier, (l.data->>'score')::float8 AS score,
    l.data->'profile'->>'company' AS company, l.data->'profile'->>'job_title' AS job_title,
    l.data->'profile'->>'country' AS country, s.kind, s.due_at, s.breach_count
FROM lead l LEFT JOIN lead_sla s ON s.lead_id = l.id AND s.started_at >= l.routed_at
WHERE l.queue = $1 AND l.status = 'queued' AND l.routed_at IS NOT NULL {after}
ORDER BY l.routed_at, l.id
LIMIT $2
"""
FIRST_QUEUE_PAGE = QUEUE_PAGE.format(after="")
NEXT_QUEUE_PAGE = QUEUE_PAGE.format(after="AND (l.routed_at, l.id) > ($3::timestamptz, $4::text)")
# A lead's latest SLA event; an older one arriving late changes nothing.
RECORD_SLA_SEEN = """
INSERT INTO lead_sla (lead_id, clock_id, kind, started_at, due_at, breach_count, at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::int[],
    $7::timestamptz[])
ON CONFLICT (lead_id) DO UPDATE SET clock_id = EXCLUDED.clock_id, kind = EXCLUDED.kind,
    started_at = EXCLUDED.started_at, due_at = EXCLUDED.due_at, breach_count = EXCLUDED.breach_count,
    at = EXCLUDED.at
WHERE lead_sla.at <= EXCLUDED.at
"""


def _rep_record(row: Any) -> RepRecord:
    return RepRecord(rep_from_row(row._mapping), row.working_hours, list(row.out_of_office), row.created_at,
                     row.updated_at)


def _queue_record(row: Any) -> QueueRecord:
    return QueueRecord(id=row.id, name=row.name, description=row.description, created_at=row.created_at)


def _ruleset_record(row: Any) -> RuleSetPublic:
    return RuleSetPublic.model_validate(row, from_attributes=True)


def _assignment_record(row: Any) -> AssignmentRecord:
    return AssignmentRecord(
        id=row.id, created_at=row.created_at, outcome=row.outcome, rep_id=row.rep_id, team_id=row.team_id,
        queue=row.queue, reason=row.reason, rule_id=row.rule_id, ruleset_version=row.ruleset_version,
        strategy=row.strategy, reroute=row.reroute, reroute_reason=row.reroute_reason,
        previous_owner_rep_id=row.previous_owner_rep_id, escalated=row.escalated, audit=row.audit,
    )


def rep_values(body: RepFields) -> dict[str, Any]:
    """A rep body's columns: only the fields the request set."""
    values = body.model_dump(exclude_unset=True, exclude={"id"})
    if "out_of_office" in values:
        values["out_of_office"] = [o.model_dump(mode="json") for o in body.out_of_office or []]
    if "territories" in values and values["territories"] is None:
        values["territories"] = []
    return values


def _write_decision_args(write: domain.AssignmentWrite) -> tuple[Any, ...]:
    decision, reroute, changes = write.decision, write.reroute, write.rep_changes
    return (
        write.assignment_id, write.lead_id, decision.outcome, decision.rep.id if decision.rep else None,
        decision.team_id, decision.queue, decision.reason, decision.rule_id, decision.ruleset_version,
        decision.strategy, reroute is not None, reroute.reason if reroute else None,
        reroute.previous_owner_rep_id if reroute else None, decision.outcome == "escalated",
        json.dumps(decision.audit), write.event_id, write.at,
        list(changes), [c.counted_on is not None for c in changes.values()],
        [c.released for c in changes.values()], [c.counted_on for c in changes.values()],
        [c.credit for c in changes.values()],
        write.turn_team_id, write.rr_last_rep_id, write.status,
    )


def _write_decisions_args(write: DecisionsWrite) -> tuple[Any, ...]:
    reps, turns = write.reps, sorted(write.turns.items())
    last: dict[str, domain.AssignmentWrite] = {a.lead_id: a for a in write.assignments}
    leads = sorted(last.values(), key=lambda a: a.lead_id)
    rows = [_write_decision_args(a)[:17] for a in write.assignments]
    return (
        [r.id for r in reps], [r.open_leads for r in reps], [r.assigned_today for r in reps],
        [r.assigned_day for r in reps], [r.last_assigned_at for r in reps], [r.rr_credit for r in reps],
        [team_id for team_id, _ in turns], [t.count for _, t in turns], [t.rr_last_rep_id for _, t in turns],
        [a.lead_id for a in leads], [a.decision.rep.id if a.decision.rep else None for a in leads],
        [a.decision.team_id for a in leads], [a.decision.queue for a in leads], [a.status for a in leads],
        [a.assignment_id for a in leads], [a.at for a in leads], [a.lead_id in write.handoff_cleared for a in leads],
        *(list(column) for column in zip(*rows, strict=True)),
    )


class RoutingStore:
    """Routing's database: leads, reps, teams, queues, rule sets, assignments and touches."""

    # -- routing (asyncpg) --

    async def lock_leads_for_routing(
        self, session: AsyncSession, lead_ids: Sequence[str], original_ids: Sequence[str], *, parked: bool = True
    ) -> LeadsClaim:
        """Lock the stored leads among ``lead_ids`` (by id); the reps that own them or the leads
        ``original_ids`` (their originals, not locked), with ``parked`` which of them have scored
        events parked, and the active rule set's key, in one round trip."""
        conn = await driver_connection(session)
        rows = await conn.fetch(LOCK_LEADS_OWNERS, list(lead_ids), list(original_ids), parked)
        leads = [row for row in rows if row["id"] is not None]
        ruleset = next((RulesetKey(row["ruleset_version"], row["ruleset_created_at"]) for row in rows
                        if row["ruleset_version"] is not None), None)
        return LeadsClaim({row["id"]: row["owner_rep_id"] for row in leads if not row["parked"]},
                          frozenset(row["id"] for row in leads if row["parked"]), ruleset)

    async def try_lock_roster(
        self, session: AsyncSession, team_ids: Sequence[str], rep_ids: Sequence[str]
    ) -> TriedRoster:
        """Lock, without waiting, the teams among ``team_ids``, then the reps among ``rep_ids`` and every rep
        of the teams locked, that no other transaction holds, with the channels the reps locked are told
        through; in one round trip. A team or rep that does not exist is neither locked nor busy."""
        if not team_ids and not rep_ids:
            return TriedRoster({}, set(), {}, {})
        conn = await driver_connection(session)
        rows = await conn.fetch(TRY_LOCK_ROSTER, list(team_ids), list(rep_ids))
        tried = TriedRoster({}, set(), {}, {})
        for row in rows:
            if row["wanted_team_id"] is not None:
                if row["locked_team_id"] is None:
                    tried.busy_teams.add(row["wanted_team_id"])
                else:
                    tried.teams[row["locked_team_id"]] = team_from_row(row, "locked_team_")
            elif row["id"] is None:
                tried.busy_reps[row["wanted_rep_id"]] = row["wanted_rep_team_id"]
            else:
                tried.reps[row["id"]] = rep_from_row(row)
                if row["notify_channels"]:
                    tried.recipients[row["id"]] = recipient_from_row(row, "notify_")
        return tried

    async def savepoint(self, session: AsyncSession) -> None:
        """A savepoint ``hold_rows`` rolls back to, letting go of the rows it took since."""
        conn = await driver_connection(session)
        await conn.execute("SAVEPOINT hold_rows")

    async def rollback_to_savepoint(self, session: AsyncSession) -> None:
        conn = await driver_connection(session)
        await conn.execute("ROLLBACK TO SAVEPOINT hold_rows")

    async def park_scored(self, session: AsyncSession, parked: Sequence[ParkedScored], now: datetime) -> None:
        """Keep scored events whose rows another transaction holds, in the batch's order (one statement)."""
        if not parked:
            return
        conn = await driver_connection(session)
        await conn.execute(PARK_SCORED, [p.event.data.lead_id for p in parked],
                           # As any: ``data`` may be declared EventData (a consumer's decode), and a
                           # plain dump would serialise it as that, without the lead's fields.
                           [p.event.model_dump_json(serialize_as_any=True) for p in parked],
                           [json.dumps(list(p.waiting_for)) for p in parked], now)

    async def take_parked_turn(self, session: AsyncSession) -> bool:
        """The drainer's turn until the transaction ends; False while another replica's drainer has it."""
        conn = await driver_connection(session)
        return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", PARKED_TURN_KEY))

    async def oldest_parked(self, session: AsyncSession, limit: int) -> list[ParkedRow]:
        """The oldest parked events, in the order they arrived, locked."""
        conn = await driver_connection(session)
        return [_parked_row(row) for row in await conn.fetch(OLDEST_PARKED, limit)]

    async def parked(self, session: AsyncSession, seq: int) -> list[ParkedRow]:
        """The parked event ``seq`` (none if it is gone), locked."""
        conn = await driver_connection(session)
        row = await conn.fetchrow("SELECT seq, event, attempts FROM parked_lead WHERE seq = $1 FOR UPDATE", seq)
        return [] if row is None else [_parked_row(row)]

    async def parked_backlog(self, session: AsyncSession, now: datetime) -> tuple[int, float]:
        """How many events are parked, and how long the oldest has waited (seconds)."""
        conn = await driver_connection(session)
        count, oldest = await conn.fetchrow("SELECT count(*), min(parked_at) FROM parked_lead") or (0, None)
        return count, 0.0 if oldest is None else max((now - oldest).total_seconds(), 0.0)

    async def parked_leads(self, session: AsyncSession, limit: int) -> list[ParkedLead]:
        """The parked events, oldest first, as the admin API lists them (not locked)."""
        conn = await driver_connection(session)
        rows = await conn.fetch("SELECT seq, lead_id, waiting_for, attempts, last_error, parked_at FROM parked_lead"
                                " ORDER BY seq LIMIT $1", limit)
        return [ParkedLead(**dict(row)) for row in rows]

    async def unpark(self, session: AsyncSession, seqs: Sequence[int]) -> None:
        if seqs:
            conn = await driver_connection(session)
            await conn.execute("DELETE FROM parked_lead WHERE seq = ANY($1::bigint[])", list(seqs))

    async def record_parked_failure(self, session: AsyncSession, seq: int, error: str) -> int:
        """Count a failed attempt at a parked event; returns its attempts so far."""
        conn = await driver_connection(session)
        attempts: int | None = await conn.fetchval(
            "UPDATE parked_lead SET attempts = attempts + 1, last_error = $2 WHERE seq = $1 RETURNING attempts",
            seq, error[:2000])
        return attempts or 0

    async def lock_leads(self, session: AsyncSession, lead_ids: Sequence[str]) -> list[StoredLead]:
        """The stored leads among ``lead_ids``, locked in id order."""
        conn = await driver_connection(session)
        rows = await conn.fetch(f"SELECT {LEAD_SELECT} FROM lead WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE",
                                list(lead_ids))
        return [lead_from_row(row) for row in rows]

    async def lock_routing_rows(
        self, session: AsyncSession, team_ids: Sequence[str], rep_ids: Sequence[str], *, managers: bool
    ) -> domain.Roster:
        """Lock the teams, then their reps and the reps named (with ``managers``, the teams' managers
        too), each by id: the order every routing transaction takes them in. Returns them as read."""
        roster = domain.Roster(team_ids=set(team_ids))
        if not team_ids and not rep_ids:
            return roster
        conn = await driver_connection(session)
        if team_ids:
            roster.teams.update((row["id"], team_from_row(row)) for row in await conn.fetch(LOCK_TEAMS, list(team_ids)))
        roster.reps.update((row["id"], rep_from_row(row))
                           for row in await conn.fetch(LOCK_REPS, list(team_ids), list(rep_ids), managers))
        return roster

    async def upsert_scored_leads(
        self, session: AsyncSession, leads: Sequence[ScoredInput], original_ids: Sequence[str], now: datetime,
        *, lifecycle_types: Sequence[str] = (),
    ) -> UpsertedBatch:
        """Store a batch's leads (each once; row-locked until the transaction ends) and note their first MQL
        moments at ``now``, in one statement; ``lifecycle_types``: whether any subscription takes one of them."""
        conn = await driver_connection(session)
        rows = await conn.fetch(
            UPSERT_SCORED_LEADS, [i.scored.lead_id for i in leads], [i.scored.model_dump_json() for i in leads],
            [i.correlation_id for i in leads], [i.lead_captured_at for i in leads], now, list(original_ids),
            [i.mql for i in leads], _patterns(lifecycle_types))
        given = {i.scored.lead_id: i.scored for i in leads}
        stored = [row for row in rows if row["stored"]]
        key = None
        if stored and stored[0]["ruleset_version"] is not None and stored[0]["ruleset_created_at"] is not None:
            key = RulesetKey(stored[0]["ruleset_version"], stored[0]["ruleset_created_at"])
        return UpsertedBatch({row["id"]: lead_from_row(row, given[row["id"]]) for row in stored},
                             {row["id"]: (row["owner_rep_id"], row["team_id"]) for row in rows if not row["stored"]},
                             key, frozenset(row["id"] for row in stored if row["first_mql"]),
                             any(row["lifecycle_wanted"] for row in stored))

    async def write_decisions(self, session: AsyncSession, write: DecisionsWrite) -> None:
        """A batch's decisions in one statement (``WRITE_DECISIONS``)."""
        if not write.assignments:
            return
        conn = await driver_connection(session)
        await conn.execute(WRITE_DECISIONS, *_write_decisions_args(write))

    async def lock_lead(self, session: AsyncSession, lead_id: str) -> StoredLead | None:
        conn = await driver_connection(session)
        row = await conn.fetchrow(f"SELECT {LEAD_SELECT} FROM lead WHERE id = $1 FOR UPDATE", lead_id)
        return lead_from_row(row) if row else None

    async def set_breach_count(self, session: AsyncSession, lead_id: str, breach_count: int) -> None:
        conn = await driver_connection(session)
        await conn.execute("UPDATE lead SET breach_count = $2 WHERE id = $1", lead_id, breach_count)

    async def load_rep(self, session: AsyncSession, rep_id: str) -> domain.Rep | None:
        conn = await driver_connection(session)
        row = await conn.fetchrow(SELECT_REP, rep_id)
        return rep_from_row(row) if row else None

    async def lock_rep(self, session: AsyncSession, rep_id: str) -> domain.Rep | None:
        conn = await driver_connection(session)
        row = await conn.fetchrow(LOCK_REP, rep_id)
        return rep_from_row(row) if row else None

    async def team_with_reps(
        self, session: AsyncSession, team_id: str, *, lock: bool
    ) -> tuple[domain.Team | None, list[domain.Rep]]:
        """The team and its reps; with ``lock`` row-locked (team first, reps by id: one lock order
        everywhere), without for dry runs."""
        conn = await driver_connection(session)
        rows = await conn.fetch(LOCK_TEAM_REPS if lock else SELECT_TEAM_REPS, team_id)
        if rows:
            return team_from_row(rows[0], "team_"), [rep_from_row(r) for r in rows]
        # No rep joined: the team has none, or does not exist.
        row = await conn.fetchrow(LOCK_TEAM if lock else SELECT_TEAM, team_id)
        return (team_from_row(row), []) if row else (None, [])

    async def active_ruleset_key(self, session: AsyncSession) -> RulesetKey | None:
        conn = await driver_connection(session)
        row = await conn.fetchrow("SELECT version, created_at FROM routing_ruleset WHERE active")
        return RulesetKey(row["version"], row["created_at"]) if row else None

    async def ruleset_version(self, session: AsyncSession, version: int) -> domain.RuleSet | None:
        conn = await driver_connection(session)
        row = await conn.fetchrow("SELECT rules, fallback_queue, handoff FROM routing_ruleset WHERE version = $1",
                                  version)
        return ruleset_from_json(version, row["rules"], row["fallback_queue"], row["handoff"]) if row else None

    async def active_ruleset(self, session: AsyncSession) -> domain.RuleSet | None:
        conn = await driver_connection(session)
        row = await conn.fetchrow("SELECT version, rules, fallback_queue, handoff FROM routing_ruleset WHERE active")
        return ruleset_from_json(row["version"], row["rules"], row["fallback_queue"], row["handoff"]) if row else None

    async def write_assignment(self, session: AsyncSession, write: domain.AssignmentWrite) -> None:
        conn = await driver_connection(session)
        await conn.execute(WRITE_DECISION, *_write_decision_args(write))

    async def record_owner_kept(
        self, session: AsyncSession, lead: StoredLead, reason: str, audit: Mapping[str, Any], now: datetime
    ) -> None:
        """A breach nobody else could take: an audit row, and the lead stays with its owner."""
        conn = await driver_connection(session)
        await conn.execute(
            "INSERT INTO assignment (id, lead_id, outcome, rep_id, team_id, reason, reroute, reroute_reason, audit,"
            " created_at) VALUES ($1, $2, 'unchanged', $3, $4, $5, false, 'sla_breach', $6::jsonb, $7)",
            f"asg_{uuid.uuid4().hex}", lead.id, lead.owner_rep_id, lead.team_id, reason, json.dumps(audit), now,
        )

    async def enqueue_webhook(self, session: AsyncSession, webhook: WebhookRequest) -> None:
        await enqueue_webhook(
            session, event_type=webhook.event_type, lead_id=webhook.lead_id, data=webhook.data, now=webhook.now,
            correlation_id=webhook.correlation_id, lead_captured_at=webhook.lead_captured_at, facts=webhook.facts,
        )

    async def enqueue_webhooks(
        self, session: AsyncSession, webhooks: Sequence[WebhookRequest], hand_off: WebhookHandOff | None = None
    ) -> None:
        """``enqueue_webhook`` for each of ``webhooks``, in their order, in one statement; with ``hand_off``,
        those the dispatcher has room for go to it at commit."""
        await enqueue_webhooks(session, webhooks, hand_off)

    # -- lifecycle webhooks (lifecycle.py) --

    async def webhook_wanted(self, session: AsyncSession, event_types: Sequence[str]) -> bool:
        """Whether any subscription, active or not, would receive one of ``event_types``."""
        conn = await driver_connection(session)
        wanted: bool = await conn.fetchval(WEBHOOK_WANTED, _patterns(event_types))
        return wanted

    async def webhook_wanted_now(self, db: Database, event_types: Sequence[str]) -> bool:
        """``webhook_wanted`` outside any transaction: one round trip."""
        async with db.autocommit() as conn:
            wanted: bool = await conn.fetchval(WEBHOOK_WANTED, _patterns(event_types))
        return wanted

    async def leads_for_webhook(self, session: AsyncSession, lead_ids: Collection[str]) -> dict[str, StoredLead]:
        """The stored leads among ``lead_ids`` by id, read without a lock (for webhooks' filters and payloads,
        and SLA warnings' notifications)."""
        conn = await driver_connection(session)
        rows = await conn.fetch(f"SELECT {LEAD_SELECT} FROM lead WHERE id = ANY($1::text[])", list(lead_ids))
        return {row["id"]: lead_from_row(row) for row in rows}

    async def hold_in_nurture_until(self, session: AsyncSession, lead_id: str, until: datetime | None) -> None:
        """The lead is not handed off to sales again before ``until`` (None: as soon as it is an MQL)."""
        conn = await driver_connection(session)
        await conn.execute("UPDATE lead SET handoff_after = $2 WHERE id = $1", lead_id, until)

    # -- CRM touches --

    async def find_touch(self, session: AsyncSession, integration: str | None, external_id: str) -> Touch | None:
        row = (
            await session.execute(
                select(touch_table).where(touch_table.c.integration == integration,
                                          touch_table.c.external_id == external_id)
            )
        ).first()
        if row is None:
            return None
        return Touch(**{column: row._mapping[column] for column in Touch.__dataclass_fields__})

    async def insert_touch(self, session: AsyncSession, touch: Touch) -> None:
        await session.execute(insert(touch_table).values(**touch.__dict__))

    async def close_lead(self, session: AsyncSession, lead_id: str, owner_rep_id: str | None, now: datetime) -> None:
        """The lead is closed; its owner has one open lead fewer."""
        conn = await driver_connection(session)
        await conn.execute("UPDATE lead SET status = 'closed', closed_at = $2, updated_at = $2 WHERE id = $1",
                           lead_id, now)
        if owner_rep_id is not None:
            await conn.execute("UPDATE rep SET open_leads = greatest(open_leads - 1, 0) WHERE id = $1", owner_rep_id)

    # -- reads of leads --

    async def lead_assignments(self, session: AsyncSession, lead_id: str) -> LeadAssignments | None:
        """None when routing has not routed the lead (unknown, or stored and never routed)."""
        lead = (await session.execute(select(lead_table).where(lead_table.c.id == lead_id))).first()
        if lead is None or lead.status == "new":
            return None
        owner = None
        if lead.owner_rep_id:
            rep = (await session.execute(select(rep_table).where(rep_table.c.id == lead.owner_rep_id))).first()
            owner = OwnerRecord(lead.owner_rep_id, rep.name if rep else None, rep.email if rep else None,
                                rep.team_id if rep else lead.team_id)
        history = (
            await session.execute(
                select(assignment_table).where(assignment_table.c.lead_id == lead_id)
                .order_by(assignment_table.c.created_at, assignment_table.c.id)
            )
        ).all()
        return LeadAssignments(
            lead_id=lead_id, status=lead.status, owner=owner, team_id=lead.team_id, queue=lead.queue,
            last_assignment_id=lead.last_assignment_id, routed_at=lead.routed_at, breach_count=lead.breach_count,
            history=[_assignment_record(h) for h in history],
        )

    async def lead_data(self, session: AsyncSession, lead_id: str) -> dict[str, Any] | None:
        """The lead's stored ``lead.scored`` snapshot, as JSON (for dry runs)."""
        row = (await session.execute(select(lead_table.c.data).where(lead_table.c.id == lead_id))).first()
        return dict(row.data) if row else None

    # -- admin: reps --

    async def team_exists(self, session: AsyncSession, team_id: str) -> bool:
        # KEY SHARE: a deletion of the team waits for this transaction, and sees the rep or rule it adds.
        return (await session.execute(select(team_table.c.id).where(team_table.c.id == team_id)
                                      .with_for_update(key_share=True))).first() is not None

    async def rep_exists(self, session: AsyncSession, rep_id: str) -> bool:
        return (await session.execute(select(rep_table.c.id).where(rep_table.c.id == rep_id))).first() is not None

    async def create_rep(self, session: AsyncSession, rep_id: str, body: RepFields, now: datetime) -> RepRecord:
        row = (
            await session.execute(
                insert(rep_table).values(id=rep_id, created_at=now, updated_at=now, **rep_values(body))
                .returning(*rep_table.c)
            )
        ).one()
        return _rep_record(row)

    async def list_reps(self, session: AsyncSession, team_id: str | None) -> list[RepRecord]:
        query = select(rep_table).order_by(rep_table.c.id)
        if team_id:
            query = query.where(rep_table.c.team_id == team_id)
        return [_rep_record(row) for row in (await session.execute(query)).all()]

    async def get_rep(self, session: AsyncSession, rep_id: str) -> RepRecord | None:
        row = (await session.execute(select(rep_table).where(rep_table.c.id == rep_id))).first()
        return _rep_record(row) if row else None

    async def update_rep(self, session: AsyncSession, rep_id: str, body: RepFields, now: datetime) -> RepRecord | None:
        row = (
            await session.execute(
                update(rep_table).where(rep_table.c.id == rep_id).values(updated_at=now, **rep_values(body))
                .returning(*rep_table.c)
            )
        ).first()
        return _rep_record(row) if row else None

    async def deactivate_rep(self, session: AsyncSession, rep_id: str, now: datetime) -> bool:
        row = (
            await session.execute(
                update(rep_table).where(rep_table.c.id == rep_id)
                .values(active=False, updated_at=now).returning(rep_table.c.id)
            )
        ).first()
        return row is not None

    # -- admin: teams --

    async def team_members(self, session: AsyncSession, team_id: str) -> list[str]:
        return list((await session.execute(select(rep_table.c.id).where(rep_table.c.team_id == team_id)
                                           .order_by(rep_table.c.id))).scalars().all())

    async def _team_record(self, session: AsyncSession, row: Any) -> TeamPublic:
        return TeamPublic(
            id=row.id, name=row.name, strategy=row.strategy, manager_rep_id=row.manager_rep_id,
            escalate_after_breaches=row.escalate_after_breaches, fallback_queue=row.fallback_queue,
            rr_last_rep_id=row.rr_last_rep_id, assignments=row.assignments,
            rep_ids=await self.team_members(session, row.id), created_at=row.created_at, updated_at=row.updated_at,
        )

    async def create_team(self, session: AsyncSession, team_id: str, body: TeamCreate, now: datetime) -> TeamPublic:
        row = (
            await session.execute(
                insert(team_table).values(id=team_id, created_at=now, updated_at=now,
                                          **{**body.model_dump(exclude_unset=True, exclude={"id"}),
                                             "strategy": body.strategy})
                .returning(*team_table.c)
            )
        ).one()
        return await self._team_record(session, row)

    async def list_teams(self, session: AsyncSession) -> list[TeamPublic]:
        rows = (await session.execute(select(team_table).order_by(team_table.c.id))).all()
        return [await self._team_record(session, row) for row in rows]

    async def get_team(self, session: AsyncSession, team_id: str) -> TeamPublic | None:
        row = (await session.execute(select(team_table).where(team_table.c.id == team_id))).first()
        return await self._team_record(session, row) if row else None

    async def update_team(
        self, session: AsyncSession, team_id: str, body: TeamUpdate, now: datetime
    ) -> TeamPublic | None:
        row = (
            await session.execute(
                update(team_table).where(team_table.c.id == team_id)
                .values(updated_at=now, **body.model_dump(exclude_unset=True))
                .returning(*team_table.c)
            )
        ).first()
        return await self._team_record(session, row) if row else None

    async def lock_team_row(self, session: AsyncSession, team_id: str) -> bool:
        """Lock the team's row (False: no such team); waits for a rep being added to the team."""
        return (await session.execute(select(team_table.c.id).where(team_table.c.id == team_id).with_for_update())
                ).first() is not None

    async def delete_team(self, session: AsyncSession, team_id: str) -> None:
        await session.execute(delete(team_table).where(team_table.c.id == team_id))

    # -- admin: queues --

    async def queue_exists(self, session: AsyncSession, queue_id: str) -> bool:
        return (await session.execute(select(queue_table.c.id).where(queue_table.c.id == queue_id))).first() is not None

    async def create_queue(self, session: AsyncSession, body: QueueCreate, now: datetime) -> QueueRecord:
        row = (
            await session.execute(
                insert(queue_table).values(**body.model_dump(), created_at=now).returning(*queue_table.c)
            )
        ).one()
        return _queue_record(row)

    async def list_queues(self, session: AsyncSession) -> list[QueueRecord]:
        return [_queue_record(row) for row in
                (await session.execute(select(queue_table).order_by(queue_table.c.id))).all()]

    async def waiting_by_queue(self, session: AsyncSession) -> dict[str | None, int]:
        """How many leads wait in each queue (named by leads, created or not)."""
        rows = (
            await session.execute(
                select(lead_table.c.queue, func.count()).where(lead_table.c.status == "queued")
                .group_by(lead_table.c.queue)
            )
        ).all()
        return {queue: count for queue, count in rows}

    async def queued_leads(self, session: AsyncSession, queue_id: str, limit: int) -> list[QueuedLead]:
        rows = (
            await session.execute(
                select(lead_table.c.id, lead_table.c.routed_at, lead_table.c.team_id)
                .where(lead_table.c.queue == queue_id, lead_table.c.status == "queued")
                .order_by(lead_table.c.routed_at).limit(limit)
            )
        ).all()
        return [QueuedLead(r.id, r.routed_at, r.team_id) for r in rows]

    async def waiting_in(self, session: AsyncSession, queue_id: str) -> int:
        count: int = (await session.execute(select(func.count()).select_from(lead_table).where(
            lead_table.c.queue == queue_id, lead_table.c.status == "queued"))).scalar_one()
        return count

    async def update_queue(self, session: AsyncSession, queue_id: str, values: Mapping[str, Any]) -> QueueRecord | None:
        """Set the given columns (none: read the queue as it is)."""
        query = update(queue_table).where(queue_table.c.id == queue_id).values(**values).returning(*queue_table.c)
        row = (await session.execute(query if values else select(queue_table).where(queue_table.c.id == queue_id))
               ).first()
        return _queue_record(row) if row else None

    async def lock_queue(self, session: AsyncSession, queue_id: str) -> bool:
        return (await session.execute(select(queue_table.c.id).where(queue_table.c.id == queue_id)
                                      .with_for_update())).first() is not None

    async def teams_falling_back_to(self, session: AsyncSession, queue_id: str) -> list[str]:
        return list((await session.execute(select(team_table.c.id).where(team_table.c.fallback_queue == queue_id)
                                           .order_by(team_table.c.id))).scalars().all())

    async def delete_queue(self, session: AsyncSession, queue_id: str) -> None:
        await session.execute(delete(queue_table).where(queue_table.c.id == queue_id))

    # -- queues people work --

    async def queue_page(
        self, session: AsyncSession, queue_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[QueueEntry]:
        conn = await driver_connection(session)
        rows = await (conn.fetch(NEXT_QUEUE_PAGE, queue_id, limit, *after) if after
                      else conn.fetch(FIRST_QUEUE_PAGE, queue_id, limit))
        return [QueueEntry(r["id"], r["routed_at"], r["team_id"], r["tier"], r["score"], r["company"],
                           r["job_title"], r["country"], r["kind"], r["due_at"], r["breach_count"]) for r in rows]

    async def record_sla_seen(self, session: AsyncSession, seen: Sequence[SlaSeen]) -> None:
        if not seen:
            return
        conn = await driver_connection(session)
        await conn.execute(RECORD_SLA_SEEN, [s.lead_id for s in seen], [s.clock_id for s in seen],
                           [s.kind for s in seen], [s.started_at for s in seen], [s.due_at for s in seen],
                           [s.breach_count for s in seen], [s.at for s in seen])

    async def lead_queue(self, session: AsyncSession, lead_id: str) -> str | None:
        conn = await driver_connection(session)
        queue: str | None = await conn.fetchval("SELECT queue FROM lead WHERE id = $1", lead_id)
        return queue

    async def load_team(self, session: AsyncSession, team_id: str) -> domain.Team | None:
        conn = await driver_connection(session)
        row = await conn.fetchrow(SELECT_TEAM, team_id)
        return team_from_row(row) if row else None

    # -- admin: rule sets --

    async def lock_rules(self, session: AsyncSession) -> None:
        await session.execute(select(func.pg_advisory_xact_lock(RULES_LOCK)))

    async def active_ruleset_record(self, session: AsyncSession) -> RuleSetPublic | None:
        row = (await session.execute(select(ruleset_table).where(ruleset_table.c.active.is_(True)))).first()
        return _ruleset_record(row) if row else None

    async def ruleset_record(self, session: AsyncSession, version: int) -> RuleSetPublic | None:
        row = (await session.execute(select(ruleset_table).where(ruleset_table.c.version == version))).first()
        return _ruleset_record(row) if row else None

    async def list_ruleset_records(self, session: AsyncSession) -> list[RuleSetPublic]:
        rows = (await session.execute(select(ruleset_table).order_by(ruleset_table.c.version.desc()))).all()
        return [_ruleset_record(row) for row in rows]

    async def create_ruleset(self, session: AsyncSession, body: RuleSetCreate, now: datetime) -> RuleSetPublic:
        """The next version (the caller holds the rules' lock, so two admins never mint the same one),
        active unless ``body.activate`` is false."""
        version = (await session.execute(select(func.coalesce(func.max(ruleset_table.c.version), 0) + 1))).scalar_one()
        if body.activate:
            await session.execute(update(ruleset_table).where(ruleset_table.c.active.is_(True)).values(active=False))
        row = (
            await session.execute(
                insert(ruleset_table).values(
                    version=version, rules=[r.model_dump() for r in body.rules], fallback_queue=body.fallback_queue,
                    handoff=body.handoff, comment=body.comment, active=body.activate, created_at=now,
                    activated_at=now if body.activate else None,
                ).returning(*ruleset_table.c)
            )
        ).one()
        return _ruleset_record(row)

    async def activate_ruleset(self, session: AsyncSession, version: int, now: datetime) -> RuleSetPublic:
        await session.execute(update(ruleset_table).where(ruleset_table.c.active.is_(True)).values(active=False))
        row = (
            await session.execute(
                update(ruleset_table).where(ruleset_table.c.version == version)
                .values(active=True, activated_at=now).returning(*ruleset_table.c)
            )
        ).one()
        return _ruleset_record(row)

    # -- the demo seed --

    async def ensure_team(self, session: AsyncSession, team_id: str, name: str, strategy: domain.Strategy) -> None:
        await session.execute(
            upsert(team_table).values(id=team_id, name=name, strategy=strategy).on_conflict_do_nothing())

    async def ensure_rep(self, session: AsyncSession, rep_id: str, name: str, email: str, team_id: str) -> None:
        await session.execute(
            upsert(rep_table).values(id=rep_id, name=name, email=email, team_id=team_id).on_conflict_do_nothing())

    async def has_rulesets(self, session: AsyncSession) -> bool:
        return (await session.execute(select(ruleset_table.c.version).limit(1))).first() is not None

    async def seed_first_ruleset(
        self, session: AsyncSession, rules: Sequence[Mapping[str, Any]], fallback_queue: str, comment: str,
        handoff: domain.Handoff,
    ) -> None:
        await session.execute(insert(ruleset_table).values(
            version=1, rules=list(rules), fallback_queue=fallback_queue, comment=comment, active=True,
            handoff=handoff))

    async def put_webhook_subscription(
        self, session: AsyncSession, subscription_id: str, *, url: str, event_types: list[str],
        secret_ciphertext: str, description: str,
    ) -> None:
        """Subscribe ``url`` (active) to ``event_types``, replacing what ``subscription_id`` held."""
        values = {"url": url, "event_types": event_types, "secret_ciphertext": secret_ciphertext,
                  "active": True, "description": description}
        await session.execute(
            upsert(subscription_table).values(id=subscription_id, **values)
            .on_conflict_do_update(index_elements=[subscription_table.c.id], set_=values)
        )
