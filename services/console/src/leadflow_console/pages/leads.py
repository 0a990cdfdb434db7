"""Leads: the search (sla's ``GET /v1/leads`` filters, a page at a time) and one page per lead (its journey,
enriched profile, score, routing decision, live SLA clock and webhooks), with reassign and webhook replay.

Scoping is server-side: a rep searches only the leads they own, a sales manager only their teams' leads,
and either gets a 404 for a lead that is not theirs (the same answer as for a lead that does not exist)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request, status
from fastapi.responses import HTMLResponse, Response

from leadflow_console.auth import User, lead_visible_to, require_roles
from leadflow_console.clients import ServiceClients, ServiceError, ServiceUnavailable
from leadflow_console.deps import ConsoleDep
from leadflow_console.formatting import FORMATTERS, parse_time
from leadflow_console.pages import NavItem, Page
from leadflow_console.templating import redirect, render

router = APIRouter(tags=["leads"])

LeadReader = Annotated[User, Depends(require_roles("marketing_ops", "sales_manager", "rep"))]
Mover = Annotated[User, Depends(require_roles("sales_manager"))]
Admin = Annotated[User, Depends(require_roles("admin"))]

LeadId = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")]
WebhookId = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")]

# sla's search filters, as the form names them; each answered by its own input on the search form.
TEXT_FILTERS = ("email", "company", "owner", "team", "queue", "source", "campaign", "form")
STAGES = ("captured", "mql", "accepted", "sql", "opportunity", "converted")
TIERS = ("hot", "warm", "cold")
SORTS = {"-captured_at": "Newest first", "captured_at": "Oldest first", "-score": "Highest score",
         "score": "Lowest score"}
PAGE_SIZE = 25
NO_LEAD = "There is no such lead, or it is not one of yours."


@dataclass(frozen=True)
class SearchScope:
    """What a user's search is narrowed to (``forced`` filters), or why they can search nothing."""

    forced: Mapping[str, str]
    refusal: str | None = None
    teams: tuple[str, ...] = ()


def search_scope(user: User, team: str | None) -> SearchScope:
    """A rep searches the leads they own; a sales manager one of their teams (``team`` when it is theirs,
    else their first); admins and marketing ops everything."""
    if user.role == "rep":
        if user.rep_id is None:
            return SearchScope({}, "Your user is not linked to a rep yet: an admin must link it.")
        return SearchScope({"owner": user.rep_id})
    if user.role == "sales_manager":
        if not user.team_ids:
            return SearchScope({}, "Your user manages no team yet: an admin must link it to your teams.")
        chosen = team if team in user.team_ids else user.team_ids[0]
        return SearchScope({"team": chosen}, teams=user.team_ids)
    return SearchScope({})


def field_errors(error: ServiceError) -> dict[str, str]:
    """A service's 422 as ``{field: message}`` (``request`` for what names no field)."""
    found: dict[str, str] = {}
    for item in error.errors:
        name = str(item.get("field") or "request").rsplit(".", 1)[-1]
        found.setdefault(name, str(item.get("message") or error.detail))
    return found or {"request": error.detail}


def _clean(value: str | None) -> str | None:
    value = value.strip() if value else None
    return value or None


