from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel

from leadflow_kit.auth import require_scope
from leadflow_sla import handlers

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
async def get_timeline(lead_id: str, request: Request) -> TimelinePublic:
    state = request.app.state
    async with state.db.transaction() as session:
        timeline = await handlers.load_timeline(session, lead_id, state.clock.now())
    if timeline is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no events for lead '{lead_id}' yet")
    return TimelinePublic.model_validate(timeline, from_attributes=True)
