"""SLA rules as plain data: stages of a lead's journey, policies, business-hours arithmetic, clocks, funnel.

No I/O here; handlers load and store, this module decides.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from leadflow_contracts import (
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

Tier = Literal["hot", "warm", "cold"]
TIERS: tuple[Tier, ...] = ("hot", "warm", "cold")

DEFAULT_TARGET_SECONDS: dict[Tier, int] = {"hot": 5 * 60, "warm": 60 * 60, "cold": 24 * 60 * 60}
DEFAULT_WARNING_RATIO = 0.8
DEFAULT_BREACH_LIMIT = 2
# A lead routed without a tier (and never scored) gets the most lenient clock rather than none.
FALLBACK_TIER: Tier = "cold"
UNASSIGNED_TEAM = "unassigned"

# Touches that end the first-touch clock; "accepted" only says the rep took the lead, not that they reached out.
STOPPING_TOUCHES = frozenset({"contacted", "meeting_booked", "opportunity_created", "disqualified", "converted"})

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
                        team_id=data.owner.team_id if data.owner else None,
                        queue=data.queue, reason=data.reason, rule_id=data.rule_id, strategy=data.strategy,
                        tier=data.tier, reroute=data.reroute or None, reroute_reason=data.reroute_reason,
                        previous_owner_rep_id=data.previous_owner_rep_id, escalated=data.escalated or None)
    if isinstance(data, LeadActivity):
        return _compact(activity_type=data.activity_type, activity_id=data.activity_id, page_url=data.page_url)
    if isinstance(data, LeadTouched):
        return _compact(touch_type=data.touch_type, touch_id=data.touch_id, rep_id=data.rep_id,
                        reason=data.reason, integration=data.integration,
                        owner_mismatch=data.owner_mismatch or None)
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
    for extra in (getattr(data, "lead_id", None), getattr(data, "captured_lead_id", None)):
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
                   "opportunity_created": "opportunity", "converted": "converted"}


# --------------------------------------------------------------------------------------------
# Business hours
# --------------------------------------------------------------------------------------------


class BusinessHours(BaseModel):
    """Working time a clock counts in: weekdays and hours in a time zone, minus public holidays."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = Field(examples=["Europe/Berlin"])
    days: list[int] = Field(default=[0, 1, 2, 3, 4], description="Working weekdays, Monday = 0")
    start: time = Field(default=time(9, 0), examples=["09:00"])
    end: time = Field(default=time(17, 0), examples=["17:00"])
    holiday_country: str | None = Field(default=None, description="ISO country code for the `holidays` package",
                                        examples=["DE"])
    holiday_subdivision: str | None = Field(default=None, examples=["BY"])
    extra_holidays: list[date] = Field(default_factory=list, description="Company days off")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}'") from None
        return value

    @field_validator("days")
    @classmethod
    def _weekdays(cls, value: list[int]) -> list[int]:
        if not value or any(d < 0 or d > 6 for d in value):
            raise ValueError("days must name at least one weekday, 0 (Monday) to 6 (Sunday)")
        return sorted(set(value))

    @model_validator(mode="after")
    def _window_and_holidays(self) -> BusinessHours:
        if self.end <= self.start:
            raise ValueError("end must be after start (overnight shifts are not supported)")
        if self.holiday_country is not None:
            supported = holidays.list_supported_countries()
            if self.holiday_country not in supported:
                raise ValueError(f"holidays has no calendar for country '{self.holiday_country}'")
            if self.holiday_subdivision is not None and self.holiday_subdivision not in supported[
                self.holiday_country
            ]:
                raise ValueError(f"'{self.holiday_subdivision}' is not a subdivision of {self.holiday_country}")
        return self

    def is_working_day(self, day: date) -> bool:
        if day.weekday() not in self.days or day in self.extra_holidays:
            return False
        if self.holiday_country is None:
            return True
        return day not in _holiday_calendar(self.holiday_country, self.holiday_subdivision, day.year)

    def window(self, day: date) -> tuple[datetime, datetime] | None:
        """The day's working window in UTC, or None on a day off."""
        if not self.is_working_day(day):
            return None
        zone = ZoneInfo(self.timezone)
        opens = datetime.combine(day, self.start, tzinfo=zone).astimezone(UTC)
        closes = datetime.combine(day, self.end, tzinfo=zone).astimezone(UTC)
        return opens, closes


