"""SLA policies and the business-hours arithmetic of a first-touch clock, shared by sla (which owns the
policies and runs the clocks) and routing (which puts the due time a clock will have on its ``lead.routed``
webhook, from the policies sla replicates on ``sla.policies``). Both compute a due time with this one code.

Pure data and arithmetic; no I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Tier = Literal["hot", "warm", "cold"]
TIERS: tuple[Tier, ...] = ("hot", "warm", "cold")

DEFAULT_TARGET_SECONDS: dict[Tier, int] = {"hot": 5 * 60, "warm": 60 * 60, "cold": 24 * 60 * 60}
DEFAULT_WARNING_RATIO = 0.8
DEFAULT_BREACH_LIMIT = 2
# A lead routed without a tier (and never scored) gets the most lenient clock rather than none.
FALLBACK_TIER: Tier = "cold"

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


def policy_for(
    policies: Iterable[Policy], tier: Tier, team_id: str | None, owner_hours: dict[str, Any] | None
) -> tuple[Policy, BusinessHours | None]:
    """The policy for a lead of this tier and team, and the calendar its clock counts in (``owner_hours``:
    the owning rep's stored calendar, read only when the policy counts in it)."""
    policy = choose_policy(policies, tier, team_id)
    owner_calendar = BusinessHours.model_validate(owner_hours) if owner_hours and policy.use_owner_hours else None
    return policy, calendar_for(policy, owner_calendar)



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

