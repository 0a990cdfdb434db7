"""Routing's HTTP surface: the lead's assignment, the CRM callback, and the admin API for reps,
teams, queues and versioned routing rules (with a dry run)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts.events import TouchType
from leadflow_kit.auth import Principal, require_scope
from leadflow_kit.db import INT_MAX, driver_connection
from leadflow_kit.errors import FieldError
from leadflow_routing import domain, handlers
from leadflow_routing.tables import lead as lead_table
from leadflow_routing.tables import queue as queue_table
from leadflow_routing.tables import rep as rep_table
from leadflow_routing.tables import routing_ruleset as ruleset_table
from leadflow_routing.tables import team as team_table

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"


def invalid(errors: list[FieldError], detail: str = "The request is invalid; see errors.") -> HTTPException:
    return HTTPException(422,
                         detail={"detail": detail, "errors": [e.model_dump() for e in errors]})


def not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=what)


def in_use(why: str) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, detail=why)


# Held by every change of the rule sets and by the deletions they could name, so a rule set never
# names a team that a concurrent deletion removes.
RULES_LOCK = 0x5EB0


async def _lock_rules(session: AsyncSession) -> None:
    await session.execute(select(func.pg_advisory_xact_lock(RULES_LOCK)))


async def _active_rules(session: AsyncSession) -> Any:
    return (await session.execute(select(ruleset_table).where(ruleset_table.c.active.is_(True)))).first()


# -- leads ----------------------------------------------------------------------------------

leads_router = APIRouter(tags=["leads"])


class CrmEvent(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"type": "meeting_booked", "rep_id": "rep-ada", "occurred_at": "2026-11-23T10:15:00Z",
         "external_id": "hs-evt-99812"},
        {"type": "disqualified", "rep_id": "rep-ada", "reason": "Student project, no budget"},
    ]})

    type: TouchType
    rep_id: str | None = Field(default=None, description="The rep who acted, as the CRM knows them")
    reason: str | None = Field(default=None, max_length=2000, description="Required for disqualified")
    occurred_at: datetime | None = None
    external_id: str | None = Field(default=None, max_length=255,
                                    description="The CRM's id for this event; a repeat is acknowledged, not re-sent")

    @model_validator(mode="after")
    def _reason_for_disqualified(self) -> CrmEvent:
        if self.type == "disqualified" and not (self.reason and self.reason.strip()):
            raise ValueError("a disqualified event needs a reason")
        return self


class CrmEventAccepted(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "touch_id": "tch_b7e2c1d04f3a4e9b8c7d6a5b4c3d2e1f", "lead_id": "5b0f7c1e-8d7a-4c43-9a55-0f7de3a1c2b4",
        "type": "meeting_booked", "owner_rep_id": "rep-ada", "owner_mismatch": False, "duplicate": False}]})

    touch_id: str
    lead_id: str
    type: str
    owner_rep_id: str | None
    owner_mismatch: bool
    duplicate: bool


@leads_router.get("/v1/leads/{lead_id}/assignment", summary="Who owns the lead, and every routing decision")
async def get_assignment(
    lead_id: str, request: Request, _: Principal = Depends(require_scope("routing:read", "crm:events"))
) -> dict[str, Any]:
    async with request.app.state.db.transaction() as session:
        view = await handlers.assignment_view(session, lead_id)
    if view is None:
        raise not_found(f"lead '{lead_id}' has not been routed")
    return view


@leads_router.post("/v1/leads/{lead_id}/events", status_code=status.HTTP_202_ACCEPTED,
                   response_model=CrmEventAccepted,
                   summary="CRM callback: accepted, contacted, meeting_booked, opportunity_created, disqualified, "
                           "converted")
async def post_crm_event(
    lead_id: str, body: CrmEvent, request: Request,
    principal: Principal = Depends(require_scope("crm:events")),
) -> CrmEventAccepted:
    state = request.app.state
    try:
        async with state.db.transaction() as session:
            recorded = await handlers.record_touch(
                session, state.outbox, lead_id, touch_type=body.type, now=state.clock.now(), rep_id=body.rep_id,
                reason=body.reason, occurred_at=body.occurred_at, integration=principal.name,
                external_id=body.external_id,
            )
    except handlers.UnknownLead:
        raise not_found(f"no lead '{lead_id}'") from None
    return CrmEventAccepted(touch_id=recorded.touch_id, lead_id=lead_id, type=recorded.touch_type,
                            owner_rep_id=recorded.owner_rep_id, owner_mismatch=recorded.owner_mismatch,
                            duplicate=recorded.duplicate)


# -- admin: reps, teams, queues -------------------------------------------------------------

admin_router = APIRouter(prefix="/v1/admin", tags=["routing admin"])
readable = [Depends(require_scope("routing:read", "routing:write"))]
writable = [Depends(require_scope("routing:write"))]


class OutOfOfficeRange(BaseModel):
    start: datetime
    end: datetime
    reason: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> OutOfOfficeRange:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a UTC offset")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


def _check_timezone(value: str | None) -> str | None:
    if value is not None and not domain.valid_timezone(value):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)")
    return value


def _check_hours(value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
    domain.parse_working_hours(value)
    return None if value is None else {k[:3].lower(): v for k, v in value.items()}


class RepFields(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    email: str | None = Field(default=None, max_length=320)
    team_id: str | None = None
    territories: list[str] | None = Field(default=None, examples=[["US-CA", "EMEA"]])
    weight: int | None = Field(default=None, ge=0, le=1000)
    daily_capacity: int | None = Field(default=None, ge=0, le=INT_MAX)
    max_open_leads: int | None = Field(default=None, ge=0, le=INT_MAX)
    timezone: str | None = Field(default=None, examples=["America/New_York"])
    working_hours: dict[str, list[str]] | None = Field(
        default=None, examples=[{"mon": ["09:00-17:00"], "tue": ["09:00-12:00", "13:00-17:00"]}],
        description="Local times per weekday; a day not listed is a day off; null means always working",
    )
    out_of_office: list[OutOfOfficeRange] | None = None
    active: bool | None = None

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _check_timezone(v)))
    _hours = field_validator("working_hours")(classmethod(lambda cls, v: _check_hours(v)))


class RepCreate(RepFields):
    id: str | None = Field(default=None, pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=255)


class RepUpdate(RepFields):
    pass


class RepPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "rep-ada", "name": "Ada Lovelace", "email": "ada@example.com", "team_id": "emea-sales",
        "territories": ["GB", "EMEA"], "weight": 2, "daily_capacity": 25, "max_open_leads": 40,
        "timezone": "Europe/London", "working_hours": {"mon": ["09:00-17:00"], "tue": ["09:00-17:00"]},
        "out_of_office": [], "active": True, "open_leads": 12, "assigned_today": 3,
        "last_assigned_at": "2026-11-23T09:12:00Z", "unavailable_now": "outside_working_hours",
        "created_at": "2026-11-01T09:00:00Z", "updated_at": "2026-11-20T16:30:00Z"}]})

    id: str
    name: str
    email: str | None
    team_id: str | None
    territories: list[str]
    weight: int
    daily_capacity: int | None
    max_open_leads: int | None
    timezone: str
    working_hours: dict[str, list[str]] | None
    out_of_office: list[dict[str, Any]]
    active: bool
    open_leads: int
    assigned_today: int
    last_assigned_at: datetime | None
    unavailable_now: str | None = Field(description="Why the rep would be skipped for a hot lead now, if so")
    created_at: datetime
    updated_at: datetime


class TeamFields(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    strategy: domain.Strategy | None = None
    manager_rep_id: str | None = None
    escalate_after_breaches: int | None = Field(default=None, ge=1, le=INT_MAX)
    fallback_queue: str | None = None


class TeamCreate(TeamFields):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "emea-sales", "name": "EMEA sales", "strategy": "round_robin", "manager_rep_id": "rep-grace",
        "escalate_after_breaches": 2, "fallback_queue": "unassigned"}]})

    id: str | None = Field(default=None, pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=255)
    strategy: domain.Strategy = "round_robin"


class TeamUpdate(TeamFields):
    model_config = ConfigDict(json_schema_extra={"examples": [{"strategy": "load_balanced",
                                                                "escalate_after_breaches": 3}]})


class TeamPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "emea-sales", "name": "EMEA sales", "strategy": "round_robin", "manager_rep_id": "rep-grace",
        "escalate_after_breaches": 2, "fallback_queue": "unassigned", "rr_last_rep_id": "rep-ada",
        "assignments": 148, "rep_ids": ["rep-ada", "rep-grace"], "created_at": "2026-11-01T09:00:00Z",
        "updated_at": "2026-11-20T16:30:00Z"}]})

    id: str
    name: str
    strategy: str
    manager_rep_id: str | None
    escalate_after_breaches: int | None
    fallback_queue: str | None
    rr_last_rep_id: str | None
    assignments: int
    rep_ids: list[str]
    created_at: datetime
    updated_at: datetime


class QueueCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "unassigned", "name": "Unassigned leads", "description": "Leads no rule or rep could take"}]})

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=255)
    description: str | None = None


class QueueUpdate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"description": "Worked by the SDR on duty"}]})

    name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = None


class QueuePublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "unassigned", "name": "Unassigned leads", "description": "Leads no rule or rep could take",
        "waiting": 3, "created_at": "2026-11-01T09:00:00Z"}]})

    id: str
    name: str
    description: str | None
    waiting: int
    created_at: datetime


def _rep_public(row: Any, now: datetime) -> RepPublic:
    rep = handlers.rep_from_row(row._mapping)
    return RepPublic(
        id=row.id, name=row.name, email=row.email, team_id=row.team_id, territories=list(row.territories),
        weight=row.weight, daily_capacity=row.daily_capacity, max_open_leads=row.max_open_leads,
        timezone=row.timezone, working_hours=row.working_hours, out_of_office=list(row.out_of_office),
        active=row.active, open_leads=row.open_leads, assigned_today=rep.assigned_on(rep.local_day(now)),
        last_assigned_at=row.last_assigned_at, unavailable_now=domain.unavailability(rep, now, tier="hot"),
        created_at=row.created_at, updated_at=row.updated_at,
    )


def _without_nulls(values: dict[str, Any], required: tuple[str, ...]) -> dict[str, Any]:
    """``values`` unless one of the ``required`` columns is set to null: 422 naming each."""
    nulls = [name for name in required if name in values and values[name] is None]
    if nulls:
        raise invalid([FieldError(field=name, code="null_not_allowed", message=f"{name} cannot be null")
                       for name in nulls])
    return values


def _rep_values(body: RepFields) -> dict[str, Any]:
    values = _without_nulls(body.model_dump(exclude_unset=True, exclude={"id"}),
                            ("name", "weight", "timezone", "active"))
    if "out_of_office" in values:
        values["out_of_office"] = [o.model_dump(mode="json") for o in body.out_of_office or []]
    if "territories" in values and values["territories"] is None:
        values["territories"] = []
    return values


async def _team_exists(session: AsyncSession, team_id: str) -> bool:
    # KEY SHARE: a deletion of the team waits for this transaction, and sees the rep or rule it adds.
    return (await session.execute(select(team_table.c.id).where(team_table.c.id == team_id)
                                  .with_for_update(key_share=True))).first() is not None


async def _rep_exists(session: AsyncSession, rep_id: str) -> bool:
    return (await session.execute(select(rep_table.c.id).where(rep_table.c.id == rep_id))).first() is not None


@admin_router.post("/reps", status_code=201, response_model=RepPublic, dependencies=writable)
async def create_rep(body: RepCreate, request: Request) -> RepPublic:
    state = request.app.state
    now = state.clock.now()
    async with state.db.transaction() as session:
        if body.team_id is not None and not await _team_exists(session, body.team_id):
            raise invalid([FieldError(field="team_id", code="unknown", message=f"no team '{body.team_id}'")])
        rep_id = body.id or f"rep-{uuid.uuid4().hex[:12]}"
        if await _rep_exists(session, rep_id):
            raise HTTPException(status.HTTP_409_CONFLICT, detail=f"rep '{rep_id}' exists")
        row = (
            await session.execute(
                insert(rep_table).values(id=rep_id, created_at=now, updated_at=now, **_rep_values(body))
                .returning(*rep_table.c)
            )
        ).one()
    return _rep_public(row, now)


@admin_router.get("/reps", response_model=list[RepPublic], dependencies=readable)
async def list_reps(request: Request, team_id: str | None = None) -> list[RepPublic]:
    state = request.app.state
    query = select(rep_table).order_by(rep_table.c.id)
    if team_id:
        query = query.where(rep_table.c.team_id == team_id)
    async with state.db.transaction() as session:
        rows = (await session.execute(query)).all()
    now = state.clock.now()
    return [_rep_public(r, now) for r in rows]


@admin_router.get("/reps/{rep_id}", response_model=RepPublic, dependencies=readable)
async def get_rep(rep_id: str, request: Request) -> RepPublic:
    state = request.app.state
    async with state.db.transaction() as session:
        row = (await session.execute(select(rep_table).where(rep_table.c.id == rep_id))).first()
    if row is None:
        raise not_found(f"no rep '{rep_id}'")
    return _rep_public(row, state.clock.now())


@admin_router.patch("/reps/{rep_id}", response_model=RepPublic, dependencies=writable)
async def update_rep(rep_id: str, body: RepUpdate, request: Request) -> RepPublic:
    state = request.app.state
    now = state.clock.now()
    async with state.db.transaction() as session:
        if body.team_id is not None and not await _team_exists(session, body.team_id):
            raise invalid([FieldError(field="team_id", code="unknown", message=f"no team '{body.team_id}'")])
        row = (
            await session.execute(
                update(rep_table).where(rep_table.c.id == rep_id).values(updated_at=now, **_rep_values(body))
                .returning(*rep_table.c)
            )
        ).first()
    if row is None:
        raise not_found(f"no rep '{rep_id}'")
    return _rep_public(row, now)


@admin_router.delete("/reps/{rep_id}", status_code=204, dependencies=writable,
                     summary="Deactivate a rep (kept for the audit trail)")
async def deactivate_rep(rep_id: str, request: Request) -> None:
    state = request.app.state
    async with state.db.transaction() as session:
        row = (
            await session.execute(
                update(rep_table).where(rep_table.c.id == rep_id)
                .values(active=False, updated_at=state.clock.now()).returning(rep_table.c.id)
            )
        ).first()
    if row is None:
        raise not_found(f"no rep '{rep_id}'")


async def _team_public(session: AsyncSession, row: Any) -> TeamPublic:
    members = (
        await session.execute(select(rep_table.c.id).where(rep_table.c.team_id == row.id).order_by(rep_table.c.id))
    ).scalars().all()
    return TeamPublic(
        id=row.id, name=row.name, strategy=row.strategy, manager_rep_id=row.manager_rep_id,
        escalate_after_breaches=row.escalate_after_breaches, fallback_queue=row.fallback_queue,
        rr_last_rep_id=row.rr_last_rep_id, assignments=row.assignments, rep_ids=list(members),
        created_at=row.created_at, updated_at=row.updated_at,
    )


async def _check_team_refs(session: AsyncSession, body: TeamFields) -> None:
    if body.manager_rep_id and not await _rep_exists(session, body.manager_rep_id):
        raise invalid([FieldError(field="manager_rep_id", code="unknown", message=f"no rep '{body.manager_rep_id}'")])


@admin_router.post("/teams", status_code=201, response_model=TeamPublic, dependencies=writable)
async def create_team(body: TeamCreate, request: Request) -> TeamPublic:
    state = request.app.state
    now = state.clock.now()
    async with state.db.transaction() as session:
        await _check_team_refs(session, body)
        team_id = body.id or f"team-{uuid.uuid4().hex[:12]}"
        if await _team_exists(session, team_id):
            raise HTTPException(status.HTTP_409_CONFLICT, detail=f"team '{team_id}' exists")
        row = (
            await session.execute(
                insert(team_table).values(id=team_id, created_at=now, updated_at=now,
                                          **{**body.model_dump(exclude_unset=True, exclude={"id"}),
                                             "strategy": body.strategy})
                .returning(*team_table.c)
            )
        ).one()
        return await _team_public(session, row)


@admin_router.get("/teams", response_model=list[TeamPublic], dependencies=readable)
async def list_teams(request: Request) -> list[TeamPublic]:
    async with request.app.state.db.transaction() as session:
        rows = (await session.execute(select(team_table).order_by(team_table.c.id))).all()
        return [await _team_public(session, r) for r in rows]


@admin_router.get("/teams/{team_id}", response_model=TeamPublic, dependencies=readable)
async def get_team(team_id: str, request: Request) -> TeamPublic:
    async with request.app.state.db.transaction() as session:
        row = (await session.execute(select(team_table).where(team_table.c.id == team_id))).first()
        if row is None:
            raise not_found(f"no team '{team_id}'")
        return await _team_public(session, row)


@admin_router.patch("/teams/{team_id}", response_model=TeamPublic, dependencies=writable)
async def update_team(team_id: str, body: TeamUpdate, request: Request) -> TeamPublic:
    state = request.app.state
    async with state.db.transaction() as session:
        await _check_team_refs(session, body)
        row = (
            await session.execute(
                update(team_table).where(team_table.c.id == team_id)
                .values(updated_at=state.clock.now(),
                        **_without_nulls(body.model_dump(exclude_unset=True), ("name", "strategy")))
                .returning(*team_table.c)
            )
        ).first()
        if row is None:
            raise not_found(f"no team '{team_id}'")
        return await _team_public(session, row)


@admin_router.delete("/teams/{team_id}", status_code=204, dependencies=writable,
                     summary="Remove a team that has no reps and that the active rules do not name")
async def delete_team(team_id: str, request: Request) -> None:
    async with request.app.state.db.transaction() as session:
        await _lock_rules(session)
        # The row lock waits for a rep being added to the team, so its members below are complete.
        found = (await session.execute(select(team_table.c.id).where(team_table.c.id == team_id).with_for_update())
                 ).first()
        if found is None:
            raise not_found(f"no team '{team_id}'")
        members = (await session.execute(select(rep_table.c.id).where(rep_table.c.team_id == team_id)
                                          .order_by(rep_table.c.id))).scalars().all()
        if members:
            raise in_use(f"team '{team_id}' still has reps ({', '.join(members)}); move them to another team "
                         "(or none) first: PATCH /v1/admin/reps/{rep_id} with team_id")
        active = await _active_rules(session)
        naming = [rule["id"] for rule in active.rules if rule.get("team_id") == team_id] if active else []
        if naming:
            raise in_use(f"the active routing rules (version {active.version}) send leads to team '{team_id}' "
                         f"(rules {', '.join(naming)}); save rules without it first")
        await session.execute(delete(team_table).where(team_table.c.id == team_id))


@admin_router.post("/queues", status_code=201, response_model=QueuePublic, dependencies=writable)
async def create_queue(body: QueueCreate, request: Request) -> QueuePublic:
    state = request.app.state
    async with state.db.transaction() as session:
        if (await session.execute(select(queue_table.c.id).where(queue_table.c.id == body.id))).first():
            raise HTTPException(status.HTTP_409_CONFLICT, detail=f"queue '{body.id}' exists")
        row = (
            await session.execute(
                insert(queue_table).values(**body.model_dump(), created_at=state.clock.now())
                .returning(*queue_table.c)
            )
        ).one()
    return QueuePublic(**row._mapping, waiting=0)


@admin_router.get("/queues", response_model=list[QueuePublic], dependencies=readable)
async def list_queues(request: Request) -> list[QueuePublic]:
    async with request.app.state.db.transaction() as session:
        rows = (await session.execute(select(queue_table).order_by(queue_table.c.id))).all()
        waiting = dict(
            (
                await session.execute(
                    select(lead_table.c.queue, func.count()).where(lead_table.c.status == "queued")
                    .group_by(lead_table.c.queue)
                )
            ).all()
        )
    known = [QueuePublic(**r._mapping, waiting=waiting.pop(r.id, 0)) for r in rows]
    # Queues named by rules or settings but never created still show what waits in them.
    implicit = [QueuePublic(id=q, name=q, description=None, waiting=n, created_at=datetime.min)
                for q, n in waiting.items() if q]
    return known + implicit


@admin_router.get("/queues/{queue_id}/leads", dependencies=readable, summary="Leads waiting in a queue")
async def queued_leads(queue_id: str, request: Request, limit: int = 100) -> list[dict[str, Any]]:
    async with request.app.state.db.transaction() as session:
        rows = (
            await session.execute(
                select(lead_table.c.id, lead_table.c.routed_at, lead_table.c.team_id)
                .where(lead_table.c.queue == queue_id, lead_table.c.status == "queued")
                .order_by(lead_table.c.routed_at).limit(min(max(limit, 1), 1000))
            )
        ).all()
    return [{"lead_id": r.id, "queued_at": r.routed_at, "team_id": r.team_id} for r in rows]


async def _waiting_in(session: AsyncSession, queue_id: str) -> int:
    count: int = (await session.execute(select(func.count()).select_from(lead_table).where(
        lead_table.c.queue == queue_id, lead_table.c.status == "queued"))).scalar_one()
    return count


@admin_router.patch("/queues/{queue_id}", response_model=QueuePublic, dependencies=writable)
async def update_queue(queue_id: str, body: QueueUpdate, request: Request) -> QueuePublic:
    values = body.model_dump(exclude_unset=True)
    if values.get("name", "") is None:
        raise invalid([FieldError(field="name", code="required", message="a queue keeps a name")])
    async with request.app.state.db.transaction() as session:
        query = update(queue_table).where(queue_table.c.id == queue_id).values(**values).returning(*queue_table.c)
        row = (await session.execute(query if values else select(queue_table).where(queue_table.c.id == queue_id))
               ).first()
        if row is None:
            raise not_found(f"no queue '{queue_id}'")
        waiting = await _waiting_in(session, queue_id)
    return QueuePublic(**row._mapping, waiting=waiting)


@admin_router.delete("/queues/{queue_id}", status_code=204, dependencies=writable,
                     summary="Remove a queue no lead waits in and nothing falls back to")
async def delete_queue(queue_id: str, request: Request) -> None:
    async with request.app.state.db.transaction() as session:
        await _lock_rules(session)
        found = (await session.execute(select(queue_table.c.id).where(queue_table.c.id == queue_id)
                                       .with_for_update())).first()
        if found is None:
            raise not_found(f"no queue '{queue_id}'")
        waiting = await _waiting_in(session, queue_id)
        if waiting:
            raise in_use(f"{waiting} lead(s) wait in queue '{queue_id}'; it can go once they are routed "
                         f"(GET /v1/admin/queues/{queue_id}/leads)")
        active = await _active_rules(session)
        if active is not None and active.fallback_queue == queue_id:
            raise in_use(f"the active routing rules (version {active.version}) fall back to queue '{queue_id}'; "
                         "save rules with another fallback_queue first")
        teams = (await session.execute(select(team_table.c.id).where(team_table.c.fallback_queue == queue_id)
                                       .order_by(team_table.c.id))).scalars().all()
        if teams:
            raise in_use(f"teams {', '.join(teams)} fall back to queue '{queue_id}'; change their fallback_queue "
                         "first")
        await session.execute(delete(queue_table).where(queue_table.c.id == queue_id))


# -- admin: routing rules -------------------------------------------------------------------


class ConditionIn(BaseModel):
    field: str = Field(min_length=1, examples=["country"])
    op: domain.Operator = "eq"
    value: Any = None


class RuleIn(BaseModel):
    id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    match: domain.MatchMode = "all"
    conditions: list[ConditionIn] = Field(default_factory=list)
    team_id: str | None = None
    rep_id: str | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _one_target(self) -> RuleIn:
        if (self.team_id is None) == (self.rep_id is None):
            raise ValueError("a rule sends to exactly one of team_id or rep_id")
        return self


class RuleSetCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "rules": [
            {"id": "us-enterprise", "name": "US enterprise", "match": "all", "team_id": "us-enterprise",
             "conditions": [{"field": "country", "op": "eq", "value": "US"},
                            {"field": "employee_count", "op": "gte", "value": 1000}]},
            {"id": "emea", "name": "EMEA", "team_id": "emea-sales",
             "conditions": [{"field": "country", "op": "in", "value": ["DE", "FR", "GB"]}]},
        ],
        "fallback_queue": "unassigned", "comment": "Enterprise split out for the US", "activate": True}]})

    rules: list[RuleIn]
    fallback_queue: str | None = None
    comment: str | None = None
    activate: bool = True


class RuleSetPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "version": 4, "active": True, "fallback_queue": "unassigned", "comment": "Enterprise split out for the US",
        "rules": [{"id": "us-enterprise", "name": "US enterprise", "match": "all", "team_id": "us-enterprise",
                   "rep_id": None, "enabled": True,
                   "conditions": [{"field": "country", "op": "eq", "value": "US"},
                                  {"field": "employee_count", "op": "gte", "value": 1000}]}],
        "created_at": "2026-11-20T16:30:00Z", "activated_at": "2026-11-20T16:30:00Z"}]})

    version: int
    rules: list[dict[str, Any]]
    fallback_queue: str | None
    comment: str | None
    active: bool
    created_at: datetime
    activated_at: datetime | None


class DryRun(BaseModel):
    lead_id: str | None = Field(default=None, description="Route a lead routing already knows")
    lead: dict[str, Any] | None = Field(
        default=None, description="Or a lead.scored-shaped payload (flat fields such as country work too)",
        examples=[{"tier": "hot", "score": 80, "profile": {"country": "US", "state": "CA", "employee_count": 500}}],
    )
    version: int | None = Field(default=None, ge=1, le=INT_MAX,
                                description="Try a ruleset version other than the active one")
    at: datetime | None = Field(default=None, description="Decide as if at this time")

    @model_validator(mode="after")
    def _one_lead(self) -> DryRun:
        if (self.lead_id is None) == (self.lead is None):
            raise ValueError("give exactly one of lead_id or lead")
        return self


rules_router = APIRouter(prefix="/v1/admin/routing-rules", tags=["routing rules"])
RuleSetVersion = Annotated[int, Path(ge=1, le=INT_MAX)]


def _ruleset_public(row: Any) -> RuleSetPublic:
    return RuleSetPublic.model_validate(row, from_attributes=True)


async def _check_rules(session: AsyncSession, body: RuleSetCreate) -> None:
    """Every team and rep the rules name exists; the caller holds the rules' lock."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    for index, rule in enumerate(body.rules):
        if rule.id in seen:
            errors.append(FieldError(field=f"rules.{index}.id", code="duplicate", message=f"rule id '{rule.id}' "
                                     "is used twice"))
        seen.add(rule.id)
        if rule.team_id and not await _team_exists(session, rule.team_id):
            errors.append(FieldError(field=f"rules.{index}.team_id", code="unknown",
                                     message=f"no team '{rule.team_id}'"))
        if rule.rep_id and not await _rep_exists(session, rule.rep_id):
            errors.append(FieldError(field=f"rules.{index}.rep_id", code="unknown",
                                     message=f"no rep '{rule.rep_id}'"))
        for c_index, condition in enumerate(rule.conditions):
            if condition.op in ("in", "not_in", "between") and not isinstance(condition.value, list):
                errors.append(FieldError(field=f"rules.{index}.conditions.{c_index}.value", code="type",
                                         message=f"'{condition.op}' needs a list"))
    errors.extend(_pattern_errors(body.rules))
    if errors:
        raise invalid(errors, "The routing rules are invalid; see errors.")