@functools.lru_cache(maxsize=256)
def _holiday_calendar(country: str, subdivision: str | None, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, subdiv=subdivision, years=year)


# A calendar with no working day in this many days is a configuration error, not a reason to loop forever.
MAX_CALENDAR_DAYS = 3 * 366


def add_working_time(start: datetime, seconds: float, calendar: BusinessHours | None) -> datetime:
    """The instant ``seconds`` of working time after ``start`` (plain elapsed time without a calendar)."""
    if calendar is None:
        return start + timedelta(seconds=seconds)
    remaining = timedelta(seconds=seconds)
    zone = ZoneInfo(calendar.timezone)
    day = start.astimezone(zone).date()
    for _ in range(MAX_CALENDAR_DAYS):
        window = calendar.window(day)
        day += timedelta(days=1)
        if window is None:
            continue
        opens, closes = window
        begin = max(opens, start)
        if begin >= closes:
            continue
        available = closes - begin
        if remaining <= available:
            return begin + remaining
        remaining -= available
    raise ValueError("the business-hours calendar has no working time within three years")


def working_time_between(start: datetime, end: datetime, calendar: BusinessHours | None) -> timedelta:
    """Working time elapsed from ``start`` to ``end``."""
    if end <= start:
        return timedelta(0)
    if calendar is None:
        return end - start
    total = timedelta(0)
    zone = ZoneInfo(calendar.timezone)
    day = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    while day <= last:
        window = calendar.window(day)
        day += timedelta(days=1)
        if window is None:
            continue
        begin, finish = max(window[0], start), min(window[1], end)
        if finish > begin:
            total += finish - begin
    return total


# --------------------------------------------------------------------------------------------
# Policies and clocks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    id: str | None
    tier: Tier
    target_seconds: int
    warning_ratio: float = DEFAULT_WARNING_RATIO
    breach_limit: int = DEFAULT_BREACH_LIMIT
    business_hours: BusinessHours | None = None
    use_owner_hours: bool = False
    team_id: str | None = None


def default_policy(tier: Tier) -> Policy:
    return Policy(id=None, tier=tier, target_seconds=DEFAULT_TARGET_SECONDS[tier])


def choose_policy(policies: Iterable[Policy], tier: Tier, team_id: str | None) -> Policy:
    """The team's policy for the tier, else the tier's default policy, else the built-in default."""
    candidates = [p for p in policies if p.tier == tier]
    for policy in candidates:
        if team_id is not None and policy.team_id == team_id:
            return policy
    for policy in candidates:
        if policy.team_id is None:
            return policy
    return default_policy(tier)


def calendar_for(policy: Policy, owner_hours: BusinessHours | None) -> BusinessHours | None:
    if policy.use_owner_hours and owner_hours is not None:
        return owner_hours
    return policy.business_hours


@dataclass(frozen=True)
class ClockPlan:
    started_at: datetime
    warning_at: datetime
    due_at: datetime


def plan_clock(started_at: datetime, policy: Policy, calendar: BusinessHours | None) -> ClockPlan:
    return ClockPlan(
        started_at=started_at,
        warning_at=add_working_time(started_at, policy.target_seconds * policy.warning_ratio, calendar),
        due_at=add_working_time(started_at, policy.target_seconds, calendar),
    )


def next_fire_at(
    warning_at: datetime, due_at: datetime, warned: bool, breached: bool
) -> datetime | None:
    if not warned:
        return warning_at
    if not breached:
        return due_at
    return None


def due_thresholds(
    now: datetime, warning_at: datetime, due_at: datetime, warned: bool, breached: bool
) -> list[Literal["warning", "breach"]]:
    """Thresholds passed and not yet emitted, in order (a clock found late emits its warning first)."""
    kinds: list[Literal["warning", "breach"]] = []
    if not warned and warning_at <= now:
        kinds.append("warning")
    if not breached and due_at <= now:
        kinds.append("breach")
    return kinds


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
