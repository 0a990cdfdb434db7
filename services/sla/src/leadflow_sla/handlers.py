"""sla's use cases over one transaction: record a lead's events, keep its funnel facts, run its clocks."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import asyncpg
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import (
    Event,
    EventData,
    LeadActivity,
    LeadCaptured,
    LeadDelivered,
    LeadEnriched,
    LeadRouted,
    LeadScored,
    LeadSla,
    LeadTouched,
)
from leadflow_kit.db import after_commit, driver_connection
from leadflow_sla import domain
from leadflow_sla.metrics import SlaMetrics
from leadflow_sla.tables import lead, lead_event, sla_clock, sla_policy


def occurred_at(evt: Event[EventData]) -> datetime:
    """When the thing happened, which for some events is earlier than when it was announced."""
    data = evt.data
    if isinstance(data, LeadCaptured):
        return data.submitted_at
    if isinstance(data, LeadTouched | LeadActivity):
        return data.occurred_at
    if isinstance(data, LeadDelivered):
        return data.at
    return evt.time


def captured_at_of(evt: Event[EventData]) -> datetime | None:
    if isinstance(evt.data, LeadCaptured):
        return evt.data.submitted_at
    return evt.lead_captured_at


# The consumer's path below runs as plain SQL on the session's asyncpg connection: every event of every lead
# topic passes here, and a SQLAlchemy statement costs about six times the CPU (docs/performance.md).

# One round trip per event: the event goes on each lead's timeline, and the lead whose facts it updates is
# locked (created when new) and returned. The upsert's no-op DO UPDATE, unlike DO NOTHING, locks and returns
# the row even when a concurrent transaction inserted it first. Every part of the statement reads the
# snapshot from before it, so first_at_stage still means "the subject had not reached the stage before".
_RECORD_AND_LOCK = """
WITH recorded AS (
    INSERT INTO lead_event (lead_id, event_id, event_type, stage, source, at, lead_captured_at, details)
    SELECT timeline_lead_id, $2::text, $3::text, $4::text, $5::text, $6::timestamptz, $7::timestamptz, $8::jsonb
    FROM unnest($1::text[]) AS timeline_lead_id
    ON CONFLICT DO NOTHING
    RETURNING lead_id
), facts AS (
    INSERT INTO lead (lead_id, captured_at) VALUES ($9, $7)
    ON CONFLICT (lead_id) DO UPDATE SET lead_id = EXCLUDED.lead_id
    RETURNING *
)
SELECT facts.*,
       $10::boolean
       AND EXISTS (SELECT 1 FROM recorded WHERE recorded.lead_id = $11)
       AND NOT EXISTS (
           SELECT 1 FROM lead_event AS earlier
           WHERE earlier.lead_id = $11 AND earlier.stage = $4
             AND ($12::text IS NULL OR earlier.details ->> 'event_type' LIKE $12)
       ) AS first_at_stage
FROM facts
"""

# Only webhooks of the routed lead count as the pipeline's last stage.
_ROUTED_WEBHOOK = "lead.routed%"

# A repeat form fill leaves the funnel: its own lead row points at the lead it was merged into.
_MERGE_INTO = """
INSERT INTO lead (lead_id, captured_at, merged_into) VALUES ($1, $2, $3)
ON CONFLICT (lead_id) DO UPDATE SET merged_into = EXCLUDED.merged_into
"""


async def record_event(session: AsyncSession, evt: Event[EventData], metrics: SlaMetrics) -> None:
    """Put the event on the timeline of every lead it concerns, then update that lead's facts and clocks."""
    data = evt.data
    if isinstance(data, LeadActivity) and data.lead_id is None:
        return  # an anonymous visitor's activity belongs to no lead yet
    stage = domain.stage_of(data)
    at = occurred_at(evt)
    captured_at = captured_at_of(evt)
    # The pipeline ends at the CRM webhook of the routed lead; SLA notifications are deliveries too, but later.
    measured = stage in domain.PIPELINE_STAGES and (
        not isinstance(data, LeadDelivered) or data.event_type_delivered.startswith("lead.routed")
    )
    conn = await driver_connection(session)
    row = await conn.fetchrow(
        _RECORD_AND_LOCK,
        domain.lead_ids_of(evt.subject, data), evt.id, evt.type, stage, evt.source, at, captured_at,
        json.dumps(domain.stage_details(data)), facts_lead_id(evt), measured, evt.subject,
        _ROUTED_WEBHOOK if stage == "webhook_delivered" else None,
    )
    assert row is not None  # the upsert always returns the lead
    facts = dict(row)
    if facts.pop("first_at_stage") and captured_at is not None:
        seconds = max((at - captured_at).total_seconds(), 0.0)
        after_commit(session, functools.partial(metrics.pipeline_stage.labels(stage).observe, seconds))
    await update_lead(session, conn, evt, facts, metrics)


