"""Funnel figures over time, and speed to lead and SLA compliance by team or rep.

A bucket is a calendar day, an ISO week (Monday 00:00 to the next Monday) or a calendar month in the
report's time zone; a day across a daylight-saving change is 23 or 25 hours long. Two views of the same
leads, each labelled with its ``kind``:

* ``in_period``: the events that happened in the bucket (leads captured, made MQL, ... in that week);
* ``cohort``: the leads captured in the bucket, each counted at every stage it has reached by now.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, available_timezones

from leadflow_kit import csvexport
from leadflow_kit.csvexport import Cell
from leadflow_sla import domain
from leadflow_sla.reports import RATE_COLUMNS

Interval = Literal["day", "week", "month"]
SpeedGroupBy = Literal["team", "rep"]
# A day-by-day trend over more than about three years is not one a person reads: ask for weeks or months.
MAX_BUCKETS = 1200
IN_PERIOD_MEASURES = (*domain.FUNNEL_STAGES, "first_touched")
PERCENTILE_DEFINITION = ("PostgreSQL percentile_cont: linear interpolation between the closest ranks "
                         "(numpy's default); leads not yet touched are left out")


class TooManyBuckets(ValueError):
    pass


@cache
def _time_zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def time_zone(name: str) -> ZoneInfo | None:
    """The IANA time zone of that name; None for a name the tz database does not know."""
    return ZoneInfo(name) if name in _time_zone_names() else None


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def bucket_start(at: datetime, interval: Interval, tz: ZoneInfo) -> datetime:
    """The start, in ``tz``, of the bucket holding the instant ``at``."""
    day = at.astimezone(tz).date()
    if interval == "week":
        day -= timedelta(days=day.weekday())
    elif interval == "month":
        day = day.replace(day=1)
    return _midnight(day, tz)


def next_bucket_start(start: datetime, interval: Interval, tz: ZoneInfo) -> datetime:
    day = start.astimezone(tz).date()
    if interval == "day":
        day += timedelta(days=1)
    elif interval == "week":
        day += timedelta(days=7)
    else:
        day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return _midnight(day, tz)


def bucket_starts(start: datetime, end: datetime, interval: Interval, tz: ZoneInfo) -> list[datetime]:
    """Every bucket that overlaps [start, end), in order; the first and last may stick out of it."""
    starts: list[datetime] = []
    current = bucket_start(start, interval, tz)
    while current < end:
        if len(starts) == MAX_BUCKETS:
            raise TooManyBuckets(f"more than {MAX_BUCKETS} {interval}s between from and to")
        starts.append(current)
        current = next_bucket_start(current, interval, tz)
    return starts


@dataclass(frozen=True)
class Buckets:
    """The buckets of one report, keyed by the local date each starts on."""

    interval: Interval
    tz: ZoneInfo
    starts: list[datetime]

    @classmethod
    def over(cls, start: datetime, end: datetime, interval: Interval, tz: ZoneInfo) -> Buckets:
        return cls(interval, tz, bucket_starts(start, end, interval, tz))

    def key(self, at: datetime) -> str:
        return bucket_start(at, self.interval, self.tz).date().isoformat()

    def frames(self) -> list[dict[str, Any]]:
        return [{"bucket": s.date().isoformat(), "start": s, "end": next_bucket_start(s, self.interval, self.tz)}
                for s in self.starts]


def _header(kind: str, description: str, start: datetime, end: datetime, buckets: Buckets) -> dict[str, Any]:
    return {
        "kind": kind, "description": description, "from": start.astimezone(buckets.tz),
        "to": end.astimezone(buckets.tz), "interval": buckets.interval,
        "tz": buckets.tz.key,
        "week_starts": "Monday 00:00 in tz (ISO 8601 weeks)" if buckets.interval == "week" else None,
    }


# --------------------------------------------------------------------------------------------
# In-period counts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeadMoments:
    """When a lead reached each stage (None: not yet), and its first touch, in IN_PERIOD_MEASURES order;
    and its speed to lead (from capture to that first touch)."""

    moments: tuple[datetime | None, ...]
    speed_to_lead_seconds: float | None = None


def in_period_report(
    leads: Iterable[LeadMoments], start: datetime, end: datetime, buckets: Buckets
) -> dict[str, Any]:
    """Per bucket, how many leads reached each stage in it (a moment outside [start, end) counts nowhere),
    and the median and 90th percentile speed to lead of the leads first touched in it."""
    counts = {frame["bucket"]: dict.fromkeys(IN_PERIOD_MEASURES, 0) for frame in buckets.frames()}
    speeds: dict[str, list[float]] = {key: [] for key in [*counts, "total"]}
    total = dict.fromkeys(IN_PERIOD_MEASURES, 0)
    for item in leads:
        for measure, at in zip(IN_PERIOD_MEASURES, item.moments, strict=True):
            if at is not None and start <= at < end:
                counts[buckets.key(at)][measure] += 1
                total[measure] += 1
                if measure == "first_touched" and item.speed_to_lead_seconds is not None:
                    speeds[buckets.key(at)].append(item.speed_to_lead_seconds)
                    speeds["total"].append(item.speed_to_lead_seconds)
    return {
        **_header("in_period", "events that happened in each bucket: leads captured, made MQL, accepted, "
                  "made SQL, given an opportunity, converted, and first touched in it; the speed to lead of "
                  "those first touched in it", start, end, buckets),
        "buckets": [{**frame, "counts": counts[frame["bucket"]],
                     "speed_to_lead_seconds": _speed(speeds[frame["bucket"]])} for frame in buckets.frames()],
        "total": {"counts": total, "speed_to_lead_seconds": _speed(speeds["total"])},
    }


def _speed(values: Sequence[float]) -> dict[str, float | None]:
    return {"median": domain.percentile(values, 0.5), "p90": domain.percentile(values, 0.9)}


IN_PERIOD_CSV_COLUMNS = ("bucket", "start", "end", *IN_PERIOD_MEASURES, "speed_to_lead_median_seconds",
                         "speed_to_lead_p90_seconds")


def in_period_csv(report: dict[str, Any]) -> str:
    total = {**report["total"], "bucket": "total", "start": report["from"], "end": report["to"]}
    rows: list[list[Cell]] = [
        [row["bucket"], row["start"].isoformat(), row["end"].isoformat(),
         *(row["counts"][m] for m in IN_PERIOD_MEASURES),
         _cell(row["speed_to_lead_seconds"]["median"]), _cell(row["speed_to_lead_seconds"]["p90"])]
        for row in [*report["buckets"], total]
    ]
    return csvexport.to_csv(IN_PERIOD_CSV_COLUMNS, rows)


# --------------------------------------------------------------------------------------------
# Cohorts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CohortLead:
    captured_at: datetime
    stage_rank: int
    speed_to_lead_seconds: float | None
    sla_outcome: str | None


def cohort_report(
    leads: Iterable[CohortLead], start: datetime, end: datetime, buckets: Buckets
) -> dict[str, Any]:
    """The funnel of the leads captured in each bucket (and in [start, end)), stages reached by now."""
    members = [
        domain.FunnelLead(buckets.key(item.captured_at), item.stage_rank, item.speed_to_lead_seconds,
                          item.sla_outcome)
        for item in leads if start <= item.captured_at < end
    ]
    groups, total = domain.funnel(members)
    by_key = {group.pop("group"): group for group in groups}
    rows = [{**frame, **by_key.get(frame["bucket"], _empty_funnel())} for frame in buckets.frames()]
    total.pop("group")
    return {
        **_header("cohort", "the leads captured in each bucket, each counted at every stage it has reached "
                  "since, whenever that was", start, end, buckets),
        "buckets": rows,
        "total": total,
    }


def _empty_funnel() -> dict[str, Any]:
    report = domain.FunnelGroup("").report()
    report.pop("group")
    return report


COHORT_CSV_COLUMNS = (
    "bucket", "start", "end", *domain.FUNNEL_STAGES, *RATE_COLUMNS,
    "touched", "speed_to_lead_median_seconds", "speed_to_lead_p90_seconds",
    "sla_met", "sla_breached", "sla_compliance_pct",
)


def cohort_csv(report: dict[str, Any]) -> str:
    total = {**report["total"], "bucket": "total", "start": report["from"], "end": report["to"]}
    rows: list[list[Cell]] = []
    for row in [*report["buckets"], total]:
        speed, sla = row["speed_to_lead_seconds"], row["sla"]
        rows.append(
            [row["bucket"], row["start"].isoformat(), row["end"].isoformat()]
            + [row["counts"][s] for s in domain.FUNNEL_STAGES]
            + [_cell(row["conversion_rates"][name]) for name in RATE_COLUMNS]
            + [speed["touched"], _cell(speed["median"]), _cell(speed["p90"]),
               sla["met"], sla["breached"], _cell(sla["compliance_pct"])]
        )
    return csvexport.to_csv(COHORT_CSV_COLUMNS, rows)


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


# --------------------------------------------------------------------------------------------
# Speed to lead and SLA compliance
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeedRow:
    """One group's figures as the database works them out (group None: the total over all groups)."""

    group: str | None
    leads: int
    touched: int
    median_seconds: float | None
    p90_seconds: float | None
    sla_met: int
    sla_breached: int
    breaches: int
    escalations: int


