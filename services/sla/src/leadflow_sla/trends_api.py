"""Routes of the reports over time (trend, cohorts) and of speed to lead; JSON, or CSV on request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_kit.auth import require_scope
from leadflow_kit.errors import invalid_field
from leadflow_kit.reports import (
    FORMAT_QUERY,
    FROM_QUERY,
    TO_QUERY,
    ReportFormat,
    report_answer,
    report_examples,
    report_window,
)
from leadflow_sla import trends, trends_store
from leadflow_sla.bootstrap import Deps, DepsDep
from leadflow_sla.trends import Buckets, CohortLead, LeadMoments, SpeedRow

router = APIRouter(tags=["reports"])

_INTERVAL = Query(default="week", description="Calendar day, ISO week (from Monday 00:00 in tz) or calendar month")
_TZ = Query(default="UTC", max_length=64, description="IANA time zone the buckets are days, weeks or months of, "
                                                      "e.g. Europe/Paris")

# Worked out by the reports themselves, so each example is what its route answers.
_PARIS = ZoneInfo("Europe/Paris")
_EXAMPLE_FROM, _EXAMPLE_TO = datetime(2026, 11, 1, 23, tzinfo=UTC), datetime(2026, 11, 15, 23, tzinfo=UTC)
_EXAMPLE_BUCKETS = Buckets.over(_EXAMPLE_FROM, _EXAMPLE_TO, "week", _PARIS)
_SUNDAY_NIGHT = datetime(2026, 11, 8, 22, 30, tzinfo=UTC)  # Sunday 23:30 in Paris: the first week
_MONDAY = datetime(2026, 11, 9, 8, tzinfo=UTC)
IN_PERIOD_EXAMPLE = trends.in_period_report(
    [LeadMoments((_SUNDAY_NIGHT, _SUNDAY_NIGHT, _MONDAY, None, None, None, _MONDAY), 34200.0),
     LeadMoments((_MONDAY, _MONDAY, None, None, None, None, None))],
    _EXAMPLE_FROM, _EXAMPLE_TO, _EXAMPLE_BUCKETS)
COHORT_EXAMPLE = trends.cohort_report(
    [CohortLead(_SUNDAY_NIGHT, 2, 34200.0, "breached"), CohortLead(_MONDAY, 1, None, None),
     CohortLead(_MONDAY, 5, 240.0, "met")],
    _EXAMPLE_FROM, _EXAMPLE_TO, _EXAMPLE_BUCKETS)
SPEED_EXAMPLE = trends.speed_report(
    [SpeedRow("amer", 2, 1, 1800.0, 1800.0, 1, 0, 0, 0), SpeedRow("emea", 3, 3, 120.0, 504.0, 2, 1, 2, 1),
     SpeedRow(None, 5, 4, 360.0, 1440.0, 3, 1, 2, 1)],
    datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC), "team")


def _buckets(start: datetime, end: datetime, interval: trends.Interval, tz_name: str) -> Buckets:
    tz = trends.time_zone(tz_name)
    if tz is None:
        raise invalid_field("tz", "unknown_time_zone", f"'{tz_name}' is no IANA time zone (e.g. Europe/Paris)")
    try:
        return Buckets.over(start, end, interval, tz)
    except trends.TooManyBuckets as error:
        raise invalid_field("interval", "too_many_buckets", f"{error}: ask for a longer interval") from None
    except OverflowError:
        raise invalid_field("from", "range", "from and to must lie within years 1 to 9999 in tz") from None


@dataclass(frozen=True)
class OverTimeQuery:
    start: datetime | None
    end: datetime | None
    interval: trends.Interval
    tz: str
    format: ReportFormat | None


async def _over_time_query(start: datetime | None = FROM_QUERY, end: datetime | None = TO_QUERY,
                     interval: trends.Interval = _INTERVAL, tz: str = _TZ,
                     format: ReportFormat | None = FORMAT_QUERY) -> OverTimeQuery:
    return OverTimeQuery(start, end, interval, tz, format)


OverTimeDep = Annotated[OverTimeQuery, Depends(_over_time_query)]


@dataclass(frozen=True)
class _View:
    """One view over time: the leads it reads, the report it makes of them, its CSV."""

    leads: Callable[[AsyncSession, datetime, datetime], Awaitable[Sequence[Any]]]
    report: Callable[[Any, datetime, datetime, Buckets], dict[str, Any]]
    to_csv: Callable[[dict[str, Any]], str]
    filename: str


_IN_PERIOD = _View(trends_store.in_period_moments, trends.in_period_report, trends.in_period_csv,
                   "funnel-trend.csv")
_COHORTS = _View(trends_store.cohort_leads, trends.cohort_report, trends.cohort_csv, "cohorts.csv")


async def _over_time(request: Request, deps: Deps, query: OverTimeQuery, view: _View) -> Response:
    start, end = report_window(query.start, query.end, deps.platform.clock.now())
    buckets = _buckets(start, end, query.interval, query.tz)
    async with deps.platform.db.transaction() as session:
        leads = await view.leads(session, start, end)
    return report_answer(request, query.format, view.report(leads, start, end, buckets), view.to_csv, view.filename)


@router.get(
    "/v1/reports/funnel/trend",
    dependencies=[Depends(require_scope("reports:read"))],
    summary="In-period funnel counts by day, week or month: leads captured, made MQL, ..., converted and "
            "first touched in each bucket, with the speed to lead of those first touched",
    responses=report_examples(IN_PERIOD_EXAMPLE, trends.in_period_csv),
)
async def get_funnel_trend(request: Request, deps: DepsDep, query: OverTimeDep) -> Response:
    return await _over_time(request, deps, query, _IN_PERIOD)


@router.get(
    "/v1/reports/cohorts",
    dependencies=[Depends(require_scope("reports:read"))],
    summary="Funnel cohorts by day, week or month: of the leads captured in each bucket, how many reached "
            "each stage since, conversion rates, speed to lead and SLA compliance",
    responses=report_examples(COHORT_EXAMPLE, trends.cohort_csv),
)
async def get_cohorts(request: Request, deps: DepsDep, query: OverTimeDep) -> Response:
    return await _over_time(request, deps, query, _COHORTS)


@router.get(
    "/v1/reports/speed-to-lead",
    dependencies=[Depends(require_scope("reports:read"))],
    summary="Speed to lead and SLA compliance by team or rep for leads captured in [from, to): median and "
            "90th percentile first-touch time, share touched within SLA, breaches, escalations",
    responses=report_examples(SPEED_EXAMPLE, trends.speed_csv),
)
async def get_speed_to_lead(
    request: Request,
    deps: DepsDep,
    start: datetime | None = FROM_QUERY,
    end: datetime | None = TO_QUERY,
    group_by: trends.SpeedGroupBy = Query(default="team", description="The lead's owner's team, or the rep"),
    format: ReportFormat | None = FORMAT_QUERY,
) -> Response:
    start, end = report_window(start, end, deps.platform.clock.now())
    async with deps.platform.db.transaction() as session:
        rows = await trends_store.speed_to_lead(session, start, end, group_by)
    report = trends.speed_report(rows, start, end, group_by)
    return report_answer(request, format, report, trends.speed_csv, "speed-to-lead.csv")
