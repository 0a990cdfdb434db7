"""Routes of the queues people work: list a queue's waiting leads (oldest first, with their age and SLA
state), claim one for a rep, reassign any lead to a rep or a queue."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from leadflow_kit.auth import Principal, require_scope
from leadflow_kit.errors import FieldError
from leadflow_kit.uow import UnitOfWork, unit_of_work
from leadflow_routing import queues
from leadflow_routing.api import not_found
from leadflow_routing.bootstrap import Deps, DepsDep
from leadflow_routing.handlers import Routed
from leadflow_routing.schemas import ID_PATTERN
from leadflow_routing.sla_states import SlaStateKind, sla_state

queues_router = APIRouter(tags=["queues"])

QueueId = Annotated[str, Path(min_length=1, max_length=100)]
LEAD_ID = "5b0f7c1e-8d7a-4c43-9a55-0f7de3a1c2b4"


class SlaStatePublic(BaseModel):
    state: SlaStateKind = Field(description="open: no warning yet (sla knows the due time, routing learns it with "
                                "the warning); warned; breached")
    due_at: datetime | None = None
    breach_count: int = 0


class QueuedLeadPublic(BaseModel):
    lead_id: str
    queued_at: datetime
    age_seconds: float
    team_id: str | None = None
    tier: str | None = None
    score: float | None = None
    company: str | None = None
    job_title: str | None = None
    country: str | None = None
    sla: SlaStatePublic


class QueuePage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "queue": "triage", "waiting": 3, "next_cursor": "WyIyMDI2LTEyLTAzVDA5OjAwOjAwKzAwOjAwIiwgImxlYWQtMiJd",
        "leads": [{"lead_id": LEAD_ID, "queued_at": "2026-12-03T09:00:00Z", "age_seconds": 1260.0,
                   "team_id": "emea", "tier": "hot", "score": 82.0, "company": "Acme", "job_title": "VP Sales",
                   "country": "DE", "sla": {"state": "warned", "due_at": "2026-12-03T09:30:00Z", "breach_count": 0}}],
    }]})

    queue: str
    waiting: int = Field(description="How many leads wait in the queue in all")
    leads: list[QueuedLeadPublic]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page; null on the last")


class ClaimRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"rep_id": "rep-ada"}]})

    rep_id: str = Field(pattern=ID_PATTERN, description="The rep who takes the lead: the key's own rep, one of the "
                        "team it manages, or anyone for an admin key")


class ReassignRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"rep_id": "rep-grace", "reason": "Ada is on leave; Grace covers DACH"},
        {"queue": "triage", "reason": "Wrong territory, back for triage"},
    ]})

    rep_id: str | None = Field(default=None, pattern=ID_PATTERN)
    queue: str | None = Field(default=None, pattern=ID_PATTERN)
    reason: str = Field(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$")

    @model_validator(mode="after")
    def _one_target(self) -> ReassignRequest:
        if (self.rep_id is None) == (self.queue is None):
            raise ValueError("name either rep_id or queue")
        return self


class LeadMoved(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "lead_id": LEAD_ID, "assignment_id": "asg_9c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f", "outcome": "claimed",
        "owner_rep_id": "rep-ada", "queue": None, "reason": "claimed from queue triage by rep rep-ada",
        "reroute_reason": "claimed", "previous_owner_rep_id": None, "routed_at": "2026-12-03T09:21:00Z"}]})

    lead_id: str
    assignment_id: str
    outcome: str
    owner_rep_id: str | None = None
    queue: str | None = None
    reason: str
    reroute_reason: str | None = None
    previous_owner_rep_id: str | None = None
    routed_at: datetime


def moved(routed: Routed) -> LeadMoved:
    data = routed.event.data
    return LeadMoved(lead_id=data.lead_id, assignment_id=routed.assignment_id, outcome=routed.decision.outcome,
                     owner_rep_id=data.owner.rep_id if data.owner else None, queue=data.queue, reason=data.reason,
                     reroute_reason=data.reroute_reason, previous_owner_rep_id=data.previous_owner_rep_id,
                     routed_at=routed.event.time)


def refused(error: queues.MoveRefused) -> HTTPException:
    if error.kind == "unknown":
        return HTTPException(422, detail={"detail": error.detail, "errors": [
            FieldError(field=error.field or "body", code="unknown", message=error.detail).model_dump()]})
    code = status.HTTP_403_FORBIDDEN if error.kind == "forbidden" else status.HTTP_409_CONFLICT
    return HTTPException(code, detail=error.detail)


async def run_move(deps: Deps, lead_id: str, move: Callable[[UnitOfWork[Deps]], Awaitable[Routed]]) -> LeadMoved:
    """Run a move in a transaction of its own; its refusals become the route's 404, 403, 409 or 422."""
    try:
        async with unit_of_work(deps.platform, deps) as uow:
            routed = await move(uow)
    except queues.LeadNotRouted:
        raise not_found(f"lead '{lead_id}' has not been routed") from None
    except queues.MoveRefused as error:
        raise refused(error) from None
    return moved(routed)