def facts_lead_id(evt: Event[EventData]) -> str:
    """The lead whose funnel facts and clocks the event moves."""
    return cast(str | None, getattr(evt.data, "lead_id", None)) or evt.subject


def _reach(row: Mapping[str, Any], changes: dict[str, Any], funnel_stage: str, at: datetime) -> None:
    """Mark the funnel stage and every stage before it as reached (first time wins)."""
    rank = domain.FUNNEL_RANK[funnel_stage]
    for name in domain.FUNNEL_STAGES[1 : rank + 1]:
        column = f"{name}_at"
        if row[column] is None and column not in changes:
            changes[column] = at
    if rank > row["stage_rank"]:
        changes["stage_rank"] = rank


async def update_lead(
    session: AsyncSession, conn: asyncpg.Connection, evt: Event[EventData], row: dict[str, Any],
    metrics: SlaMetrics,
) -> None:
    """``row`` is the lead, locked by this transaction; its changes are written once, after the clocks'."""
    data = evt.data
    lead_id: str = row["lead_id"]
    captured_at = captured_at_of(evt)
    at = occurred_at(evt)
    changes: dict[str, Any] = {}
    if row["captured_at"] is None and captured_at is not None:
        changes["captured_at"] = captured_at
    if isinstance(data, LeadCaptured):
        if row["form_key"] is None:
            form = data.form_key
            after_commit(session, lambda: metrics.leads_captured.labels(form).inc())
        changes.update(form_key=data.form_key, source=data.attribution.utm_source or "direct",
                       utm_campaign=data.attribution.utm_campaign)
    elif isinstance(data, LeadEnriched):
        if row["form_key"] is None:
            changes.update(form_key=data.form_key, source=data.attribution.utm_source or "direct",
                           utm_campaign=data.attribution.utm_campaign)
    elif isinstance(data, LeadScored):
        changes.update(tier=data.tier, score=data.score)
        if data.is_mql:
            _reach(row, changes, "mql", at)
        funnel_stage = domain.LIFECYCLE_TO_FUNNEL.get(data.lifecycle_stage)
        if funnel_stage is not None and funnel_stage != "captured":
            _reach(row, changes, funnel_stage, at)
        if data.lifecycle_stage == "disqualified" and row["disqualified_at"] is None:
            changes["disqualified_at"] = at
    elif isinstance(data, LeadRouted):
        changes.update(team_id=data.owner.team_id if data.owner else None,
                       rep_id=data.owner.rep_id if data.owner else None)
        if data.tier is not None and row["tier"] is None:
            changes["tier"] = data.tier
        if row["first_routed_at"] is None:
            changes["first_routed_at"] = at
    elif isinstance(data, LeadSla):
        if data.kind == "breach":
            changes["sla_outcome"] = "breached"
            if data.breach_count > row["breach_count"]:
                changes["breach_count"] = data.breach_count
    elif isinstance(data, LeadTouched):
        funnel_stage = domain.TOUCH_TO_FUNNEL.get(data.touch_type)
        if funnel_stage is not None:
            _reach(row, changes, funnel_stage, at)
        if data.touch_type == "disqualified" and row["disqualified_at"] is None:
            changes["disqualified_at"] = at
    if changes:
        # Only the event's own facts mark the lead as updated; what the clocks settle does not.
        changes["updated_at"] = evt.time
    updated = {**row, **changes}
    if isinstance(data, LeadEnriched) and data.duplicate_of and data.captured_lead_id != lead_id:
        await conn.execute(_MERGE_INTO, data.captured_lead_id, captured_at, lead_id)
    if isinstance(data, LeadRouted):
        # Clocks are only ever opened here, in the transaction that sets first_routed_at: a lead never
        # routed before has no older clock to supersede.
        changes.update(await open_clock(conn, evt, data, updated, routed_before=row["first_routed_at"] is not None))
    elif isinstance(data, LeadTouched) and data.touch_type in domain.STOPPING_TOUCHES:
        changes.update(await stop_clocks(session, conn, data, updated, metrics))
    if changes:
        await _save_facts(conn, lead_id, changes)


