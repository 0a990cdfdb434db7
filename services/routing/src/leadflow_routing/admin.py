"""Routing's admin API: reps, teams, queues and versioned routing rules (with a dry run)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_kit.auth import require_scope
from leadflow_kit.db import INT_MAX
from leadflow_kit.errors import FieldError
from leadflow_routing import domain, handlers
from leadflow_routing.api import not_found
from leadflow_routing.bootstrap import Deps, DepsDep
from leadflow_routing.schemas import (
    DRY_RUN_EXAMPLE,
    QUEUED_LEADS_EXAMPLE,
    ConditionIn,
    DryRun,
    ParkedLeadPublic,
    QueueCreate,
    QueuePublic,
    QueueUpdate,
    RepCreate,
    RepPublic,
    RepUpdate,
    RuleIn,
    RuleSetCreate,
    RuleSetPublic,
    TeamCreate,
    TeamFields,
    TeamPublic,
    TeamUpdate,
    json_example,
)

admin_router = APIRouter(prefix="/v1/admin", tags=["routing admin"])
rules_router = APIRouter(prefix="/v1/admin/routing-rules", tags=["routing rules"])
readable = [Depends(require_scope("routing:read", "routing:write"))]
writable = [Depends(require_scope("routing:write"))]
RuleSetVersion = Annotated[int, Path(ge=1, le=INT_MAX)]


def invalid(errors: list[FieldError], detail: str = "The request is invalid; see errors.") -> HTTPException:
    return HTTPException(422,
                         detail={"detail": detail, "errors": [e.model_dump() for e in errors]})


def in_use(why: str) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, detail=why)


def unknown_team(team_id: str) -> HTTPException:
    return invalid([FieldError(field="team_id", code="unknown", message=f"no team '{team_id}'")])


def require_values(body: BaseModel, required: tuple[str, ...]) -> None:
    """A request may leave a column out, but not set one of the ``required`` to null: 422 naming each."""
    values = body.model_dump(exclude_unset=True)
    nulls = [name for name in required if name in values and values[name] is None]
    if nulls:
        raise invalid([FieldError(field=name, code="null_not_allowed", message=f"{name} cannot be null")
                       for name in nulls])


REP_REQUIRED = ("name", "weight", "timezone", "active")
TEAM_REQUIRED = ("name", "strategy")


# -- reps -----------------------------------------------------------------------------------


@admin_router.post("/reps", status_code=201, response_model=RepPublic, dependencies=writable)
async def create_rep(body: RepCreate, deps: DepsDep) -> RepPublic:
    now = deps.platform.clock.now()
    async with deps.platform.db.transaction() as session:
        if body.team_id is not None and not await deps.store.team_exists(session, body.team_id):
            raise unknown_team(body.team_id)
        rep_id = body.id or f"rep-{uuid.uuid4().hex[:12]}"
        if await deps.store.rep_exists(session, rep_id):
            raise HTTPException(status.HTTP_409_CONFLICT, detail=f"rep '{rep_id}' exists")
        require_values(body, REP_REQUIRED)
        record = await deps.store.create_rep(session, rep_id, body, now)
    return RepPublic.from_record(record, now)


@admin_router.get("/reps", response_model=list[RepPublic], dependencies=readable)
async def list_reps(deps: DepsDep, team_id: str | None = None) -> list[RepPublic]:
    async with deps.platform.db.transaction() as session:
        records = await deps.store.list_reps(session, team_id)
    now = deps.platform.clock.now()
    return [RepPublic.from_record(r, now) for r in records]


@admin_router.get("/reps/{rep_id}", response_model=RepPublic, dependencies=readable)
async def get_rep(rep_id: str, deps: DepsDep) -> RepPublic:
    async with deps.platform.db.transaction() as session:
        record = await deps.store.get_rep(session, rep_id)
    if record is None:
        raise not_found(f"no rep '{rep_id}'")
    return RepPublic.from_record(record, deps.platform.clock.now())


@admin_router.patch("/reps/{rep_id}", response_model=RepPublic, dependencies=writable)
async def update_rep(rep_id: str, body: RepUpdate, deps: DepsDep) -> RepPublic:
    now = deps.platform.clock.now()
    async with deps.platform.db.transaction() as session:
        if body.team_id is not None and not await deps.store.team_exists(session, body.team_id):
            raise unknown_team(body.team_id)
        require_values(body, REP_REQUIRED)
        record = await deps.store.update_rep(session, rep_id, body, now)
    if record is None:
        raise not_found(f"no rep '{rep_id}'")
    return RepPublic.from_record(record, now)


@admin_router.delete("/reps/{rep_id}", status_code=204, dependencies=writable,
                     summary="Deactivate a rep (kept for the audit trail)")
async def deactivate_rep(rep_id: str, deps: DepsDep) -> None:
    async with deps.platform.db.transaction() as session:
        found = await deps.store.deactivate_rep(session, rep_id, deps.platform.clock.now())
    if not found:
        raise not_found(f"no rep '{rep_id}'")


# -- teams ----------------------------------------------------------------------------------


async def _check_team_refs(deps: Deps, session: AsyncSession, body: TeamFields) -> None:
    if body.manager_rep_id and not await deps.store.rep_exists(session, body.manager_rep_id):
        raise invalid([FieldError(field="manager_rep_id", code="unknown", message=f"no rep '{body.manager_rep_id}'")])


@admin_router.post("/teams", status_code=201, response_model=TeamPublic, dependencies=writable)
async def create_team(body: TeamCreate, deps: DepsDep) -> TeamPublic:
    now = deps.platform.clock.now()
    async with deps.platform.db.transaction() as session:
        await _check_team_refs(deps, session, body)
        team_id = body.id or f"team-{uuid.uuid4().hex[:12]}"
        if await deps.store.team_exists(session, team_id):
            raise HTTPException(status.HTTP_409_CONFLICT, detail=f"team '{team_id}' exists")
        team = await deps.store.create_team(session, team_id, body, now)
    return team


@admin_router.get("/teams", response_model=list[TeamPublic], dependencies=readable)
async def list_teams(deps: DepsDep) -> list[TeamPublic]:
    async with deps.platform.db.transaction() as session:
        teams = await deps.store.list_teams(session)
    return teams


@admin_router.get("/teams/{team_id}", response_model=TeamPublic, dependencies=readable)
async def get_team(team_id: str, deps: DepsDep) -> TeamPublic:
    async with deps.platform.db.transaction() as session:
        team = await deps.store.get_team(session, team_id)
    if team is None:
        raise not_found(f"no team '{team_id}'")
    return team


@admin_router.patch("/teams/{team_id}", response_model=TeamPublic, dependencies=writable)
async def update_team(team_id: str, body: TeamUpdate, deps: DepsDep) -> TeamPublic:
    async with deps.platform.db.transaction() as session:
        await _check_team_refs(deps, session, body)
        require_values(body, TEAM_REQUIRED)
        team = await deps.store.update_team(session, team_id, body, deps.platform.clock.now())
    if team is None:
        raise not_found(f"no team '{team_id}'")
    return team


@admin_router.delete("/teams/{team_id}", status_code=204, dependencies=writable,
                     summary="Remove a team that has no reps and that the active rules do not name")
async def delete_team(team_id: str, deps: DepsDep) -> None:
    store = deps.store
    async with deps.platform.db.transaction() as session:
        await store.lock_rules(session)
        # The row lock waits for a rep being added to the team, so its members below are complete.
        if not await store.lock_team_row(session, team_id):
            raise not_found(f"no team '{team_id}'")
        members = await store.team_members(session, team_id)
        if members:
            raise in_use(f"team '{team_id}' still has reps ({', '.join(members)}); move them to another team "
                         "(or none) first: PATCH /v1/admin/reps/{rep_id} with team_id")
        active = await store.active_ruleset_record(session)
        naming = [rule["id"] for rule in active.rules if rule.get("team_id") == team_id] if active else []
        if active is not None and naming:
            raise in_use(f"the active routing rules (version {active.version}) send leads to team '{team_id}' "
                         f"(rules {', '.join(naming)}); save rules without it first")
        await store.delete_team(session, team_id)


# -- queues ---------------------------------------------------------------------------------


@admin_router.post("/queues", status_code=201, response_model=QueuePublic, dependencies=writable)
async def create_queue(body: QueueCreate, deps: DepsDep) -> QueuePublic:
    async with deps.platform.db.transaction() as session:
        if await deps.store.queue_exists(session, body.id):
            raise HTTPException(status.HTTP_409_CONFLICT, detail=f"queue '{body.id}' exists")
        record = await deps.store.create_queue(session, body, deps.platform.clock.now())
    return QueuePublic.from_record(record, waiting=0)


@admin_router.get("/queues", response_model=list[QueuePublic], dependencies=readable)
async def list_queues(deps: DepsDep) -> list[QueuePublic]:
    async with deps.platform.db.transaction() as session:
        records = await deps.store.list_queues(session)
        waiting = await deps.store.waiting_by_queue(session)
    known = [QueuePublic.from_record(r, waiting=waiting.pop(r.id, 0)) for r in records]
    # Queues named by rules or settings but never created still show what waits in them.
    implicit = [QueuePublic(id=q, name=q, description=None, waiting=n, created_at=datetime.min)
                for q, n in waiting.items() if q]
    return known + implicit


@admin_router.get("/queues/{queue_id}/leads", dependencies=readable, summary="Leads waiting in a queue",
                  responses=json_example(QUEUED_LEADS_EXAMPLE))
async def queued_leads(queue_id: str, deps: DepsDep, limit: int = 100) -> list[dict[str, Any]]:
    async with deps.platform.db.transaction() as session:
        leads = await deps.store.queued_leads(session, queue_id, min(max(limit, 1), 1000))
    return [{"lead_id": lead.lead_id, "queued_at": lead.queued_at, "team_id": lead.team_id} for lead in leads]


@admin_router.get("/parked-leads", response_model=list[ParkedLeadPublic], dependencies=readable,
                  summary="Scored leads parked behind a held team or rep, oldest first")
async def parked_leads(deps: DepsDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[ParkedLeadPublic]:
    """What the `LeadflowRoutingLeadsParked` alert is about: each parked lead, what it waits for and how long."""
    async with deps.platform.db.transaction() as session:
        parked = await deps.store.parked_leads(session, limit)
    now = deps.platform.clock.now()
    return [ParkedLeadPublic(seq=p.seq, lead_id=p.lead_id, waiting_for=p.waiting_for, parked_at=p.parked_at,
                             waited_seconds=round(max((now - p.parked_at).total_seconds(), 0.0), 3),
                             attempts=p.attempts, last_error=p.last_error) for p in parked]


@admin_router.patch("/queues/{queue_id}", response_model=QueuePublic, dependencies=writable)
async def update_queue(queue_id: str, body: QueueUpdate, deps: DepsDep) -> QueuePublic:
    values = body.model_dump(exclude_unset=True)
    if values.get("name", "") is None:
        raise invalid([FieldError(field="name", code="required", message="a queue keeps a name")])
    async with deps.platform.db.transaction() as session:
        record = await deps.store.update_queue(session, queue_id, values)
        if record is None:
            raise not_found(f"no queue '{queue_id}'")
        waiting = await deps.store.waiting_in(session, queue_id)
    return QueuePublic.from_record(record, waiting=waiting)


@admin_router.delete("/queues/{queue_id}", status_code=204, dependencies=writable,
                     summary="Remove a queue no lead waits in and nothing falls back to")
async def delete_queue(queue_id: str, deps: DepsDep) -> None:
    store = deps.store
    async with deps.platform.db.transaction() as session:
        await store.lock_rules(session)
        if not await store.lock_queue(session, queue_id):
            raise not_found(f"no queue '{queue_id}'")
        waiting = await store.waiting_in(session, queue_id)
        if waiting:
            raise in_use(f"{waiting} lead(s) wait in queue '{queue_id}'; it can go once they are routed "
                         f"(GET /v1/admin/queues/{queue_id}/leads)")
        active = await store.active_ruleset_record(session)
        if active is not None and active.fallback_queue == queue_id:
            raise in_use(f"the active routing rules (version {active.version}) fall back to queue '{queue_id}'; "
                         "save rules with another fallback_queue first")
        teams = await store.teams_falling_back_to(session, queue_id)
        if teams:
            raise in_use(f"teams {', '.join(teams)} fall back to queue '{queue_id}'; change their fallback_queue "
                         "first")
        await store.delete_queue(session, queue_id)


# -- routing rules --------------------------------------------------------------------------


async def _check_rules(deps: Deps, session: AsyncSession, body: RuleSetCreate) -> None:
    """Every team and rep the rules name exists; the caller holds the rules' lock."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    for index, rule in enumerate(body.rules):
        if rule.id in seen:
            errors.append(FieldError(field=f"rules.{index}.id", code="duplicate", message=f"rule id '{rule.id}' "
                                     "is used twice"))
        seen.add(rule.id)
        if rule.team_id and not await deps.store.team_exists(session, rule.team_id):
            errors.append(FieldError(field=f"rules.{index}.team_id", code="unknown",
                                     message=f"no team '{rule.team_id}'"))
        if rule.rep_id and not await deps.store.rep_exists(session, rule.rep_id):
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
async def create_ruleset(body: RuleSetCreate, deps: DepsDep) -> RuleSetPublic:
    now = deps.platform.clock.now()
    async with deps.platform.db.transaction() as session:
        # Also numbers the versions: two admins never mint the same one.
        await deps.store.lock_rules(session)
        await _check_rules(deps, session, body)
        ruleset = await deps.store.create_ruleset(session, body, now)
    return ruleset


