from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict

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
from leadflow_kit.uow import unit_of_work
from leadflow_sla import domain, handlers, reports, revenue
from leadflow_sla.bootstrap import DepsDep

router = APIRouter(tags=["timeline"])


class TimelineStage(BaseModel):
    stage: str
    event_type: str
    event_id: str
    at: datetime
    source: str
    since_capture_ms: float | None = None
    since_previous_ms: float | None = None
    details: dict[str, Any]


_LEAD = "0d9c3c0e-8a53-4f1e-9a57-3f1f3c2b7a10"


class TimelinePublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "lead_id": _LEAD,
        "stages": [
            {"stage": "captured", "event_type": "lead.captured.v1", "event_id": "5b0e-c1", "source": "capture",
             "at": "2026-11-23T09:00:00Z", "since_capture_ms": 0.0, "since_previous_ms": None,
             "details": {"form_key": "demo-request", "utm_source": "google"}},
            {"stage": "routed", "event_type": "lead.routed.v1", "event_id": "5b0e-r1", "source": "routing",
             "at": "2026-11-23T09:00:00.041Z", "since_capture_ms": 41.0, "since_previous_ms": 12.0,
             "details": {"owner_rep_id": "rep-ada", "owner_name": "Ada Park", "team_id": "emea",
                         "reason": "round robin in team emea", "strategy": "round_robin", "tier": "hot"}},
            {"stage": "webhook_delivered", "event_type": "lead.delivered.v1", "event_id": "5b0e-d1",
             "source": "routing", "at": "2026-11-23T09:00:00.090Z", "since_capture_ms": 90.0,
             "since_previous_ms": 49.0, "details": {"webhook_id": "msg_5b0e", "subscription_id": "crm",
                                                    "event_type": "lead.routed", "status": "delivered",
                                                    "attempt": 1, "status_code": 200}},
        ],
        "owner_changes": [{"at": "2026-11-23T09:00:00.041Z", "from_rep_id": None, "to_rep_id": "rep-ada",
                           "team_id": "emea", "queue": None, "reason": "round robin in team emea",
                           "escalated": False}],
        "webhooks": [{"at": "2026-11-23T09:00:00.090Z", "webhook_id": "msg_5b0e", "subscription_id": "crm",
                      "event_type": "lead.routed", "status": "delivered", "attempt": 1, "status_code": 200}],
        "sla": {"state": "stopped", "outcome": "met", "breach_count": 0, "current": None, "clocks": [{
            "clock_id": "c-5b0e", "status": "stopped", "tier": "hot", "team_id": "emea", "owner_rep_id": "rep-ada",
            "policy_id": "default-hot", "target_seconds": 300, "business_hours": False,
            "started_at": "2026-11-23T09:00:00.041Z", "warning_at": "2026-11-23T09:03:45.041Z",
            "due_at": "2026-11-23T09:05:00.041Z", "warned_at": None, "breached_at": None, "breach_number": 0,
            "stopped_at": "2026-11-23T09:02:10Z", "stop_reason": "call", "elapsed_seconds": 129.959,
            "remaining_seconds": None, "met": True}]},
        "funnel": {"captured_at": "2026-11-23T09:00:00Z", "stage": "mql", "mql_at": "2026-11-23T09:00:00.030Z",
                   "accepted_at": None, "sql_at": None, "opportunity_at": None, "converted_at": None,
                   "first_touch_at": "2026-11-23T09:02:10Z", "speed_to_lead_seconds": 130.0, "tier": "hot",
                   "team_id": "emea", "rep_id": "rep-ada"},
    }]})

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

# Worked out by the report itself from a small cohort, so the example is what the route answers.
FUNNEL_EXAMPLE = reports.funnel_report(
    [domain.FunnelLead("google", domain.FUNNEL_RANK[stage], speed, outcome, amount, currency, lost)
     for stage, speed, outcome, amount, currency, lost in (
        ("captured", None, None, None, None, False), ("mql", 240.0, "met", None, None, False),
        ("opportunity", 1800.0, "breached", Decimal("8000"), "EUR", True),
        ("opportunity", 600.0, "met", Decimal("5000"), "USD", False),
        ("converted", 90.0, "met", Decimal("12500"), "EUR", False))],
    datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC), None,
    revenue.Rates.constant("USD", {"EUR": Decimal("1.08")}),
    [revenue.Spend("q4-webinar", "google", date(2026, 11, 1), date(2026, 11, 30), Decimal("3000"), "USD")])


@reports_router.get(
    "/v1/reports/funnel",
    dependencies=[Depends(require_scope("reports:read"))],
    summary="Funnel KPIs for leads captured in [from, to): stage counts, conversion rates, speed to lead, "
            "SLA compliance, pipeline, revenue and cost per lead",
    responses=report_examples(FUNNEL_EXAMPLE, reports.to_csv),
)
async def get_funnel(
    request: Request,
    deps: DepsDep,
    start: datetime | None = FROM_QUERY,
    end: datetime | None = TO_QUERY,
    group_by: reports.GroupBy | None = Query(default=None),
    format: ReportFormat | None = FORMAT_QUERY,
) -> Response:
    start, end = report_window(start, end, deps.platform.clock.now())
    async with deps.platform.db.transaction() as session:
        leads = await deps.store.funnel_leads(session, start, end, group_by)
        rates = revenue.Rates(deps.settings.reporting_currency, await deps.store.currency_rate_tables(session),
                              deps.platform.clock.now().astimezone(UTC).date())
        spends = await deps.store.spend_between(session, start.astimezone(UTC).date(), end.astimezone(UTC).date())
    report = reports.funnel_report(leads, start, end, group_by, rates, spends)
    return report_answer(request, format, report, reports.to_csv, "funnel.csv")