async def _save_facts(conn: asyncpg.Connection, lead_id: str, changes: dict[str, Any]) -> None:
    # Sorted, so each set of changed columns is one statement text in asyncpg's prepared-statement cache.
    columns = sorted(changes)
    assignments = ", ".join(f"{column} = ${n}" for n, column in enumerate(columns, start=2))
    await conn.execute(f"UPDATE lead SET {assignments} WHERE lead_id = $1", lead_id,
                       *(changes[c] for c in columns))


# --------------------------------------------------------------------------------------------
# Clocks
# --------------------------------------------------------------------------------------------


def policy_from_row(row: asyncpg.Record) -> domain.Policy:
    hours = domain.BusinessHours.model_validate(row["business_hours"]) if row["business_hours"] else None
    return domain.Policy(
        id=row["id"], tier=row["tier"], target_seconds=row["target_seconds"], warning_ratio=row["warning_ratio"],
        breach_limit=row["breach_limit"], business_hours=hours, use_owner_hours=row["use_owner_hours"],
        team_id=row["team_id"],
    )


# The owner's calendar comes along with the policies, looked up once, in case the chosen policy counts in it.
_ACTIVE_POLICIES = """
SELECT sla_policy.*, (SELECT business_hours FROM rep_calendar WHERE rep_id = $2) AS owner_hours
FROM sla_policy
WHERE tier = $1 AND active
"""


async def load_policy(
    conn: asyncpg.Connection, tier: domain.Tier, team_id: str | None, rep_id: str | None
) -> tuple[domain.Policy, domain.BusinessHours | None]:
    """The policy for a lead of this tier and team, and the calendar its clock counts in."""
    rows = await conn.fetch(_ACTIVE_POLICIES, tier, rep_id)
    policy = domain.choose_policy([policy_from_row(r) for r in rows], tier, team_id)
    owner_hours = rows[0]["owner_hours"] if rows and policy.use_owner_hours else None
    owner_calendar = domain.BusinessHours.model_validate(owner_hours) if owner_hours else None
    return policy, domain.calendar_for(policy, owner_calendar)



_INSERT_CLOCK = """
INSERT INTO sla_clock (id, lead_id, routed_event_id, tier, team_id, owner_rep_id, policy_id, correlation_id,
                       lead_captured_at, target_seconds, warning_ratio, breach_limit, business_hours, started_at,
                       warning_at, due_at, status, next_fire_at, stopped_at, stop_reason)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14, $15, $16, $17, $18, $19, $20)
ON CONFLICT DO NOTHING
"""


async def open_clock(
    conn: asyncpg.Connection, evt: Event[EventData], data: LeadRouted, lead_row: Mapping[str, Any], *,
    routed_before: bool,
) -> dict[str, Any]:
    """A routed (or re-routed) lead starts a fresh first-touch clock; an older open clock is superseded.
    A repeat fill that kept the owner of a lead already routed leaves its clock as it is: running,
    it keeps its deadline; stopped, the rep is working the lead and a fresh clock would breach and
    re-route the lead away from them. Returns what changes on the lead."""
    if data.kept_owner and routed_before:
        return {}
    tier = cast(domain.Tier, data.tier or lead_row["tier"] or domain.FALLBACK_TIER)
    team_id = data.owner.team_id if data.owner else None
    rep_id = data.owner.rep_id if data.owner else None
    policy, calendar = await load_policy(conn, tier, team_id, rep_id)
    started_at = evt.time
    plan = domain.plan_clock(started_at, policy, calendar)
    status, stopped_at, stop_reason = "open", None, None
    lead_changes: dict[str, Any] = {}
    # The touch can overtake the routed event (they travel on different topics).
    last_stop_touch_at: datetime | None = lead_row["last_stop_touch_at"]
    if last_stop_touch_at is not None and last_stop_touch_at >= started_at:
        status, stopped_at, stop_reason = "stopped", last_stop_touch_at, lead_row["last_stop_touch_type"]
        if lead_row["sla_outcome"] is None:
            lead_changes["sla_outcome"] = "met" if last_stop_touch_at <= plan.due_at else "breached"
    await conn.execute(
        _INSERT_CLOCK,
        str(uuid.uuid4()), data.lead_id, evt.id, tier, team_id, rep_id, policy.id, evt.correlation_id,
        lead_row["captured_at"], policy.target_seconds, policy.warning_ratio, policy.breach_limit,
        json.dumps(calendar.model_dump(mode="json")) if calendar else None,
        plan.started_at, plan.warning_at, plan.due_at, status, plan.warning_at if status == "open" else None,
        stopped_at, stop_reason,
    )
    if routed_before:
        await supersede_older_clocks(conn, data.lead_id)
    return lead_changes