@router.get("/leads", response_class=HTMLResponse, summary="Find leads (sla's lead search, scoped to the user)")
async def search_leads(
    request: Request,
    console: ConsoleDep,
    user: LeadReader,
    email: Annotated[str | None, Query(max_length=320)] = None,
    company: Annotated[str | None, Query(max_length=255)] = None,
    owner: Annotated[str | None, Query(max_length=64)] = None,
    team: Annotated[str | None, Query(max_length=64)] = None,
    queue: Annotated[str | None, Query(max_length=64)] = None,
    source: Annotated[str | None, Query(max_length=255)] = None,
    campaign: Annotated[str | None, Query(max_length=255)] = None,
    form: Annotated[str | None, Query(max_length=100)] = None,
    stage: Annotated[str | None, Query(max_length=20)] = None,
    tier: Annotated[str | None, Query(max_length=10)] = None,
    captured_from: Annotated[str | None, Query(max_length=40)] = None,
    captured_to: Annotated[str | None, Query(max_length=40)] = None,
    sort: Annotated[str | None, Query(max_length=20)] = None,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> HTMLResponse:
    texts = {"email": email, "company": company, "owner": owner, "team": team, "queue": queue, "source": source,
             "campaign": campaign, "form": form}
    filters = {name: v for name, value in texts.items() if (v := _clean(value)) is not None}
    choices = {"stage": _clean(stage), "tier": _clean(tier), "captured_from": _clean(captured_from),
               "captured_to": _clean(captured_to), "sort": _clean(sort)}
    errors = _choice_errors(choices)
    scope = search_scope(user, filters.get("team"))
    filters.update(scope.forced)
    asked = {**filters, **{k: v for k, v in choices.items() if v is not None}}
    searched = bool(asked.keys() - scope.forced.keys() - {"sort"}) or bool(scope.forced) or cursor is not None
    leads: list[dict[str, Any]] = []
    next_cursor: str | None = None
    unavailable: str | None = None
    if scope.refusal is None and not errors:
        params: dict[str, Any] = {**asked, "limit": PAGE_SIZE, "cursor": _clean(cursor)}
        try:
            found = await console.clients.sla.get("/v1/leads", params=params)
        except ServiceUnavailable as exc:
            unavailable = exc.message
        except ServiceError as exc:
            if exc.status != 422:
                raise
            errors = field_errors(exc)
        else:
            leads = found.get("leads", [])
            next_cursor = found.get("next_cursor")
    next_url = f"/leads?{urlencode({**asked, 'cursor': next_cursor})}" if next_cursor else None
    return await render(request, "leads/search.html", {
        "values": asked, "errors": errors, "scope": scope, "leads": leads, "next_url": next_url,
        "searched": searched, "unavailable": unavailable, "paged": cursor is not None,
        "first_query": urlencode(asked),
        "stage_options": [("", "Any stage"), *((s, s) for s in STAGES)],
        "tier_options": [("", "Any tier"), *((t, t) for t in TIERS)],
        "sort_options": list(SORTS.items()),
        "team_options": [(t, t) for t in scope.teams],
        **FORMATTERS,
    }, status_code=422 if errors else 200)


def _choice_errors(choices: dict[str, str | None]) -> dict[str, str]:
    """The search's choices that are none of those offered, each with what is."""
    errors: dict[str, str] = {}
    if choices["stage"] is not None and choices["stage"] not in STAGES:
        errors["stage"] = f"one of {', '.join(STAGES)}"
    if choices["tier"] is not None and choices["tier"] not in TIERS:
        errors["tier"] = f"one of {', '.join(TIERS)}"
    if choices["sort"] is not None and choices["sort"] not in SORTS:
        errors["sort"] = "not a sort order this search offers"
    return errors


# -- the lead page ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """What one service told about the lead: ``data``, or ``problem`` (unavailable, or not known there yet)."""

    data: Any = None
    problem: str | None = None


async def _section(call: Awaitable[Any], missing: str) -> Section:
    try:
        return Section(await call)
    except ServiceUnavailable as exc:
        return Section(problem=exc.message)
    except ServiceError as exc:
        if exc.status == 404:
            return Section(problem=missing)
        if exc.status in (401, 403):
            raise
        return Section(problem=exc.message)


def owner_of(assignment: Mapping[str, Any] | None) -> dict[str, Any]:
    """Whose the lead is, from routing's assignment: its owner (rep and team) and queue, under the names
    ``lead_visible_to`` reads."""
    if not assignment:
        return {}
    owner = assignment.get("owner") or {}
    rep_id, team_id = owner.get("rep_id"), assignment.get("team_id") or owner.get("team_id")
    return {"owner": {"rep_id": rep_id, "team_id": team_id} if rep_id else None, "rep_id": rep_id,
            "team_id": team_id, "queue": assignment.get("queue")}


async def visible_assignment(clients: ServiceClients, user: User, lead_id: str) -> Section:
    """Routing's assignment of the lead; a 404 when ``user`` may not see it (or it is unknown to a rep or
    manager: whose lead it is cannot be told before routing)."""
    assignment = await _section(clients.routing.get(f"/v1/leads/{lead_id}/assignment"),
                                "Routing has not routed this lead yet.")
    if user.role in ("admin", "marketing_ops"):
        return assignment
    if assignment.data is None:
        if assignment.problem and "unavailable" in assignment.problem:
            raise ServiceUnavailable("routing", "needed to tell whose lead this is")
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NO_LEAD)
    if not lead_visible_to(user, owner_of(assignment.data)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NO_LEAD)
    return assignment