@rules_router.get("", response_model=RuleSetPublic, dependencies=readable, summary="The active rules")
async def get_active_ruleset(deps: DepsDep) -> RuleSetPublic:
    async with deps.platform.db.transaction() as session:
        ruleset = await deps.store.active_ruleset_record(session)
    if ruleset is None:
        raise not_found("no routing rules are active")
    return ruleset


@rules_router.get("/versions", response_model=list[RuleSetPublic], dependencies=readable)
async def list_rulesets(deps: DepsDep) -> list[RuleSetPublic]:
    async with deps.platform.db.transaction() as session:
        rulesets = await deps.store.list_ruleset_records(session)
    return rulesets


@rules_router.get("/versions/{version}", response_model=RuleSetPublic, dependencies=readable)
async def get_ruleset(version: RuleSetVersion, deps: DepsDep) -> RuleSetPublic:
    async with deps.platform.db.transaction() as session:
        ruleset = await deps.store.ruleset_record(session, version)
    if ruleset is None:
        raise not_found(f"no routing rules version {version}")
    return ruleset


@rules_router.post("/versions/{version}/activate", response_model=RuleSetPublic, dependencies=writable)
async def activate_ruleset(version: RuleSetVersion, deps: DepsDep) -> RuleSetPublic:
    async with deps.platform.db.transaction() as session:
        await deps.store.lock_rules(session)
        stored = await deps.store.ruleset_record(session, version)
        if stored is None:
            raise not_found(f"no routing rules version {version}")
        # An older version may name a team or rep removed since it was saved.
        await _check_rules(deps, session, RuleSetCreate.model_validate(
            {"rules": stored.rules, "fallback_queue": stored.fallback_queue}))
        ruleset = await deps.store.activate_ruleset(session, version, deps.platform.clock.now())
    return ruleset


