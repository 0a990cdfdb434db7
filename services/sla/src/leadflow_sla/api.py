from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from leadflow_kit.auth import require_scope
from leadflow_kit.uow import unit_of_work
from leadflow_sla import handlers, reports
from leadflow_sla.bootstrap import DepsDep

router = APIRouter(tags=["timeline"])


class TimelineStage(BaseModel):
    stage: str
    event_type: str
    event_id: str
    at: datetime
    source: str
    since_capture_ms: float | None
    since_previous_ms: float | None
    details: dict[str, Any]


class TimelinePublic(BaseModel):
    lead_id: str
    stages: list[TimelineStage]
    owner_changes: list[dict[str, Any]]
    webhooks: list[dict[str, Any]]
    sla: dict[str, Any]
    funnel: dict[str, Any]


@router.get(
    "/v1/leads/{lead_id}/timeline",
    response_model=TimelinePublic,
    dependencies=[Depends(require_scope("leads:read"))],
    summary="The lead's whole journey across services, in order, with its SLA clock state",
)
async def get_timeline(lead_id: str, deps: DepsDep) -> TimelinePublic:
    async with unit_of_work(deps.platform, deps) as uow:
        timeline = await handlers.lead_timeline(lead_id, uow)
    if timeline is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no events for lead '{lead_id}' yet")
    return TimelinePublic.model_validate(timeline, from_attributes=True)


reports_router = APIRouter(tags=["reports"])


@reports_router.get(
    "/v1/reports/funnel",
    dependencies=[Depends(require_scope("reports:read"))],
    summary="Funnel KPIs for leads captured in [from, to): stage counts, conversion rates, speed to lead, "
            "SLA compliance",
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
)
async def get_funnel(
    request: Request,
    deps: DepsDep,
    start: datetime | None = Query(default=None, alias="from", description="Inclusive; default 30 days ago"),
    end: datetime | None = Query(default=None, alias="to", description="Exclusive; default now"),
    group_by: reports.GroupBy | None = Query(default=None),
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
        leads = await deps.store.funnel_leads(session, start, end, group_by)
    report = reports.funnel_report(leads, start, end, group_by)
    wants_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
    if wants_csv:
        return Response(reports.to_csv(report), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="funnel.csv"'})
    return JSONResponse(jsonable_encoder(report))


def _utc(value: datetime) -> datetime:
    # A time without a zone is read as UTC, the zone every timestamp here is kept in.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
