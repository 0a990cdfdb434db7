"""The data-quality report route (reports:read): JSON, or the same rows as CSV."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, Query, Request, Response

from leadflow_enrichment import quality
from leadflow_enrichment.bootstrap import DepsDep
from leadflow_kit.auth import require_scope
from leadflow_kit.reports import (
    FORMAT_QUERY,
    FROM_QUERY,
    TO_QUERY,
    ReportFormat,
    report_answer,
    report_examples,
    report_window,
)

reports_router = APIRouter(tags=["reports"])

_EXAMPLE_WEEK = datetime(2026, 11, 23, tzinfo=UTC)
# Worked out by the report itself from two forms' fills, so the example is what the route answers.
QUALITY_EXAMPLE = quality.quality_report(
    [quality.FillCounts("demo", "google", _EXAMPLE_WEEK, fills=4, duplicates=1, invalid_phone=1, free_email=1,
                        account_matched=3, provider_lookups=2, provider_successes=2,
                        filled={"email": 4, "first_name": 4, "phone": 3, "company": 4, "country": 2}),
     quality.FillCounts("webinar", "linkedin", _EXAMPLE_WEEK, fills=2, invalid_email=2, account_matched=0,
                        filled={"email": 2, "first_name": 1})],
    _EXAMPLE_WEEK, _EXAMPLE_WEEK + timedelta(days=7), "form", "week")


@reports_router.get(
    "/v1/reports/data-quality",
    dependencies=[Depends(require_scope("reports:read"))],
    summary="Data quality of the fills submitted in [from, to) by form or source, per day, week or month (UTC): "
            "field completeness, invalid, free, disposable and role addresses, duplicates, account matches, "
            "provider successes",
    responses=report_examples(QUALITY_EXAMPLE, quality.to_csv),
)
async def get_data_quality(
    request: Request,
    deps: DepsDep,
    start: datetime | None = FROM_QUERY,
    end: datetime | None = TO_QUERY,
    group_by: quality.GroupBy | None = Query(default=None, description="Default: one group, (all)"),
    interval: quality.Interval | None = Query(default=None, description="UTC buckets (weeks start on Monday); "
                                                                         "default: the whole window"),
    format: ReportFormat | None = FORMAT_QUERY,
) -> Response:
    start, end = report_window(start, end, deps.platform.clock.now())
    async with deps.platform.db.transaction() as session:
        counts = await deps.store.fill_counts(session, start, end, interval)
    report = quality.quality_report(counts, start, end, group_by, interval)
    return report_answer(request, format, report, quality.to_csv, "data-quality.csv")
