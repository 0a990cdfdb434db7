"""sla's use cases over one transaction: record a lead's events, keep its funnel facts, run its clocks."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import select, update
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
from leadflow_kit.db import after_commit
from leadflow_sla import domain
from leadflow_sla.metrics import SlaMetrics
from leadflow_sla.tables import lead, lead_event, rep_calendar, sla_clock, sla_policy


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


async def record_event(session: AsyncSession, evt: Event[EventData], metrics: SlaMetrics) -> None:
    """Put the event on the timeline of every lead it concerns, then update that lead's facts and clocks."""
    data = evt.data
    if isinstance(data, LeadActivity) and data.lead_id is None:
        return  # an anonymous visitor's activity belongs to no lead yet
    stage = domain.stage_of(data)
    at = occurred_at(evt)
    captured_at = captured_at_of(evt)
    details = domain.stage_details(data)
    # The pipeline ends at the CRM webhook of the routed lead; SLA notifications are deliveries too, but later.
    measured = stage in domain.PIPELINE_STAGES and (
        not isinstance(data, LeadDelivered) or data.event_type_delivered.startswith("lead.routed")
    )
    for lead_id in domain.lead_ids_of(evt.subject, data):
        first_time = measured and not await _has_stage(session, lead_id, stage)
        inserted = (
            await session.execute(
                insert(lead_event)
                .values(lead_id=lead_id, event_id=evt.id, event_type=evt.type, stage=stage, source=evt.source,
                        at=at, lead_captured_at=captured_at, details=details)
                .on_conflict_do_nothing()
                .returning(lead_event.c.id)
            )
        ).first()
        if inserted and first_time and lead_id == evt.subject and captured_at is not None:
            seconds = max((at - captured_at).total_seconds(), 0.0)
            after_commit(session, functools.partial(metrics.pipeline_stage.labels(stage).observe, seconds))
    await update_lead(session, evt, metrics)


async def _has_stage(session: AsyncSession, lead_id: str, stage: str) -> bool:
    query = select(lead_event.c.id).where(lead_event.c.lead_id == lead_id, lead_event.c.stage == stage)
    if stage == "webhook_delivered":
        query = query.where(lead_event.c.details["event_type"].astext.startswith("lead.routed"))
    return (await session.execute(query.limit(1))).first() is not None


async def _lock_lead(session: AsyncSession, lead_id: str, captured_at: datetime | None) -> Row[Any]:
    await session.execute(
        insert(lead).values(lead_id=lead_id, captured_at=captured_at).on_conflict_do_nothing()
    )
    return (await session.execute(select(lead).where(lead.c.lead_id == lead_id).with_for_update())).one()


def _reach(row: Row[Any], changes: dict[str, Any], funnel_stage: str, at: datetime) -> None:
    """Mark the funnel stage and every stage before it as reached (first time wins)."""
    rank = domain.FUNNEL_RANK[funnel_stage]
    for name in domain.FUNNEL_STAGES[1 : rank + 1]:
        column = f"{name}_at"
        if getattr(row, column) is None and column not in changes:
            changes[column] = at
    if rank > row.stage_rank:
        changes["stage_rank"] = rank