def _pattern_errors(rules: Sequence[RuleIn | domain.Rule]) -> list[FieldError]:
    """Each `matches` condition whose pattern RE2 cannot run (saved, activated or dry-run, it is refused)."""
    errors: list[FieldError] = []
    for index, rule in enumerate(rules):
        conditions: Sequence[ConditionIn | domain.Condition] = rule.conditions
        for c_index, condition in enumerate(conditions):
            if (reason := domain.condition_error(condition.op, condition.value)) is not None:
                errors.append(FieldError(field=f"rules.{index}.conditions.{c_index}.value", code="pattern",
                                         message=reason))
    return errors


@rules_router.post("", status_code=201, response_model=RuleSetPublic, dependencies=writable,
                   summary="Save the ordered rules as a new version (active unless activate=false)")
async def create_ruleset(body: RuleSetCreate, request: Request) -> RuleSetPublic:
    state = request.app.state
    now = state.clock.now()
    async with state.db.transaction() as session:
        # Also numbers the versions: two admins never mint the same one.
        await _lock_rules(session)
        await _check_rules(session, body)
        version = (await session.execute(select(func.coalesce(func.max(ruleset_table.c.version), 0) + 1))).scalar_one()
        if body.activate:
            await session.execute(update(ruleset_table).where(ruleset_table.c.active.is_(True)).values(active=False))
        row = (
            await session.execute(
                insert(ruleset_table).values(
                    version=version, rules=[r.model_dump() for r in body.rules], fallback_queue=body.fallback_queue,
                    comment=body.comment, active=body.activate, created_at=now,
                    activated_at=now if body.activate else None,
                ).returning(*ruleset_table.c)
            )
        ).one()
    return _ruleset_public(row)


