"""Queues: each queue's waiting leads with their age and SLA state, refreshed live (htmx polls the table
every few seconds), claim (a rep for themself, a sales manager for a rep of their teams) and assign (admin
or sales manager: to a rep, with a reason). Routing does the move; the console decides who may ask."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request, status
from fastapi.responses import HTMLResponse, Response

from leadflow_console.auth import User, lead_visible_to, require_roles
from leadflow_console.clients import ServiceError, ServiceUnavailable
from leadflow_console.deps import ConsoleDep
from leadflow_console.formatting import FORMATTERS
from leadflow_console.pages import NavItem, Page
from leadflow_console.pages.leads import LeadId, assignable_reps, move_lead
from leadflow_console.templating import redirect, render

router = APIRouter(tags=["queues"])

QueueWorker = Annotated[User, Depends(require_roles("sales_manager", "rep"))]
Mover = Annotated[User, Depends(require_roles("sales_manager"))]
QueueId = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")]
REFRESH_SECONDS = 5
PAGE_SIZE = 100


@router.get("/queues", response_class=HTMLResponse, summary="Every queue and how many leads wait in it")
async def queues_page(request: Request, console: ConsoleDep, user: QueueWorker) -> HTMLResponse:
    unavailable = None
    queues: list[dict[str, Any]] = []
    try:
        queues = await console.clients.routing.get("/v1/admin/queues")
    except ServiceUnavailable as exc:
        unavailable = exc.message
    return await render(request, "queues/index.html", {"queues": queues, "unavailable": unavailable})


async def waiting_leads(console: Any, user: User, queue: str) -> dict[str, Any]:
    """The queue's page of waiting leads for the table, each marked with whether ``user`` may open it;
    ``unavailable`` when routing cannot answer."""
    try:
        page = await console.clients.routing.get(f"/v1/queues/{queue}/leads", params={"limit": PAGE_SIZE})
    except ServiceUnavailable as exc:
        return {"queue": queue, "leads": [], "waiting": None, "unavailable": exc.message}
    except ServiceError as exc:
        if exc.status == 404:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"There is no queue '{queue}'.") from None
        raise
    leads = [{**lead, "openable": lead_visible_to(user, {"owner": None, "team_id": lead.get("team_id"),
                                                          "queue": queue})}
             for lead in page.get("leads", [])]
    return {"queue": queue, "leads": leads, "waiting": page.get("waiting", len(leads)), "unavailable": None,
            "more": page.get("next_cursor") is not None}


def _table_context(user: User, table: dict[str, Any]) -> dict[str, Any]:
    return {**table, "can_claim_self": user.role == "rep" and user.rep_id is not None,
            "can_move": user.has_role("sales_manager"), "refresh_seconds": REFRESH_SECONDS, **FORMATTERS}


@router.get("/queues/{queue}", response_class=HTMLResponse, summary="A queue's waiting leads, refreshed live")
async def queue_page(request: Request, console: ConsoleDep, user: QueueWorker, queue: QueueId) -> HTMLResponse:
    table = await waiting_leads(console, user, queue)
    return await render(request, "queues/queue.html", _table_context(user, table))


@router.get("/queues/{queue}/leads", response_class=HTMLResponse,
            summary="The table of a queue's waiting leads (the fragment the queue page polls)")
async def queue_table(request: Request, console: ConsoleDep, user: QueueWorker, queue: QueueId) -> HTMLResponse:
    table = await waiting_leads(console, user, queue)
    return await render(request, "queues/_table.html", _table_context(user, table))


async def _claim(console: Any, lead_id: str, rep_id: str) -> str | None:
    """Claim the lead for ``rep_id`` through routing; why not, or None when done."""
    try:
        await console.clients.routing.post(f"/v1/leads/{lead_id}/claim", json={"rep_id": rep_id})
    except ServiceUnavailable as exc:
        return f"{exc.message}; try again shortly"
    except ServiceError as exc:
        if exc.status in (401, 403):
            raise
        return exc.detail if exc.status != 422 else "; ".join(str(e.get("message")) for e in exc.errors) or exc.detail
    return None


@router.post("/queues/{queue}/leads/{lead_id}/claim", response_class=HTMLResponse,
             summary="Claim a waiting lead: a rep for themself, a sales manager for a rep of their teams")
async def claim(
    request: Request, console: ConsoleDep, user: QueueWorker, queue: QueueId, lead_id: LeadId,
    rep_id: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    if user.role == "rep":
        if user.rep_id is None:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Your user is not linked to a rep yet.")
        rep_id = user.rep_id
    elif not rep_id:
        return redirect(request, f"/queues/{queue}/leads/{lead_id}/assign", "Choose the rep who claims the lead.",
                        kind="error")
    elif user.role != "admin" and rep_id not in {r["id"] for r in await assignable_reps(console.clients, user)}:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="You may claim only for the reps of your teams.")
    refusal = await _claim(console, lead_id, rep_id)
    if refusal is not None:
        return redirect(request, f"/queues/{queue}", f"The lead could not be claimed: {refusal}", kind="error")
    who = "you" if user.role == "rep" else f"rep {rep_id}"
    return redirect(request, f"/queues/{queue}", f"Lead {lead_id} is claimed for {who}.")


@router.get("/queues/{queue}/leads/{lead_id}/assign", response_class=HTMLResponse,
            summary="Claim a waiting lead for a rep, or assign it to a rep with a reason (admin, sales manager)")
async def assign_page(request: Request, console: ConsoleDep, user: Mover, queue: QueueId,
                      lead_id: LeadId) -> HTMLResponse:
    return await _assign_form(request, console, user, queue, lead_id, {}, {})


async def _assign_form(request: Request, console: Any, user: User, queue: str, lead_id: str,
                       errors: dict[str, str], values: dict[str, str], status_code: int = 200) -> HTMLResponse:
    table = await waiting_leads(console, user, queue)
    lead = next((item for item in table["leads"] if item["lead_id"] == lead_id), None)
    reps = await assignable_reps(console.clients, user)
    return await render(request, "queues/assign.html", {
        "queue": queue, "lead_id": lead_id, "lead": lead, "reps": reps, "errors": errors, "values": values,
        **FORMATTERS}, status_code=status_code)


@router.post("/queues/{queue}/leads/{lead_id}/assign", response_class=HTMLResponse,
             summary="Assign a waiting lead to a rep, with a reason (admin, sales manager)")
async def assign(
    request: Request, console: ConsoleDep, user: Mover, queue: QueueId, lead_id: LeadId,
    rep_id: Annotated[str, Form(max_length=100)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    errors = await move_lead(console, user, lead_id, rep_id=rep_id or None, queue=None, reason=reason)
    if errors:
        # The form has a rep and a reason: whatever routing says of anything else is about the rep.
        errors = {("reason" if name == "reason" else "rep_id"): message.replace("either a rep or a queue", "a rep")
                  for name, message in errors.items()}
        return await _assign_form(request, console, user, queue, lead_id, errors,
                                  {"rep_id": rep_id, "reason": reason}, status_code=422)
    return redirect(request, f"/queues/{queue}", f"Lead {lead_id} is assigned to rep {rep_id}.")


page = Page(router, (NavItem("Queues", "/queues", ("sales_manager", "rep")),))