async def update_lead(session: AsyncSession, evt: Event[EventData], metrics: SlaMetrics) -> None:
    data = evt.data
    lead_id = cast(str | None, getattr(data, "lead_id", None)) or evt.subject
    captured_at = captured_at_of(evt)
    row = await _lock_lead(session, lead_id, captured_at)
    at = occurred_at(evt)
    changes: dict[str, Any] = {}
    if row.captured_at is None and captured_at is not None:
        changes["captured_at"] = captured_at
    if isinstance(data, LeadCaptured):
        if row.form_key is None:
            form = data.form_key
            after_commit(session, lambda: metrics.leads_captured.labels(form).inc())
        changes.update(form_key=data.form_key, source=data.attribution.utm_source or "direct",
                       utm_campaign=data.attribution.utm_campaign)
    elif isinstance(data, LeadEnriched):
        if row.form_key is None:
            changes.update(form_key=data.form_key, source=data.attribution.utm_source or "direct",
                           utm_campaign=data.attribution.utm_campaign)
    elif isinstance(data, LeadScored):
        changes.update(tier=data.tier, score=data.score)
        if data.is_mql:
            _reach(row, changes, "mql", at)
        funnel_stage = domain.LIFECYCLE_TO_FUNNEL.get(data.lifecycle_stage)
        if funnel_stage is not None and funnel_stage != "captured":
            _reach(row, changes, funnel_stage, at)
        if data.lifecycle_stage == "disqualified" and row.disqualified_at is None:
            changes["disqualified_at"] = at
    elif isinstance(data, LeadRouted):
        changes.update(team_id=data.owner.team_id if data.owner else None,
                       rep_id=data.owner.rep_id if data.owner else None)
        if data.tier is not None and row.tier is None:
            changes["tier"] = data.tier
        if row.first_routed_at is None:
            changes["first_routed_at"] = at
    elif isinstance(data, LeadSla):
        if data.kind == "breach":
            changes["sla_outcome"] = "breached"
            if data.breach_count > row.breach_count:
                changes["breach_count"] = data.breach_count
    elif isinstance(data, LeadTouched):
        funnel_stage = domain.TOUCH_TO_FUNNEL.get(data.touch_type)
        if funnel_stage is not None:
            _reach(row, changes, funnel_stage, at)
        if data.touch_type == "disqualified" and row.disqualified_at is None:
            changes["disqualified_at"] = at
    if changes:
        await session.execute(update(lead).where(lead.c.lead_id == lead_id).values(**changes, updated_at=evt.time))
        row = (await session.execute(select(lead).where(lead.c.lead_id == lead_id))).one()
    if isinstance(data, LeadEnriched) and data.duplicate_of and data.captured_lead_id != lead_id:
        await _lock_lead(session, data.captured_lead_id, captured_at)
        await session.execute(
            update(lead).where(lead.c.lead_id == data.captured_lead_id).values(merged_into=lead_id)
        )
    if isinstance(data, LeadRouted):
        await open_clock(session, evt, data, row)
    elif isinstance(data, LeadTouched) and data.touch_type in domain.STOPPING_TOUCHES:
        await stop_clocks(session, data, row, metrics)


# --------------------------------------------------------------------------------------------
# Clocks
# --------------------------------------------------------------------------------------------


def policy_from_row(row: Row[Any]) -> domain.Policy:
    hours = domain.BusinessHours.model_validate(row.business_hours) if row.business_hours else None
    return domain.Policy(
        id=row.id, tier=row.tier, target_seconds=row.target_seconds, warning_ratio=row.warning_ratio,
        breach_limit=row.breach_limit, business_hours=hours, use_owner_hours=row.use_owner_hours,
        team_id=row.team_id,
    )


async def load_policy(session: AsyncSession, tier: domain.Tier, team_id: str | None) -> domain.Policy:
    rows = (
        await session.execute(select(sla_policy).where(sla_policy.c.tier == tier, sla_policy.c.active.is_(True)))
    ).all()
    return domain.choose_policy([policy_from_row(r) for r in rows], tier, team_id)


async def owner_hours(session: AsyncSession, rep_id: str | None) -> domain.BusinessHours | None:
    if rep_id is None:
        return None
    found = (
        await session.execute(select(rep_calendar.c.business_hours).where(rep_calendar.c.rep_id == rep_id))
    ).first()
    return domain.BusinessHours.model_validate(found.business_hours) if found else None