@rules_router.get("", response_model=RuleSetPublic, dependencies=readable, summary="The active rules")
async def get_active_ruleset(request: Request) -> RuleSetPublic:
    async with request.app.state.db.transaction() as session:
        row = await _active_rules(session)
    if row is None:
        raise not_found("no routing rules are active")
    return _ruleset_public(row)


@rules_router.get("/versions", response_model=list[RuleSetPublic], dependencies=readable)
async def list_rulesets(request: Request) -> list[RuleSetPublic]:
    async with request.app.state.db.transaction() as session:
        rows = (await session.execute(select(ruleset_table).order_by(ruleset_table.c.version.desc()))).all()
    return [_ruleset_public(r) for r in rows]


@rules_router.get("/versions/{version}", response_model=RuleSetPublic, dependencies=readable)
async def get_ruleset(version: RuleSetVersion, request: Request) -> RuleSetPublic:
    async with request.app.state.db.transaction() as session:
        row = (await session.execute(select(ruleset_table).where(ruleset_table.c.version == version))).first()
    if row is None:
        raise not_found(f"no routing rules version {version}")
    return _ruleset_public(row)


@rules_router.post("/versions/{version}/activate", response_model=RuleSetPublic, dependencies=writable)
async def activate_ruleset(version: RuleSetVersion, request: Request) -> RuleSetPublic:
    state = request.app.state
    async with state.db.transaction() as session:
        await _lock_rules(session)
        stored = (await session.execute(select(ruleset_table).where(ruleset_table.c.version == version))).first()
        if stored is None:
            raise not_found(f"no routing rules version {version}")
        # An older version may name a team or rep removed since it was saved.
        await _check_rules(session, RuleSetCreate(rules=stored.rules, fallback_queue=stored.fallback_queue))
        await session.execute(update(ruleset_table).where(ruleset_table.c.active.is_(True)).values(active=False))
        row = (
            await session.execute(
                update(ruleset_table).where(ruleset_table.c.version == version)
                .values(active=True, activated_at=state.clock.now()).returning(*ruleset_table.c)
            )
        ).one()
    return _ruleset_public(row)