@rules_router.post("/dry-run", dependencies=readable, responses=json_example(DRY_RUN_EXAMPLE),
                   summary="Where a lead would go and why, without assigning it or touching any counter")
async def dry_run(body: DryRun, deps: DepsDep) -> dict[str, Any]:
    now = body.at or deps.platform.clock.now()
    async with deps.platform.db.transaction() as session:
        if body.lead_id is not None:
            stored = await deps.store.lead_data(session, body.lead_id)
            if stored is None:
                raise not_found(f"no lead '{body.lead_id}'")
            payload: dict[str, Any] = stored
        else:
            payload = dict(body.lead or {})
        if body.version is not None:
            ruleset = await deps.store.ruleset_version(session, body.version)
            if ruleset is None:
                raise not_found(f"no routing rules version {body.version}")
        else:
            ruleset = await deps.store.active_ruleset(session)
        # Rules saved before patterns were checked may hold one RE2 cannot run: say which, not 500.
        if ruleset is not None and (errors := _pattern_errors(ruleset.rules)):
            raise invalid(errors, f"The routing rules (version {ruleset.version}) are invalid; see errors.")
        facts = domain.LeadFacts.of_payload(payload)
        decision = await handlers.decide(deps.store, session, facts, now, deps.settings, ruleset, lock=False)
        # Nothing was written, but roll back anyway so a dry run can never change state.
        await session.rollback()
    # The decision is where the lead goes when handed to sales; a lead that says it is no MQL waits in
    # nurture first under the `mql` hand-off.
    handoff = {"policy": ruleset.handoff if ruleset else None,
               "held_in_nurture": ruleset is not None and ruleset.handoff == "mql" and payload.get("is_mql") is False}
    return {"dry_run": True, "fields": facts.fields, **decision.public(), "handoff": handoff}