# Only the latest routing's clock runs; events may arrive out of order, so the latest is by start time.
_SUPERSEDE_OLDER_CLOCKS = """
UPDATE sla_clock AS older
SET status = 'superseded', next_fire_at = NULL, stopped_at = latest.started_at, stop_reason = 'rerouted'
FROM (
    SELECT id, started_at FROM sla_clock
    WHERE lead_id = $1 AND status = 'open'
    ORDER BY started_at DESC, created_at DESC
    LIMIT 1
) AS latest
WHERE older.lead_id = $1 AND older.status = 'open' AND older.id <> latest.id
"""


async def supersede_older_clocks(conn: asyncpg.Connection, lead_id: str) -> None:
    await conn.execute(_SUPERSEDE_OLDER_CLOCKS, lead_id)


_STOP_CLOCKS = """
UPDATE sla_clock SET status = 'stopped', stopped_at = $2, stop_reason = $3, next_fire_at = NULL
WHERE lead_id = $1 AND status = 'open' AND started_at <= $2
RETURNING tier, team_id, started_at, breached_at
"""


async def stop_clocks(
    session: AsyncSession, conn: asyncpg.Connection, data: LeadTouched, lead_row: Mapping[str, Any],
    metrics: SlaMetrics,
) -> dict[str, Any]:
    """Stops the lead's open clocks started before the touch; returns what changes on the lead."""
    stopped = await conn.fetch(_STOP_CLOCKS, data.lead_id, data.occurred_at, data.touch_type)
    changes: dict[str, Any] = {}
    if lead_row["last_stop_touch_at"] is None or data.occurred_at > lead_row["last_stop_touch_at"]:
        changes.update(last_stop_touch_at=data.occurred_at, last_stop_touch_type=data.touch_type)
    if lead_row["first_touch_at"] is None:
        reference = lead_row["captured_at"] or lead_row["first_routed_at"]
        speed = max((data.occurred_at - reference).total_seconds(), 0.0) if reference else None
        changes.update(first_touch_at=data.occurred_at, speed_to_lead_seconds=speed)
        if lead_row["sla_outcome"] is None and stopped:
            changes["sla_outcome"] = "breached" if any(c["breached_at"] for c in stopped) else "met"
        if speed is not None:
            clock = stopped[0] if stopped else None
            tier = clock["tier"] if clock else (lead_row["tier"] or domain.FALLBACK_TIER)
            team = domain.team_label(clock["team_id"] if clock else lead_row["team_id"])
            after_commit(session, lambda: metrics.speed_to_lead.labels(tier, team).observe(speed))
    return changes


# --------------------------------------------------------------------------------------------
# Timeline
# --------------------------------------------------------------------------------------------


@dataclass
class Timeline:
    lead_id: str
    stages: list[dict[str, Any]]
    owner_changes: list[dict[str, Any]]
    webhooks: list[dict[str, Any]]
    sla: dict[str, Any]
    funnel: dict[str, Any]


def _ms(delta_seconds: float) -> float:
    return round(delta_seconds * 1000, 3)


def clock_state(row: Row[Any], now: datetime) -> dict[str, Any]:
    calendar = domain.BusinessHours.model_validate(row.business_hours) if row.business_hours else None
    end = row.stopped_at or now
    elapsed = domain.working_time_between(row.started_at, end, calendar).total_seconds()
    return {
        "clock_id": row.id,
        "status": row.status,
        "tier": row.tier,
        "team_id": row.team_id,
        "owner_rep_id": row.owner_rep_id,
        "policy_id": row.policy_id,
        "target_seconds": row.target_seconds,
        "business_hours": row.business_hours,
        "started_at": row.started_at,
        "warning_at": row.warning_at,
        "due_at": row.due_at,
        "warned_at": row.warned_at,
        "breached_at": row.breached_at,
        "breach_number": row.breach_number,
        "stopped_at": row.stopped_at,
        "stop_reason": row.stop_reason,
        "elapsed_seconds": round(elapsed, 3),
        "remaining_seconds": round(row.target_seconds - elapsed, 3) if row.status == "open" else None,
        "met": (row.stopped_at <= row.due_at) if row.status == "stopped" and row.stopped_at else None,
    }