def decisions(assignment: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Routing's decisions about the lead, newest first, each with its rules' conditions and candidates."""
    history = list((assignment or {}).get("history") or [])
    shaped = []
    for entry in reversed(history):
        audit = entry.get("audit") or {}
        shaped.append({**entry, "rules": audit.get("rules") or [], "candidates": audit.get("candidates") or [],
                       "chosen_rep_id": audit.get("chosen_rep_id")})
    return shaped


def clock_view(timeline: Mapping[str, Any] | None, now: Any) -> dict[str, Any]:
    """The running SLA clock (``current``), its remaining seconds worked out now, and the lead's outcome."""
    sla = (timeline or {}).get("sla") or {}
    current = sla.get("current")
    remaining = None
    if current and current.get("due_at") and current.get("status") not in ("stopped", "superseded"):
        due = parse_time(current["due_at"])
        remaining = (due - now).total_seconds() if due else None
    return {"state": sla.get("state"), "outcome": sla.get("outcome"), "breach_count": sla.get("breach_count", 0),
            "current": current, "remaining": remaining, "overdue": remaining is not None and remaining < 0}


async def lead_context(console: Any, user: User, lead_id: str) -> dict[str, Any]:
    clients: ServiceClients = console.clients
    assignment = await visible_assignment(clients, user, lead_id)
    timeline, profile, score, deliveries = await asyncio.gather(
        _section(clients.sla.get(f"/v1/leads/{lead_id}/timeline"), "SLA has no event of this lead yet."),
        _section(clients.enrichment.get(f"/v1/leads/{lead_id}"), "Enrichment has not enriched this lead yet."),
        _section(clients.scoring.get(f"/v1/leads/{lead_id}/score"), "Scoring has not scored this lead yet."),
        _section(clients.routing.get("/v1/admin/webhooks/deliveries", params={"lead_id": lead_id, "limit": 100}),
                 "No webhook was sent for this lead."),
    )
    if all(s.data is None and s.problem and "unavailable" not in s.problem
           for s in (assignment, timeline, profile, score)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NO_LEAD)
    can_move = user.has_role("sales_manager")
    reps: list[dict[str, Any]] = []
    queues: list[dict[str, Any]] = []
    if can_move and assignment.data is not None:
        reps, queues = await asyncio.gather(assignable_reps(clients, user), known_queues(clients))
    lead_profile = (profile.data or {}).get("profile") or {}
    name = " ".join(p for p in (lead_profile.get("first_name"), lead_profile.get("last_name")) if p)
    return {
        "lead_id": lead_id, "lead_profile": lead_profile, "lead_name": name or lead_profile.get("email") or lead_id,
        "assignment": assignment, "timeline": timeline, "profile": profile, "score": score,
        "deliveries": deliveries, "decisions": decisions(assignment.data), "clock": clock_view(timeline.data,
                                                                                              console.clock.now()),
        "can_move": can_move, "can_replay": user.role == "admin", "reps": reps, "queues": queues, **FORMATTERS,
    }


async def assignable_reps(clients: ServiceClients, user: User) -> list[dict[str, Any]]:
    """The active reps ``user`` may give a lead to: any for an admin, their teams' for a sales manager."""
    try:
        reps: list[dict[str, Any]] = await clients.routing.get("/v1/admin/reps")
    except ServiceUnavailable:
        return []
    active = [r for r in reps if r.get("active", True)]
    if user.role == "admin":
        return active
    return [r for r in active if r.get("team_id") in user.team_ids]


async def known_queues(clients: ServiceClients) -> list[dict[str, Any]]:
    try:
        queues: list[dict[str, Any]] = await clients.routing.get("/v1/admin/queues")
    except ServiceUnavailable:
        return []
    return queues


@router.get("/leads/{lead_id}", response_class=HTMLResponse, summary="One lead: journey, profile, score, "
            "routing decision, SLA clock, webhooks")
async def lead_page(request: Request, console: ConsoleDep, user: LeadReader, lead_id: LeadId) -> HTMLResponse:
    return await render(request, "leads/lead.html", await lead_context(console, user, lead_id))


@router.get("/leads/{lead_id}/sla", response_class=HTMLResponse,
            summary="The lead's SLA clock (the fragment the lead page polls)")
async def lead_sla_fragment(request: Request, console: ConsoleDep, user: LeadReader, lead_id: LeadId) -> HTMLResponse:
    await visible_assignment(console.clients, user, lead_id)
    timeline = await _section(console.clients.sla.get(f"/v1/leads/{lead_id}/timeline"),
                              "SLA has no event of this lead yet.")
    return await render(request, "leads/_sla.html", {"lead_id": lead_id, "timeline": timeline,
                                                      "clock": clock_view(timeline.data, console.clock.now()),
                                                      **FORMATTERS})


async def move_lead(console: Any, user: User, lead_id: str, *, rep_id: str | None, queue: str | None,
                    reason: str) -> dict[str, str]:
    """Reassign the lead (to a rep or a queue, with a reason) for ``user``; the field errors, empty when done."""
    errors: dict[str, str] = {}
    if not reason.strip():
        errors["reason"] = "say why the lead moves"
    if (rep_id is None) == (queue is None):
        errors["target"] = "choose either a rep or a queue"
    if rep_id is not None and user.role != "admin":
        allowed = {r["id"] for r in await assignable_reps(console.clients, user)}
        if rep_id not in allowed:
            errors["target"] = "you may give leads only to the reps of your teams"
    if errors:
        return errors
    body = {"rep_id": rep_id, "queue": queue, "reason": reason.strip()}
    try:
        await console.clients.routing.post(f"/v1/leads/{lead_id}/reassign",
                                           json={k: v for k, v in body.items() if v is not None})
    except ServiceUnavailable as exc:
        return {"target": f"{exc.message}: the lead did not move; try again shortly."}
    except ServiceError as exc:
        if exc.status == 404:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NO_LEAD) from None
        if exc.status in (401, 403):
            raise
        found = field_errors(exc) if exc.status == 422 else {"target": exc.detail}
        return {("target" if k in ("rep_id", "queue", "body", "request") else k): v for k, v in found.items()}
    return {}


