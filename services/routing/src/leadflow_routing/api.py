"""Routing's lead routes: a lead's assignment and its history, and the CRM callback."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, status

from leadflow_kit.auth import Principal, require_scope
from leadflow_kit.uow import unit_of_work
from leadflow_routing import handlers
from leadflow_routing.bootstrap import DepsDep
from leadflow_routing.schemas import ASSIGNMENT_EXAMPLE, CrmEvent, CrmEventAccepted, json_example
from leadflow_routing.store import LeadAssignments


def not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=what)


leads_router = APIRouter(tags=["leads"])


def assignment_view(lead: LeadAssignments) -> dict[str, Any]:
    """The lead's current owner and the full audit trail of every decision about it."""
    current = next((h for h in lead.history if h.id == lead.last_assignment_id), None)
    owner = lead.owner
    return {
        "lead_id": lead.lead_id,
        "status": lead.status,
        "owner": {"rep_id": owner.rep_id, "name": owner.name, "email": owner.email, "team_id": owner.team_id}
        if owner else None,
        "team_id": lead.team_id,
        "queue": lead.queue,
        "assignment_id": lead.last_assignment_id,
        "reason": current.reason if current else None,
        "rule_id": current.rule_id if current else None,
        "strategy": current.strategy if current else None,
        "routed_at": lead.routed_at,
        "breach_count": lead.breach_count,
        "history": [
            {
                "assignment_id": h.id, "at": h.created_at, "outcome": h.outcome, "rep_id": h.rep_id,
                "team_id": h.team_id, "queue": h.queue, "reason": h.reason, "rule_id": h.rule_id,
                "ruleset_version": h.ruleset_version, "strategy": h.strategy, "reroute": h.reroute,
                "reroute_reason": h.reroute_reason, "previous_owner_rep_id": h.previous_owner_rep_id,
                "escalated": h.escalated, "audit": h.audit,
            }
            for h in lead.history
        ],
    }


@leads_router.get("/v1/leads/{lead_id}/assignment", summary="Who owns the lead, and every routing decision",
                  responses=json_example(ASSIGNMENT_EXAMPLE))
async def get_assignment(
    lead_id: str, deps: DepsDep, _: Principal = Depends(require_scope("routing:read", "crm:events"))
) -> dict[str, Any]:
    async with deps.platform.db.transaction() as session:
        lead = await deps.store.lead_assignments(session, lead_id)
    if lead is None:
        raise not_found(f"lead '{lead_id}' has not been routed")
    return assignment_view(lead)


@leads_router.post("/v1/leads/{lead_id}/events", status_code=status.HTTP_202_ACCEPTED,
                   response_model=CrmEventAccepted,
                   summary="CRM callback: accepted, contacted, meeting_booked, opportunity_created, disqualified, "
                           "converted, closed_lost (the last three with the opportunity's amount and currency)")
async def post_crm_event(
    lead_id: str, body: CrmEvent, deps: DepsDep,
    principal: Principal = Depends(require_scope("crm:events")),
) -> CrmEventAccepted:
    crm = handlers.CrmTouch(lead_id, body.type, rep_id=body.rep_id, reason=body.reason,
                            occurred_at=body.occurred_at, integration=principal.name, external_id=body.external_id,
                            amount=body.amount, currency=body.currency)
    try:
        async with unit_of_work(deps.platform, deps) as uow:
            recorded = await handlers.record_touch(uow, crm)
    except handlers.UnknownLead:
        raise not_found(f"no lead '{lead_id}'") from None
    return CrmEventAccepted(touch_id=recorded.touch_id, lead_id=lead_id, type=recorded.touch_type,
                            owner_rep_id=recorded.owner_rep_id, owner_mismatch=recorded.owner_mismatch,
                            duplicate=recorded.duplicate)
