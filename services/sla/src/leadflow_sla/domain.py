"""SLA rules as plain data: stages of a lead's journey, clocks, funnel. The policies and the business-hours
arithmetic a clock counts in are shared with routing: ``leadflow_contracts.sla_policy``.

No I/O here; handlers load and store, this module decides.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar, cast

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
    LeadSlaStarted,
    LeadTouched,
)
from leadflow_contracts.sla_policy import (
    FALLBACK_TIER,
    TIERS,
    BusinessHours,
    Policy,
    Tier,
    next_fire_at,
    plan_clock,
    working_time_between,
)
from leadflow_sla.identity import identity_changes

UNASSIGNED_TEAM = "unassigned"

# Touches that end the first-touch clock; "accepted" only says the rep took the lead, not that they reached out.
STOPPING_TOUCHES = frozenset({"contacted", "meeting_booked", "opportunity_created", "disqualified", "converted",
                              "closed_lost"})

# --------------------------------------------------------------------------------------------
# Stages of the timeline
# --------------------------------------------------------------------------------------------

STAGE_ORDER = (
    "captured", "enriched", "scored", "routed", "webhook_delivered", "webhook_failed",
    "activity", "touched", "sla_warning", "sla_breach",
)
_STAGE_RANK = {name: i for i, name in enumerate(STAGE_ORDER)}


def stage_rank(stage: str) -> int:
    """Orders stages recorded at the same instant (a lead is captured before it is enriched)."""
    return _STAGE_RANK.get(stage, len(STAGE_ORDER))


def stage_of(data: EventData) -> str:
    if isinstance(data, LeadCaptured):
        return "captured"
    if isinstance(data, LeadEnriched):
        return "enriched"
    if isinstance(data, LeadScored):
        return "scored"
    if isinstance(data, LeadRouted):
        return "routed"
    if isinstance(data, LeadActivity):
        return "activity"
    if isinstance(data, LeadTouched):
        return "touched"
    if isinstance(data, LeadSla):
        return f"sla_{data.kind}"
    if isinstance(data, LeadDelivered):
        return "webhook_delivered" if data.status == "delivered" else "webhook_failed"
    raise ValueError(f"no timeline stage for {type(data).__name__}")


def stage_details(data: EventData) -> dict[str, Any]:
    """The few facts of an event worth showing on a timeline (never the person's contact data)."""
    if isinstance(data, LeadCaptured):
        return _compact(form_key=data.form_key, utm_source=data.attribution.utm_source,
                        utm_campaign=data.attribution.utm_campaign)
    if isinstance(data, LeadEnriched):
        return _compact(quality_score=data.quality.score, partial=data.partial or None,
                        duplicate_of=data.duplicate_of, captured_lead_id=data.captured_lead_id,
                        account_id=data.account.account_id if data.account else None)
    if isinstance(data, LeadScored):
        return _compact(score=data.score, tier=data.tier, fit_grade=data.fit_grade,
                        engagement_level=data.engagement_level, is_mql=data.is_mql,
                        lifecycle_stage=data.lifecycle_stage, previous_stage=data.previous_stage,
                        model_version=data.model_version, trigger=data.trigger)
    if isinstance(data, LeadRouted):
        return _compact(assignment_id=data.assignment_id,
                        owner_rep_id=data.owner.rep_id if data.owner else None,
                        owner_name=data.owner.name if data.owner else None,
                        team_id=routed_team_id(data),
                        queue=data.queue, reason=data.reason, rule_id=data.rule_id, strategy=data.strategy,
                        tier=data.tier, reroute=data.reroute or None, reroute_reason=data.reroute_reason,
                        previous_owner_rep_id=data.previous_owner_rep_id, escalated=data.escalated or None)
    if isinstance(data, LeadActivity):
        return _compact(activity_type=data.activity_type, activity_id=data.activity_id, page_url=data.page_url)
    if isinstance(data, LeadTouched):
        return _compact(touch_type=data.touch_type, touch_id=data.touch_id, rep_id=data.rep_id,
                        reason=data.reason, integration=data.integration,
                        owner_mismatch=data.owner_mismatch or None,
                        amount=str(data.amount) if data.amount is not None else None, currency=data.currency)
    if isinstance(data, LeadSla):
        return _compact(clock_id=data.clock_id, tier=data.tier, owner_rep_id=data.owner_rep_id,
                        team_id=data.team_id, due_at=data.due_at.isoformat(),
                        breach_count=data.breach_count or None, escalate=data.escalate or None)
    if isinstance(data, LeadDelivered):
        return _compact(webhook_id=data.webhook_id, subscription_id=data.subscription_id,
                        event_type=data.event_type_delivered, status=data.status, attempt=data.attempt,
                        status_code=data.status_code, error=data.error)
    return {}


def _compact(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def lead_ids_of(subject: str, data: EventData) -> list[str]:
    """Every lead whose timeline an event belongs on: a duplicate fill shows on both leads."""
    ids = [subject]
    # Only an enrichment carries the fill's own lead id. Asked by isinstance rather than getattr with a
    # default: on a pydantic model without the field, getattr raises and catches an AttributeError (about
    # 2 us, on every other event of every lead topic).
    captured_lead_id = data.captured_lead_id if isinstance(data, LeadEnriched) else None
    for extra in (getattr(data, "lead_id", None), captured_lead_id):
        if extra and extra not in ids:
            ids.append(extra)
    return ids


# Pipeline latency is measured once per lead, at the first time it reaches a stage.
PIPELINE_STAGES = frozenset({"enriched", "scored", "routed", "webhook_delivered"})


# --------------------------------------------------------------------------------------------
# Funnel stages reached (cumulative: reaching SQL means the lead went through MQL and acceptance)
# --------------------------------------------------------------------------------------------

FUNNEL_STAGES = ("captured", "mql", "accepted", "sql", "opportunity", "converted")
FUNNEL_RANK = {name: i for i, name in enumerate(FUNNEL_STAGES)}
LIFECYCLE_TO_FUNNEL = {
    "lead": "captured", "mql": "mql", "sal": "accepted", "sql": "sql",
    "opportunity": "opportunity", "customer": "converted",
}
TOUCH_TO_FUNNEL = {"accepted": "accepted", "contacted": "accepted", "meeting_booked": "accepted",
                   "opportunity_created": "opportunity", "converted": "converted", "closed_lost": "opportunity"}


# --------------------------------------------------------------------------------------------
# Clocks (the policies and their arithmetic: leadflow_contracts.sla_policy)
# --------------------------------------------------------------------------------------------


def open_clocks_by_tier(counts: dict[str, int]) -> dict[str, int]:
    """Every tier's count of open clocks, zero for a tier with none."""
    return {**dict.fromkeys(TIERS, 0), **counts}


def should_escalate(breach_number: int, breach_limit: int) -> bool:
    """Routing re-routes on a breach; from the limit-th breach of a lead on it escalates instead."""
    return breach_limit > 0 and breach_number >= breach_limit


def team_label(team_id: str | None) -> str:
    return team_id or UNASSIGNED_TEAM


# --------------------------------------------------------------------------------------------
# Funnel
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelLead:
    group: str
    stage_rank: int
    speed_to_lead_seconds: float | None
    sla_outcome: str | None  # met | breached | None while undecided
    # The deal's value in its own currency, and whether it was lost (revenue.py turns these into money).
    deal_amount: Decimal | None = None
    deal_currency: str | None = None
    lost: bool = False
    # When it was won (converted): its deal converts at the currency rates in force that day.
    converted_at: datetime | None = None


@dataclass
class FunnelGroup:
    key: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FUNNEL_STAGES, 0))
    speeds: list[float] = field(default_factory=list)
    sla_met: int = 0
    sla_breached: int = 0

    def add(self, item: FunnelLead) -> None:
        for name in FUNNEL_STAGES:
            if item.stage_rank >= FUNNEL_RANK[name]:
                self.counts[name] += 1
        if item.speed_to_lead_seconds is not None:
            self.speeds.append(item.speed_to_lead_seconds)
        if item.sla_outcome == "met":
            self.sla_met += 1
        elif item.sla_outcome == "breached":
            self.sla_breached += 1

    def report(self) -> dict[str, Any]:
        c = self.counts
        decided = self.sla_met + self.sla_breached
        return {
            "group": self.key,
            "counts": dict(c),
            "conversion_rates": {
                "captured_to_mql": ratio(c["mql"], c["captured"]),
                "mql_to_accepted": ratio(c["accepted"], c["mql"]),
                "accepted_to_sql": ratio(c["sql"], c["accepted"]),
                "mql_to_sql": ratio(c["sql"], c["mql"]),
                "sql_to_opportunity": ratio(c["opportunity"], c["sql"]),
                "opportunity_to_converted": ratio(c["converted"], c["opportunity"]),
                "captured_to_converted": ratio(c["converted"], c["captured"]),
            },
            "speed_to_lead_seconds": {
                "touched": len(self.speeds),
                "median": percentile(self.speeds, 0.5),
                "p90": percentile(self.speeds, 0.9),
            },
            "sla": {
                "met": self.sla_met,
                "breached": self.sla_breached,
                "compliance_pct": None if decided == 0 else round(100.0 * self.sla_met / decided, 2),
            },
        }


def ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont, numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return round(value, 3)


def funnel(leads: Iterable[FunnelLead]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-group reports sorted by group, and the total over all groups."""
    groups: dict[str, FunnelGroup] = {}
    total = FunnelGroup("total")
    for item in leads:
        groups.setdefault(item.group, FunnelGroup(item.group)).add(item)
        total.add(item)
    return [groups[k].report() for k in sorted(groups)], total.report()


# --------------------------------------------------------------------------------------------
# A lead's facts, as events change them
# --------------------------------------------------------------------------------------------

LeadData = TypeVar("LeadData", bound=EventData)

# The lead columns one event changes, by column name (only these are written, in one statement).
LeadChanges = dict[str, Any]


@dataclass(frozen=True)
class LeadFacts:
    """What the funnel knows about a lead: its ``lead`` row."""

    lead_id: str
    captured_at: datetime | None = None
    form_key: str | None = None
    source: str | None = None
    utm_campaign: str | None = None
    tier: str | None = None
    score: float | None = None
    team_id: str | None = None
    rep_id: str | None = None
    stage_rank: int = 0
    mql_at: datetime | None = None
    accepted_at: datetime | None = None
    sql_at: datetime | None = None
    opportunity_at: datetime | None = None
    converted_at: datetime | None = None
    disqualified_at: datetime | None = None
    first_routed_at: datetime | None = None
    first_touch_at: datetime | None = None
    speed_to_lead_seconds: float | None = None
    sla_outcome: str | None = None
    breach_count: int = 0
    merged_into: str | None = None
    # The latest clock-stopping touch, so a routed event that arrives after it opens no running clock.
    last_stop_touch_at: datetime | None = None
    last_stop_touch_type: str | None = None
    updated_at: datetime | None = None
    deal_amount: Decimal | None = None
    deal_currency: str | None = None
    lost_at: datetime | None = None
    # Who the lead is and where it waits, for finding it.
    email: str | None = None
    full_name: str | None = None
    company: str | None = None
    queue: str | None = None


def changed_facts(facts: LeadFacts, changes: LeadChanges) -> LeadFacts:
    """``dataclasses.replace(facts, **changes)``, in two thirds of its CPU: ``__init__`` takes every column at
    once, where replace walks the dataclass's fields in Python first (once or twice for most events)."""
    return LeadFacts(**{**vars(facts), **changes})


@dataclass(frozen=True)
class TimelineRecord:
    """One event as it goes on the timelines of the leads it concerns, and what it means for the lead's facts."""

    lead_ids: list[str]
    event_id: str
    event_type: str
    stage: str
    source: str
    at: datetime
    lead_captured_at: datetime | None
    details: dict[str, Any]
    facts_lead_id: str
    subject: str
    # Noted when it is the subject's first event at this stage: pipeline latency for the pipeline's stages,
    # the count of captured leads for ``captured`` (whichever topic's event reaches sla first).
    measured: bool
    # Only webhooks of the routed lead count as the pipeline's last stage: an earlier event at this stage
    # counts only when its event type starts so.
    earlier_event_type_prefix: str | None

    def precedes(self, later: TimelineRecord) -> bool:
        """Whether this record, earlier on ``later``'s subject's timeline, makes ``later`` no first."""
        if later.subject not in self.lead_ids or self.stage != later.stage:
            return False
        prefix = later.earlier_event_type_prefix
        event_type = self.details.get("event_type")
        return prefix is None or (isinstance(event_type, str) and event_type.startswith(prefix))


ROUTED_WEBHOOK_PREFIX = "lead.routed"


def firsts_within_batch(records: Sequence[TimelineRecord]) -> list[int]:
    """The positions of the measured records that no earlier record of the batch precedes: the candidates for
    their subject's first at their stage, which the store then checks against what the timelines held before
    the batch. Linear in the batch (the store once compared every pair in SQL: a nested loop over 200 x 200
    rows at saturation, where hash joins are off)."""
    seen: dict[tuple[str, str], list[TimelineRecord]] = {}
    candidates = []
    for position, record in enumerate(records):
        if record.measured and not any(
                earlier.precedes(record) for earlier in seen.get((record.subject, record.stage), ())):
            candidates.append(position)
        for lead_id in record.lead_ids:
            seen.setdefault((lead_id, record.stage), []).append(record)
    return candidates


def occurred_at(evt: Event[LeadData]) -> datetime:
    """When the thing happened, which for some events is earlier than when it was announced."""
    data = evt.data
    if isinstance(data, LeadCaptured):
        return data.submitted_at
    if isinstance(data, LeadTouched | LeadActivity):
        return data.occurred_at
    if isinstance(data, LeadDelivered):
        return data.at
    return evt.time


def captured_at_of(evt: Event[LeadData]) -> datetime | None:
    if isinstance(evt.data, LeadCaptured):
        return evt.data.submitted_at
    return evt.lead_captured_at


def facts_lead_id(evt: Event[LeadData]) -> str:
    """The lead whose funnel facts and clocks the event moves."""
    lead_id: str | None = getattr(evt.data, "lead_id", None)
    return lead_id or evt.subject


def belongs_to_a_lead(data: EventData) -> bool:
    """An anonymous visitor's activity belongs to no lead yet."""
    return not (isinstance(data, LeadActivity) and data.lead_id is None)


def timeline_record(evt: Event[LeadData]) -> TimelineRecord:
    data = evt.data
    stage = stage_of(data)
    # The pipeline ends at the CRM webhook of the routed lead; SLA notifications are deliveries too, but later.
    measured = stage == "captured" or (stage in PIPELINE_STAGES and (
        not isinstance(data, LeadDelivered) or data.event_type_delivered.startswith("lead.routed")
    ))
    return TimelineRecord(
        lead_ids=lead_ids_of(evt.subject, data), event_id=evt.id, event_type=evt.type, stage=stage,
        source=evt.source, at=occurred_at(evt), lead_captured_at=captured_at_of(evt),
        details=stage_details(data), facts_lead_id=facts_lead_id(evt), subject=evt.subject, measured=measured,
        earlier_event_type_prefix=ROUTED_WEBHOOK_PREFIX if stage == "webhook_delivered" else None,
    )


def reach(facts: LeadFacts, changes: LeadChanges, funnel_stage: str, at: datetime) -> None:
    """Mark the funnel stage and every stage before it as reached (first time wins)."""
    rank = FUNNEL_RANK[funnel_stage]
    for name in FUNNEL_STAGES[1 : rank + 1]:
        column = f"{name}_at"
        if getattr(facts, column) is None and column not in changes:
            changes[column] = at
    if rank > facts.stage_rank:
        changes["stage_rank"] = rank


def lead_changes(facts: LeadFacts, evt: Event[LeadData]) -> LeadChanges:
    """What the event itself changes on the lead (the clocks may change more); ``updated_at`` with it."""
    data = evt.data
    at = occurred_at(evt)
    captured_at = captured_at_of(evt)
    changes: LeadChanges = {}
    if facts.captured_at is None and captured_at is not None:
        changes["captured_at"] = captured_at
    if isinstance(data, LeadCaptured | LeadEnriched):
        if isinstance(data, LeadCaptured) or facts.form_key is None:
            changes.update(form_key=data.form_key, source=data.attribution.utm_source or "direct",
                           utm_campaign=data.attribution.utm_campaign)
        changes.update(identity_changes(data, facts.email))
    elif isinstance(data, LeadScored):
        _scored(facts, changes, data, at)
    elif isinstance(data, LeadRouted):
        changes.update(team_id=routed_team_id(data),
                       rep_id=data.owner.rep_id if data.owner else None, queue=data.queue)
        if data.tier is not None and facts.tier is None:
            changes["tier"] = data.tier
        if facts.first_routed_at is None and not data.nurture:
            changes["first_routed_at"] = at
    elif isinstance(data, LeadSla):
        if data.kind == "breach":
            changes["sla_outcome"] = "breached"
            if data.breach_count > facts.breach_count:
                changes["breach_count"] = data.breach_count
    elif isinstance(data, LeadTouched):
        funnel_stage = TOUCH_TO_FUNNEL.get(data.touch_type)
        if funnel_stage is not None:
            reach(facts, changes, funnel_stage, at)
        if data.touch_type == "disqualified" and facts.disqualified_at is None:
            changes["disqualified_at"] = at
        _deal(facts, changes, data, at)
    if changes:
        # Only the event's own facts mark the lead as updated; what the clocks settle does not.
        changes["updated_at"] = evt.time
    return changes


def _deal(facts: LeadFacts, changes: LeadChanges, data: LeadTouched, at: datetime) -> None:
    """The CRM's latest amount is the deal's value; a lost deal stays lost unless it is won after all."""
    if data.amount is not None:
        changes.update(deal_amount=data.amount, deal_currency=data.currency)
    if data.touch_type == "closed_lost" and facts.lost_at is None:
        changes["lost_at"] = at
    if data.touch_type == "converted" and facts.lost_at is not None:
        changes["lost_at"] = None


def _scored(facts: LeadFacts, changes: LeadChanges, data: LeadScored, at: datetime) -> None:
    changes.update(tier=data.tier, score=data.score)
    if data.is_mql:
        reach(facts, changes, "mql", at)
    funnel_stage = LIFECYCLE_TO_FUNNEL.get(data.lifecycle_stage)
    if funnel_stage is not None and funnel_stage != "captured":
        reach(facts, changes, funnel_stage, at)
    if data.lifecycle_stage == "disqualified" and facts.disqualified_at is None:
        changes["disqualified_at"] = at


def merged_fill(evt: Event[LeadData], lead_id: str) -> str | None:
    """The repeat fill's own lead id when the event folds it into ``lead_id``."""
    data = evt.data
    if isinstance(data, LeadEnriched) and data.duplicate_of and data.captured_lead_id != lead_id:
        return data.captured_lead_id
    return None


# --------------------------------------------------------------------------------------------
# Opening, stopping and firing clocks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlaClock:
    """A first-touch clock: one per routing of a lead (an ``sla_clock`` row)."""

    id: str
    lead_id: str
    routed_event_id: str
    tier: Tier
    team_id: str | None
    owner_rep_id: str | None
    policy_id: str | None
    correlation_id: str | None
    lead_captured_at: datetime | None
    target_seconds: int
    warning_ratio: float
    breach_limit: int
    business_hours: dict[str, Any] | None  # as stored: the calendar the clock counts in
    started_at: datetime
    warning_at: datetime
    due_at: datetime
    status: str  # open | stopped | superseded
    warned_at: datetime | None = None
    breached_at: datetime | None = None
    breach_number: int | None = None
    next_fire_at: datetime | None = None
    stopped_at: datetime | None = None
    stop_reason: str | None = None

    @property
    def calendar(self) -> BusinessHours | None:
        return BusinessHours.model_validate(self.business_hours) if self.business_hours else None


def routed_team_id(routed: LeadRouted) -> str | None:
    """The routed lead's team: its owner's; for a lead waiting in a queue, the team whose fallback queue
    it is, so the queue's clock follows that team's policy."""
    return routed.owner.team_id if routed.owner else routed.team_id


def opens_clock(routed: LeadRouted, routed_before: bool) -> bool:
    """A repeat fill that kept the owner of a lead already routed leaves its clock as it is: running,
    it keeps its deadline; stopped, the rep is working the lead and a fresh clock would breach and
    re-route the lead away from them."""
    return not (routed.kept_owner and routed_before)


def clock_tier(routed: LeadRouted, facts: LeadFacts) -> Tier:
    return cast(Tier, routed.tier or facts.tier or FALLBACK_TIER)


def new_clock(
    clock_id: str, evt: Event[LeadData], routed: LeadRouted, facts: LeadFacts, tier: Tier, policy: Policy,
    calendar: BusinessHours | None,
) -> tuple[SlaClock, LeadChanges]:
    """The clock ``evt`` (whose data is ``routed``) starts, and what it settles on the lead. The touch can
    overtake the routed event (they travel on different topics): then the clock starts stopped."""
    plan = plan_clock(evt.time, policy, calendar)
    status, stopped_at, stop_reason = "open", None, None
    changes: LeadChanges = {}
    touched_at = facts.last_stop_touch_at
    if touched_at is not None and touched_at >= plan.started_at:
        status, stopped_at, stop_reason = "stopped", touched_at, facts.last_stop_touch_type
        if facts.sla_outcome is None:
            changes["sla_outcome"] = "met" if touched_at <= plan.due_at else "breached"
    clock = SlaClock(
        id=clock_id, lead_id=routed.lead_id, routed_event_id=evt.id, tier=tier,
        team_id=routed_team_id(routed),
        owner_rep_id=routed.owner.rep_id if routed.owner else None, policy_id=policy.id,
        correlation_id=evt.correlation_id, lead_captured_at=facts.captured_at,
        target_seconds=policy.target_seconds, warning_ratio=policy.warning_ratio, breach_limit=policy.breach_limit,
        business_hours=calendar.model_dump(mode="json") if calendar else None,
        started_at=plan.started_at, warning_at=plan.warning_at, due_at=plan.due_at, status=status,
        next_fire_at=plan.warning_at if status == "open" else None, stopped_at=stopped_at, stop_reason=stop_reason,
    )
    return clock, changes


@dataclass(frozen=True)
class SpeedToLead:
    seconds: float
    tier: str
    team: str


def touch_changes(
    facts: LeadFacts, touch: LeadTouched, stopped: Sequence[SlaClock]
) -> tuple[LeadChanges, SpeedToLead | None]:
    """What a clock-stopping touch settles on the lead, and the speed to lead when it is the first touch."""
    changes: LeadChanges = {}
    if facts.last_stop_touch_at is None or touch.occurred_at > facts.last_stop_touch_at:
        changes.update(last_stop_touch_at=touch.occurred_at, last_stop_touch_type=touch.touch_type)
    if facts.first_touch_at is not None:
        return changes, None
    reference = facts.captured_at or facts.first_routed_at
    speed = max((touch.occurred_at - reference).total_seconds(), 0.0) if reference else None
    changes.update(first_touch_at=touch.occurred_at, speed_to_lead_seconds=speed)
    if facts.sla_outcome is None and stopped:
        changes["sla_outcome"] = "breached" if any(c.breached_at for c in stopped) else "met"
    if speed is None:
        return changes, None
    clock = stopped[0] if stopped else None
    tier = clock.tier if clock else (facts.tier or FALLBACK_TIER)
    team = team_label(clock.team_id if clock else facts.team_id)
    return changes, SpeedToLead(speed, tier, team)


ThresholdKind = Literal["warning", "breach"]


@dataclass(frozen=True)
class Fired:
    clock_id: str
    lead_id: str
    kind: ThresholdKind
    event_id: str


@dataclass(frozen=True)
class Notice:
    """A warning or breach emitted for a clock (an ``sla_notice`` row: at most one per clock and kind)."""

    clock_id: str
    kind: ThresholdKind
    event_id: str
    lead_id: str
    threshold_at: datetime
    emitted_at: datetime


def clock_started(clock: SlaClock, routed: LeadRouted) -> LeadSlaStarted:
    return LeadSlaStarted(
        lead_id=clock.lead_id, clock_id=clock.id, tier=clock.tier, owner_rep_id=clock.owner_rep_id,
        team_id=clock.team_id, queue=routed.queue, started_at=clock.started_at, due_at=clock.due_at,
        warning_at=clock.warning_at, target_seconds=clock.target_seconds, assignment_id=routed.assignment_id,
    )


def threshold_data(clock: SlaClock, kind: ThresholdKind, breach_number: int) -> LeadSla:
    return LeadSla(
        lead_id=clock.lead_id, clock_id=clock.id, kind=kind, tier=clock.tier,
        owner_rep_id=clock.owner_rep_id, team_id=clock.team_id, started_at=clock.started_at,
        due_at=clock.due_at, breach_count=breach_number,
        escalate=kind == "breach" and should_escalate(breach_number, clock.breach_limit),
    )


def fired_changes(clock: SlaClock, fired: Sequence[Fired], now: datetime, breach_number: int) -> dict[str, Any]:
    """The clock's columns that change after a round of firing (``next_fire_at`` always)."""
    changes: dict[str, Any] = {}
    kinds = {f.kind for f in fired}
    if "warning" in kinds:
        changes["warned_at"] = now
    if "breach" in kinds:
        changes.update(breached_at=now, breach_number=breach_number)
    warned = clock.warned_at is not None or "warning" in kinds
    breached = clock.breached_at is not None or "breach" in kinds
    changes["next_fire_at"] = next_fire_at(clock.warning_at, clock.due_at, warned, breached)
    return changes


# --------------------------------------------------------------------------------------------
# Timeline
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEvent:
    """One event on a lead's timeline (a ``lead_event`` row)."""

    id: int
    event_id: str
    event_type: str
    stage: str
    source: str
    at: datetime
    lead_captured_at: datetime | None
    details: dict[str, Any]


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


def clock_state(clock: SlaClock, now: datetime) -> dict[str, Any]:
    end = clock.stopped_at or now
    elapsed = working_time_between(clock.started_at, end, clock.calendar).total_seconds()
    return {
        "clock_id": clock.id,
        "status": clock.status,
        "tier": clock.tier,
        "team_id": clock.team_id,
        "owner_rep_id": clock.owner_rep_id,
        "policy_id": clock.policy_id,
        "target_seconds": clock.target_seconds,
        "business_hours": clock.business_hours,
        "started_at": clock.started_at,
        "warning_at": clock.warning_at,
        "due_at": clock.due_at,
        "warned_at": clock.warned_at,
        "breached_at": clock.breached_at,
        "breach_number": clock.breach_number,
        "stopped_at": clock.stopped_at,
        "stop_reason": clock.stop_reason,
        "elapsed_seconds": round(elapsed, 3),
        "remaining_seconds": round(clock.target_seconds - elapsed, 3) if clock.status == "open" else None,
        "met": (clock.stopped_at <= clock.due_at) if clock.status == "stopped" and clock.stopped_at else None,
    }


def timeline(
    lead_id: str, events: Sequence[TimelineEvent], facts: LeadFacts | None, clocks: Sequence[SlaClock],
    now: datetime,
) -> Timeline | None:
    """The lead's journey in order, with its owners, webhooks, clocks and funnel facts; None for a lead never seen."""
    if not events and facts is None:
        return None
    ordered = sorted(events, key=lambda e: (e.at, stage_rank(e.stage), e.id))
    captured = facts.captured_at if facts is not None and facts.captured_at else None
    if captured is None:
        captured = next((e.lead_captured_at for e in ordered if e.lead_captured_at is not None), None)
    webhooks = [{"at": e.at, **e.details} for e in ordered if e.stage in ("webhook_delivered", "webhook_failed")]
    return Timeline(lead_id, _stages(ordered, captured), _owner_changes(ordered), webhooks,
                    _sla_summary(facts, clocks, now), _funnel_facts(facts))


def _stages(events: Sequence[TimelineEvent], captured: datetime | None) -> list[dict[str, Any]]:
    stages: list[dict[str, Any]] = []
    previous_at: datetime | None = None
    for e in events:
        stages.append({
            "stage": e.stage,
            "event_type": e.event_type,
            "event_id": e.event_id,
            "at": e.at,
            "source": e.source,
            "since_capture_ms": _ms((e.at - captured).total_seconds()) if captured else None,
            "since_previous_ms": _ms((e.at - previous_at).total_seconds()) if previous_at else None,
            "details": e.details,
        })
        previous_at = e.at
    return stages


def _owner_changes(events: Sequence[TimelineEvent]) -> list[dict[str, Any]]:
    changes: list[dict[str, Any]] = []
    previous_owner: str | None = None
    previous_rep: str | None = None
    for e in events:
        if e.stage != "routed":
            continue
        d = e.details
        owner = d.get("owner_rep_id") or (f"queue:{d['queue']}" if d.get("queue") else None)
        if owner != previous_owner:
            changes.append({
                "at": e.at,
                "from_rep_id": previous_rep,
                "to_rep_id": d.get("owner_rep_id"),
                "team_id": d.get("team_id"),
                "queue": d.get("queue"),
                "reason": d.get("reroute_reason") or d.get("reason"),
                "escalated": bool(d.get("escalated")),
            })
            previous_owner, previous_rep = owner, d.get("owner_rep_id")
    return changes


def _sla_summary(facts: LeadFacts | None, clocks: Sequence[SlaClock], now: datetime) -> dict[str, Any]:
    history = [clock_state(c, now) for c in clocks]
    current = next((c for c in reversed(history) if c["status"] == "open"), history[-1] if history else None)
    return {
        # Touched before its routing reached us: no clock yet, but nothing is waiting either.
        "state": current["status"] if current else (
            "stopped" if facts is not None and facts.last_stop_touch_at is not None else "none"),
        "current": current,
        "clocks": history,
        "outcome": facts.sla_outcome if facts is not None else None,
        "breach_count": facts.breach_count if facts is not None else 0,
    }


def _funnel_facts(facts: LeadFacts | None) -> dict[str, Any]:
    if facts is None:
        return {}
    return {
        "captured_at": facts.captured_at,
        "stage": FUNNEL_STAGES[facts.stage_rank],
        **{f"{name}_at": getattr(facts, f"{name}_at") for name in FUNNEL_STAGES[1:]},
        "first_touch_at": facts.first_touch_at,
        "speed_to_lead_seconds": facts.speed_to_lead_seconds,
        "tier": facts.tier,
        "team_id": facts.team_id,
        "rep_id": facts.rep_id,
    }