@router.post("/leads/{lead_id}/reassign", response_class=HTMLResponse,
             summary="Reassign the lead to a rep or a queue, with a reason (admin, sales manager)")
async def reassign(
    request: Request, console: ConsoleDep, user: Mover, lead_id: LeadId,
    target: Annotated[str, Form(max_length=120)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    await visible_assignment(console.clients, user, lead_id)
    kind, _, name = target.partition(":")
    rep_id = name if kind == "rep" and name else None
    queue = name if kind == "queue" and name else None
    errors = await move_lead(console, user, lead_id, rep_id=rep_id, queue=queue, reason=reason)
    if not errors:
        moved_to = f"rep {rep_id}" if rep_id else f"queue {queue}"
        return redirect(request, f"/leads/{lead_id}", f"The lead moved to {moved_to}.")
    context = await lead_context(console, user, lead_id)
    return await render(request, "leads/lead.html", {**context, "move_errors": errors,
                                                      "move_values": {"target": target, "reason": reason}},
                        status_code=422)


@router.post("/leads/{lead_id}/webhooks/{webhook_id}/replay", response_class=HTMLResponse,
             summary="Send a webhook delivery of the lead again (admin)")
async def replay_webhook(request: Request, console: ConsoleDep, user: Admin, lead_id: LeadId,
                         webhook_id: WebhookId) -> Response:
    try:
        delivery = await console.clients.routing.get(f"/v1/admin/webhooks/deliveries/{webhook_id}")
        if delivery.get("lead_id") != lead_id:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="There is no such webhook delivery of this lead.")
        await console.clients.routing.post(f"/v1/admin/webhooks/deliveries/{webhook_id}/replay")
    except ServiceUnavailable as exc:
        return redirect(request, f"/leads/{lead_id}#webhooks",
                        f"{exc.message}: webhook {webhook_id} was not replayed; try again shortly.", kind="error")
    except ServiceError as exc:
        if exc.status == 404:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="There is no such webhook delivery.") from None
        raise
    return redirect(request, f"/leads/{lead_id}#webhooks", f"Webhook {webhook_id} is being sent again.")


page = Page(router, (NavItem("Leads", "/leads", ("marketing_ops", "sales_manager", "rep")),))