@rules_router.post("/dry-run", dependencies=readable,
                   summary="Where a lead would go and why, without assigning it or touching any counter")
async def dry_run(body: DryRun, request: Request) -> dict[str, Any]:
    state = request.app.state
    now = body.at or state.clock.now()
    async with state.db.transaction() as session:
        if body.lead_id is not None:
            row = (await session.execute(select(lead_table.c.data).where(lead_table.c.id == body.lead_id))).first()
            if row is None:
                raise not_found(f"no lead '{body.lead_id}'")
            payload: dict[str, Any] = dict(row.data)
        else:
            payload = dict(body.lead or {})
        ruleset: domain.RuleSet | None
        if body.version is not None:
            rs = (await session.execute(select(ruleset_table).where(ruleset_table.c.version == body.version))).first()
            if rs is None:
                raise not_found(f"no routing rules version {body.version}")
            ruleset = handlers.ruleset_from_json(rs.version, rs.rules, rs.fallback_queue)
        else:
            ruleset = await handlers.active_ruleset(session)
        # Rules saved before patterns were checked may hold one RE2 cannot run: say which, not 500.
        if ruleset is not None and (errors := _pattern_errors(ruleset.rules)):
            raise invalid(errors, f"The routing rules (version {ruleset.version}) are invalid; see errors.")
        conn = await driver_connection(session)
        decision = await handlers.decide(conn, payload, now, state.settings, ruleset, lock=False)
        # Nothing was written, but roll back anyway so a dry run can never change state.
        await session.rollback()
    return {"dry_run": True, "fields": domain.lead_fields(payload), **decision.public()}