SPEED_FIGURES = ("leads", "touched", "first_touch_median_seconds", "first_touch_p90_seconds",
                 "sla_met", "sla_breached", "within_sla_pct", "breaches", "escalations")


def _speed_figures(row: SpeedRow) -> dict[str, Any]:
    decided = row.sla_met + row.sla_breached
    return {
        "leads": row.leads,
        "touched": row.touched,
        "first_touch_median_seconds": _seconds(row.median_seconds),
        "first_touch_p90_seconds": _seconds(row.p90_seconds),
        "sla_met": row.sla_met,
        "sla_breached": row.sla_breached,
        "within_sla_pct": None if decided == 0 else round(100.0 * row.sla_met / decided, 2),
        "breaches": row.breaches,
        "escalations": row.escalations,
    }


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def speed_report(
    rows: Sequence[SpeedRow], start: datetime, end: datetime, group_by: SpeedGroupBy
) -> dict[str, Any]:
    totals = [r for r in rows if r.group is None]
    total = totals[0] if totals else SpeedRow(None, 0, 0, None, None, 0, 0, 0, 0)
    groups = sorted((r for r in rows if r.group is not None), key=lambda r: r.group or "")
    return {
        "from": start, "to": end, "group_by": group_by, "percentile": PERCENTILE_DEFINITION,
        "groups": [{"group": r.group, **_speed_figures(r)} for r in groups],
        "total": {"group": "total", **_speed_figures(total)},
    }


def speed_csv(report: dict[str, Any]) -> str:
    rows: list[list[Cell]] = [
        [row["group"], *(row[f] if isinstance(row[f], int) else _cell(row[f]) for f in SPEED_FIGURES)]
        for row in [*report["groups"], report["total"]]
    ]
    return csvexport.to_csv(("group", *SPEED_FIGURES), rows)