MOVE_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "The key may not act for this rep",
          "content": {"application/json": {"example": {"detail": "this API key acts for rep(s) rep-ada: it may claim "
                                                       "for them and for the reps of the teams they manage, not for "
                                                       "rep 'rep-bob'"}}}},
    409: {"description": "The lead is closed, already claimed or already there; or the rep is inactive",
          "content": {"application/json": {"example": {"detail": f"lead '{LEAD_ID}' is already claimed: rep "
                                                       "'rep-bob' owns it"}}}},
    404: {"description": "No routed lead with this id",
          "content": {"application/json": {"example": {"detail": f"lead '{LEAD_ID}' has not been routed"}}}},
}


@queues_router.get("/v1/queues/{queue_id}/leads", response_model=QueuePage,
                   summary="A queue's waiting leads, oldest first, with their age and SLA state")
async def list_queue_leads(
    queue_id: QueueId, deps: DepsDep,
    _: Principal = Depends(require_scope("routing:read", queues.WORK_SCOPE)),
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512, description="`next_cursor` of the page before")] = None,
) -> QueuePage:
    after = queues.decode_cursor(cursor) if cursor is not None else None
    if cursor is not None and after is None:
        raise HTTPException(422, detail={"detail": "cursor is not one this service made", "errors": [
            FieldError(field="cursor", code="invalid", message="pass a next_cursor as it was given").model_dump()]})
    async with deps.platform.db.transaction() as session:
        waiting = await deps.store.waiting_in(session, queue_id)
        if waiting == 0 and not await deps.store.queue_exists(session, queue_id):
            raise not_found(f"no queue '{queue_id}'")
        entries = await deps.store.queue_page(session, queue_id, after, limit)
    now = deps.platform.clock.now()
    leads = [QueuedLeadPublic(
        lead_id=e.lead_id, queued_at=e.queued_at, age_seconds=round(max((now - e.queued_at).total_seconds(), 0.0), 3),
        team_id=e.team_id, tier=e.tier, score=e.score, company=e.company, job_title=e.job_title, country=e.country,
        sla=SlaStatePublic(**vars(sla_state(e.sla_kind, e.sla_due_at, e.sla_breach_count))),
    ) for e in entries]
    last = entries[-1] if len(entries) == limit else None
    return QueuePage(queue=queue_id, waiting=waiting, leads=leads,
                     next_cursor=queues.encode_cursor(last.queued_at, last.lead_id) if last else None)


@queues_router.post("/v1/leads/{lead_id}/claim", response_model=LeadMoved, responses=MOVE_ERRORS,
                    summary="A rep (or its team's manager, or an admin) takes a lead waiting in a queue")
async def claim_lead(
    lead_id: str, body: ClaimRequest, deps: DepsDep,
    principal: Principal = Depends(require_scope("routing:write", queues.WORK_SCOPE)),
) -> LeadMoved:
    claim = queues.Claim(lead_id, body.rep_id, queues.Actor.of(principal))
    return await run_move(deps, lead_id, lambda uow: queues.claim_lead(uow, claim))


@queues_router.post("/v1/leads/{lead_id}/reassign", response_model=LeadMoved, responses=MOVE_ERRORS,
                    summary="An admin moves any open lead to a rep or a queue, with a reason")
async def reassign_lead(
    lead_id: str, body: ReassignRequest, deps: DepsDep,
    principal: Principal = Depends(require_scope(queues.ADMIN_SCOPE)),
) -> LeadMoved:
    move = queues.Reassignment(lead_id, body.rep_id, body.queue, body.reason.strip(), queues.Actor.of(principal))
    return await run_move(deps, lead_id, lambda uow: queues.reassign_lead(uow, move))