async def open_clock(session: AsyncSession, evt: Event[EventData], data: LeadRouted, lead_row: Row[Any]) -> None:
    """A routed (or re-routed) lead starts a fresh first-touch clock; an older open clock is superseded."""
    tier = cast(domain.Tier, data.tier or lead_row.tier or domain.FALLBACK_TIER)
    team_id = data.owner.team_id if data.owner else None
    rep_id = data.owner.rep_id if data.owner else None
    policy = await load_policy(session, tier, team_id)
    calendar = domain.calendar_for(policy, await owner_hours(session, rep_id) if policy.use_owner_hours else None)
    started_at = evt.time
    plan = domain.plan_clock(started_at, policy, calendar)
    status, stopped_at, stop_reason = "open", None, None
    # The touch can overtake the routed event (they travel on different topics).
    if lead_row.last_stop_touch_at is not None and lead_row.last_stop_touch_at >= started_at:
        status, stopped_at, stop_reason = "stopped", lead_row.last_stop_touch_at, lead_row.last_stop_touch_type
        if lead_row.sla_outcome is None:
            outcome = "met" if stopped_at <= plan.due_at else "breached"
            await session.execute(update(lead).where(lead.c.lead_id == data.lead_id).values(sla_outcome=outcome))
    await session.execute(
        insert(sla_clock)
        .values(
            id=str(uuid.uuid4()), lead_id=data.lead_id, routed_event_id=evt.id, tier=tier, team_id=team_id,
            owner_rep_id=rep_id, policy_id=policy.id, correlation_id=evt.correlation_id,
            lead_captured_at=lead_row.captured_at, target_seconds=policy.target_seconds,
            warning_ratio=policy.warning_ratio, breach_limit=policy.breach_limit,
            business_hours=calendar.model_dump(mode="json") if calendar else None,
            started_at=plan.started_at, warning_at=plan.warning_at, due_at=plan.due_at, status=status,
            next_fire_at=plan.warning_at if status == "open" else None,
            stopped_at=stopped_at, stop_reason=stop_reason,
        )
        .on_conflict_do_nothing()
    )
    await supersede_older_clocks(session, data.lead_id)


async def supersede_older_clocks(session: AsyncSession, lead_id: str) -> None:
    """Only the latest routing's clock runs; events may arrive out of order, so compare start times."""
    open_clocks = (
        await session.execute(
            select(sla_clock.c.id, sla_clock.c.started_at)
            .where(sla_clock.c.lead_id == lead_id, sla_clock.c.status == "open")
            .order_by(sla_clock.c.started_at.desc(), sla_clock.c.created_at.desc())
            .with_for_update()
        )
    ).all()
    if len(open_clocks) < 2:
        return
    latest = open_clocks[0]
    await session.execute(
        update(sla_clock)
        .where(sla_clock.c.id.in_([c.id for c in open_clocks[1:]]))
        .values(status="superseded", next_fire_at=None, stopped_at=latest.started_at, stop_reason="rerouted")
    )


async def stop_clocks(session: AsyncSession, data: LeadTouched, lead_row: Row[Any], metrics: SlaMetrics) -> None:
    stopped = (
        await session.execute(
            update(sla_clock)
            .where(sla_clock.c.lead_id == data.lead_id, sla_clock.c.status == "open",
                   sla_clock.c.started_at <= data.occurred_at)
            .values(status="stopped", stopped_at=data.occurred_at, stop_reason=data.touch_type, next_fire_at=None)
            .returning(sla_clock.c.tier, sla_clock.c.team_id, sla_clock.c.started_at, sla_clock.c.breached_at)
        )
    ).all()
    changes: dict[str, Any] = {}
    if lead_row.last_stop_touch_at is None or data.occurred_at > lead_row.last_stop_touch_at:
        changes.update(last_stop_touch_at=data.occurred_at, last_stop_touch_type=data.touch_type)
    if lead_row.first_touch_at is None:
        reference = lead_row.captured_at or lead_row.first_routed_at
        speed = max((data.occurred_at - reference).total_seconds(), 0.0) if reference else None
        changes.update(first_touch_at=data.occurred_at, speed_to_lead_seconds=speed)
        if lead_row.sla_outcome is None and stopped:
            changes["sla_outcome"] = "breached" if any(c.breached_at for c in stopped) else "met"
        if speed is not None:
            clock = stopped[0] if stopped else None
            tier = clock.tier if clock else (lead_row.tier or domain.FALLBACK_TIER)
            team = domain.team_label(clock.team_id if clock else lead_row.team_id)
            after_commit(session, lambda: metrics.speed_to_lead.labels(tier, team).observe(speed))
    if changes:
        await session.execute(update(lead).where(lead.c.lead_id == data.lead_id).values(**changes))


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
