"""The data-quality report route (reports:read): JSON, or the same rows as CSV."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from leadflow_enrichment import quality
from leadflow_enrichment.bootstrap import DepsDep
from leadflow_kit.auth import require_scope

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
    responses={200: {"content": {"application/json": {"example": jsonable_encoder(QUALITY_EXAMPLE)},
                                 "text/csv": {"example": quality.to_csv(QUALITY_EXAMPLE)}}}},
)
async def get_data_quality(
    request: Request,
    deps: DepsDep,
    start: datetime | None = Query(default=None, alias="from", description="Inclusive; default 30 days ago"),
    end: datetime | None = Query(default=None, alias="to", description="Exclusive; default now"),
    group_by: quality.GroupBy | None = Query(default=None, description="Default: one group, (all)"),
    interval: quality.Interval | None = Query(default=None, description="UTC buckets (weeks start on Monday); "
                                                                         "default: the whole window"),
    format: Literal["json", "csv"] | None = Query(default=None, description="Or send Accept: text/csv"),
) -> Response:
    end = _utc(end) if end else deps.platform.clock.now()
    start = _utc(start) if start else end - timedelta(days=30)
    if start >= end:
        raise HTTPException(422, detail={
            "detail": "The request is invalid; see errors.",
            "errors": [{"field": "from", "code": "range", "message": "from must be before to"}],
        })
    async with deps.platform.db.transaction() as session:
        counts = await deps.store.fill_counts(session, start, end, interval)
    report = quality.quality_report(counts, start, end, group_by, interval)
    if format == "csv" or (format is None and "text/csv" in request.headers.get("accept", "")):
        return Response(quality.to_csv(report), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="data-quality.csv"'})
    return JSONResponse(jsonable_encoder(report))


def _utc(value: datetime) -> datetime:
    # A time without a zone is read as UTC, the zone every timestamp here is kept in.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