async def load_timeline(session: AsyncSession, lead_id: str, now: datetime) -> Timeline | None:
    events = list(
        (
            await session.execute(
                select(lead_event).where(lead_event.c.lead_id == lead_id).order_by(lead_event.c.at)
            )
        ).all()
    )
    facts = (await session.execute(select(lead).where(lead.c.lead_id == lead_id))).first()
    if not events and facts is None:
        return None
    events.sort(key=lambda r: (r.at, domain.stage_rank(r.stage), r.id))
    captured = facts.captured_at if facts is not None and facts.captured_at else None
    if captured is None:
        captured = next((r.lead_captured_at for r in events if r.lead_captured_at is not None), None)
    stages: list[dict[str, Any]] = []
    owner_changes: list[dict[str, Any]] = []
    webhooks: list[dict[str, Any]] = []
    previous_at: datetime | None = None
    previous_owner: str | None = None
    previous_rep: str | None = None
    for r in events:
        stages.append({
            "stage": r.stage,
            "event_type": r.event_type,
            "event_id": r.event_id,
            "at": r.at,
            "source": r.source,
            "since_capture_ms": _ms((r.at - captured).total_seconds()) if captured else None,
            "since_previous_ms": _ms((r.at - previous_at).total_seconds()) if previous_at else None,
            "details": r.details,
        })
        previous_at = r.at
        if r.stage == "routed":
            d = r.details
            owner = d.get("owner_rep_id") or (f"queue:{d['queue']}" if d.get("queue") else None)
            if owner != previous_owner:
                owner_changes.append({
                    "at": r.at,
                    "from_rep_id": previous_rep,
                    "to_rep_id": d.get("owner_rep_id"),
                    "team_id": d.get("team_id"),
                    "queue": d.get("queue"),
                    "reason": d.get("reroute_reason") or d.get("reason"),
                    "escalated": bool(d.get("escalated")),
                })
                previous_owner, previous_rep = owner, d.get("owner_rep_id")
        elif r.stage in ("webhook_delivered", "webhook_failed"):
            webhooks.append({"at": r.at, **r.details})
    clocks = (
        await session.execute(
            select(sla_clock).where(sla_clock.c.lead_id == lead_id).order_by(sla_clock.c.started_at)
        )
    ).all()
    history = [clock_state(c, now) for c in clocks]
    current = next((c for c in reversed(history) if c["status"] == "open"), history[-1] if history else None)
    sla = {
        # Touched before its routing reached us: no clock yet, but nothing is waiting either.
        "state": current["status"] if current else (
            "stopped" if facts is not None and facts.last_stop_touch_at is not None else "none"),
        "current": current,
        "clocks": history,
        "outcome": facts.sla_outcome if facts is not None else None,
        "breach_count": facts.breach_count if facts is not None else 0,
    }
    funnel = {}
    if facts is not None:
        funnel = {
            "captured_at": facts.captured_at,
            "stage": domain.FUNNEL_STAGES[facts.stage_rank],
            **{f"{name}_at": getattr(facts, f"{name}_at") for name in domain.FUNNEL_STAGES[1:]},
            "first_touch_at": facts.first_touch_at,
            "speed_to_lead_seconds": facts.speed_to_lead_seconds,
            "tier": facts.tier,
            "team_id": facts.team_id,
            "rep_id": facts.rep_id,
        }
    return Timeline(lead_id, stages, owner_changes, webhooks, sla, funnel)



async def ensure_default_policies(session: AsyncSession) -> None:
    for tier in domain.TIERS:
        await session.execute(
            insert(sla_policy)
            .values(id=f"default-{tier}", name=f"Default {tier}", tier=tier,
                    target_seconds=domain.DEFAULT_TARGET_SECONDS[tier], warning_ratio=domain.DEFAULT_WARNING_RATIO,
                    breach_limit=domain.DEFAULT_BREACH_LIMIT)
            .on_conflict_do_nothing()
        )
