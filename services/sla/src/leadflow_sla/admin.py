"""Admin API: SLA policies per tier (and optionally per team), and reps' own business hours."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from leadflow_contracts import sla_policy
from leadflow_kit.auth import require_scope
from leadflow_sla import policy_feed
from leadflow_sla.bootstrap import DepsDep
from leadflow_sla.store import StoredPolicy

router = APIRouter(prefix="/v1/admin", tags=["sla policies"])

READ = [Depends(require_scope("sla:read"))]
WRITE = [Depends(require_scope("sla:write"))]


class SlaPolicyBase(BaseModel):
    name: str | None = Field(default=None, max_length=255, examples=["Hot leads, EMEA"])
    target_seconds: int = Field(gt=0, le=90 * 24 * 3600, description="Time to first touch", examples=[300])
    warning_ratio: float = Field(default=sla_policy.DEFAULT_WARNING_RATIO, gt=0, lt=1,
                                 description="Warn when this share of the target has passed")
    breach_limit: int = Field(default=sla_policy.DEFAULT_BREACH_LIMIT, ge=0,
                              description="From this many breaches of one lead on, ask routing to escalate "
                                          "(0: never escalate)")
    business_hours: sla_policy.BusinessHours | None = Field(
        default=None, description="Count only working time; without it the clock runs around the clock")
    use_owner_hours: bool = Field(default=False,
                                  description="Prefer the owning rep's calendar (PUT /v1/admin/sla-calendars/{rep})")
    active: bool = True


class SlaPolicyCreate(SlaPolicyBase):
    tier: sla_policy.Tier
    team_id: str | None = Field(default=None, max_length=64, description="Omit for the tier's default policy")


class SlaPolicyUpdate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"target_seconds": 900, "warning_ratio": 0.5}]})

    name: str | None = Field(default=None, max_length=255)
    target_seconds: int | None = Field(default=None, gt=0, le=90 * 24 * 3600)
    warning_ratio: float | None = Field(default=None, gt=0, lt=1)
    breach_limit: int | None = Field(default=None, ge=0)
    business_hours: sla_policy.BusinessHours | None = None
    use_owner_hours: bool | None = None
    active: bool | None = None


class SlaPolicyPublic(SlaPolicyCreate):
    id: str
    name: str
    created_at: datetime
    updated_at: datetime


class RepCalendarPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "rep_id": "rep-ada", "updated_at": "2026-11-23T09:00:00Z",
        "business_hours": {"timezone": "Europe/Berlin", "days": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00",
                           "holiday_country": "DE", "holiday_subdivision": "BY", "extra_holidays": ["2026-12-24"]}}]})

    rep_id: str
    business_hours: sla_policy.BusinessHours
    updated_at: datetime


def _public(policy: StoredPolicy) -> SlaPolicyPublic:
    return SlaPolicyPublic.model_validate(policy, from_attributes=True)


def _no_policy(policy_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no SLA policy '{policy_id}'")


def _conflict(tier: str, team_id: str | None) -> HTTPException:
    scope = f"team '{team_id}'" if team_id else "the default"
    return HTTPException(status.HTTP_409_CONFLICT, detail={
        "detail": f"{scope} already has a {tier} policy; update it instead",
        "errors": [{"field": "tier", "code": "duplicate", "message": "one policy per tier and team"}],
    })


@router.get("/sla-policies", response_model=list[SlaPolicyPublic], dependencies=READ)
async def list_policies(deps: DepsDep) -> list[SlaPolicyPublic]:
    async with deps.platform.db.transaction() as session:
        policies = await deps.store.list_policies(session)
    return [_public(p) for p in policies]


@router.post("/sla-policies", response_model=SlaPolicyPublic, status_code=201, dependencies=WRITE)
async def create_policy(body: SlaPolicyCreate, deps: DepsDep) -> SlaPolicyPublic:
    values = body.model_dump(mode="json")
    values["name"] = body.name or f"{body.tier} {body.team_id or 'default'}"
    try:
        async with deps.platform.db.transaction() as session:
            policy = await deps.store.create_policy(session, str(uuid.uuid4()), values)
            await policy_feed.policy_saved(session, deps.platform.outbox, policy, deps.platform.clock.now())
    except IntegrityError:
        raise _conflict(body.tier, body.team_id) from None
    return _public(policy)


@router.get("/sla-policies/{policy_id}", response_model=SlaPolicyPublic, dependencies=READ)
async def get_policy(policy_id: str, deps: DepsDep) -> SlaPolicyPublic:
    async with deps.platform.db.transaction() as session:
        policy = await deps.store.get_policy(session, policy_id)
    if policy is None:
        raise _no_policy(policy_id)
    return _public(policy)


@router.patch("/sla-policies/{policy_id}", response_model=SlaPolicyPublic, dependencies=WRITE)
async def update_policy(policy_id: str, body: SlaPolicyUpdate, deps: DepsDep) -> SlaPolicyPublic:
    """Changes apply to clocks opened from now on; running clocks keep the deadline they started with."""
    changes = body.model_dump(mode="json", exclude_unset=True)
    now = deps.platform.clock.now()
    async with deps.platform.db.transaction() as session:
        policy = await deps.store.update_policy(session, policy_id, changes, now)
        if policy is not None:
            await policy_feed.policy_saved(session, deps.platform.outbox, policy, now)
    if policy is None:
        raise _no_policy(policy_id)
    return _public(policy)


@router.delete("/sla-policies/{policy_id}", status_code=204, dependencies=WRITE)
async def delete_policy(policy_id: str, deps: DepsDep) -> Response:
    """Without a policy for its tier, a lead gets the built-in default (hot 5 min, warm 1 h, cold 24 h)."""
    async with deps.platform.db.transaction() as session:
        deleted = await deps.store.delete_policy(session, policy_id)
        if deleted:
            await policy_feed.policy_deleted(session, deps.platform.outbox, policy_id, deps.platform.clock.now())
    if not deleted:
        raise _no_policy(policy_id)
    return Response(status_code=204)


@router.put("/sla-calendars/{rep_id}", response_model=RepCalendarPublic, dependencies=WRITE)
async def put_rep_calendar(rep_id: str, body: sla_policy.BusinessHours, deps: DepsDep) -> RepCalendarPublic:
    now = deps.platform.clock.now()
    async with deps.platform.db.transaction() as session:
        calendar = await deps.store.put_rep_calendar(session, rep_id, body, now)
        await policy_feed.calendar_saved(session, deps.platform.outbox, calendar, now)
    return RepCalendarPublic.model_validate(calendar, from_attributes=True)


@router.get("/sla-calendars/{rep_id}", response_model=RepCalendarPublic, dependencies=READ)
async def get_rep_calendar(rep_id: str, deps: DepsDep) -> RepCalendarPublic:
    async with deps.platform.db.transaction() as session:
        calendar = await deps.store.get_rep_calendar(session, rep_id)
    if calendar is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no calendar for rep '{rep_id}'")
    return RepCalendarPublic.model_validate(calendar, from_attributes=True)


@router.delete("/sla-calendars/{rep_id}", status_code=204, dependencies=WRITE)
async def delete_rep_calendar(rep_id: str, deps: DepsDep) -> Response:
    async with deps.platform.db.transaction() as session:
        if await deps.store.delete_rep_calendar(session, rep_id):
            await policy_feed.calendar_deleted(session, deps.platform.outbox, rep_id, deps.platform.clock.now())
    return Response(status_code=204)
