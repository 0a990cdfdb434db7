"""Routing's people: reps (team, territories, capacity, working hours, out-of-office, notification channels) and
teams (strategy, manager, escalation, fallback queue).

An admin manages every rep and team, and alone makes and removes teams. A sales manager manages the teams their
user is linked to and those teams' reps: they see only those, make reps only in them, move reps only between
them, and get a 404 for any other rep or team (the answer for one that does not exist)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request, status
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from leadflow_console.auth import User, require_roles
from leadflow_console.clients import ServiceClient, ServiceError, ServiceUnavailable
from leadflow_console.deps import ConsoleDep
from leadflow_console.edits import (
    FieldErrors,
    attempt,
    is_refusal,
    optional_int,
    optional_text,
    out_of_office_lines,
    out_of_office_text,
    refusal_errors,
    text_list,
    working_hours_lines,
    working_hours_text,
)
from leadflow_console.pages import NavItem, Page
from leadflow_console.templating import redirect, render

router = APIRouter(tags=["people"])
Manager = Annotated[User, Depends(require_roles("sales_manager"))]
Admin = Annotated[User, Depends(require_roles("admin"))]
RoutingId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]

REP_FIELDS = ("id", "name", "email", "team_id", "territories", "weight", "daily_capacity", "max_open_leads",
              "timezone", "working_hours", "out_of_office", "active")
TEAM_FIELDS = ("id", "name", "strategy", "manager_rep_id", "escalate_after_breaches", "fallback_queue")
NOTIFY_FIELDS = ("channels", "notify_email", "slack_user_id")
STRATEGIES = (("round_robin", "Round robin"), ("weighted", "Weighted (by each rep's weight)"),
              ("load_balanced", "Load balanced (fewest open leads)"))


class RepBoxes(BaseModel):
    id: str = Field(default="", max_length=64)
    name: str = Field(default="", max_length=255)
    email: str = Field(default="", max_length=320)
    team_id: str = Field(default="", max_length=64)
    territories: str = Field(default="", max_length=5_000)
    weight: str = Field(default="1", max_length=10)
    daily_capacity: str = Field(default="", max_length=10)
    max_open_leads: str = Field(default="", max_length=10)
    timezone: str = Field(default="UTC", max_length=64)
    working_hours: str = Field(default="", max_length=5_000)
    out_of_office: str = Field(default="", max_length=20_000)
    active: bool = False

    def body(self) -> dict[str, Any]:
        """Routing's rep body: every field, blanks clearing what may be cleared."""
        body: dict[str, Any] = {
            "name": self.name.strip(),
            "email": optional_text(self.email),
            "team_id": optional_text(self.team_id),
            "territories": text_list(self.territories),
            "daily_capacity": optional_int("daily_capacity", self.daily_capacity),
            "max_open_leads": optional_int("max_open_leads", self.max_open_leads),
            "working_hours": working_hours_lines("working_hours", self.working_hours),
            "out_of_office": out_of_office_lines("out_of_office", self.out_of_office),
            "active": self.active,
        }
        weight = optional_int("weight", self.weight)
        if weight is not None:
            body["weight"] = weight
        if self.timezone.strip():
            body["timezone"] = self.timezone.strip()
        return body

    def new_body(self) -> dict[str, Any]:
        return _with_id(self.body(), self.id)

    @classmethod
    def of(cls, rep: dict[str, Any]) -> RepBoxes:
        return cls(id=rep["id"], name=rep["name"], email=rep.get("email") or "", team_id=rep.get("team_id") or "",
                   territories=", ".join(rep.get("territories") or []), weight=str(rep.get("weight", 1)),
                   daily_capacity=_text(rep.get("daily_capacity")), max_open_leads=_text(rep.get("max_open_leads")),
                   timezone=rep.get("timezone") or "UTC", working_hours=working_hours_text(rep.get("working_hours")),
                   out_of_office=out_of_office_text(rep.get("out_of_office") or []), active=bool(rep.get("active")))


class TeamBoxes(BaseModel):
    id: str = Field(default="", max_length=64)
    name: str = Field(default="", max_length=255)
    strategy: str = Field(default="round_robin", max_length=32)
    manager_rep_id: str = Field(default="", max_length=64)
    escalate_after_breaches: str = Field(default="", max_length=10)
    fallback_queue: str = Field(default="", max_length=64)

    def body(self) -> dict[str, Any]:
        return {"name": self.name.strip(), "strategy": self.strategy,
                "manager_rep_id": optional_text(self.manager_rep_id),
                "escalate_after_breaches": optional_int("escalate_after_breaches", self.escalate_after_breaches),
                "fallback_queue": optional_text(self.fallback_queue)}

    def new_body(self) -> dict[str, Any]:
        return _with_id(self.body(), self.id)

    @classmethod
    def of(cls, team: dict[str, Any]) -> TeamBoxes:
        return cls(id=team["id"], name=team["name"], strategy=team["strategy"],
                   manager_rep_id=team.get("manager_rep_id") or "",
                   escalate_after_breaches=_text(team.get("escalate_after_breaches")),
                   fallback_queue=team.get("fallback_queue") or "")


class NotifyBoxes(BaseModel):
    channels: list[str] = Field(default_factory=list, max_length=2)
    notify_email: str = Field(default="", max_length=320)
    slack_user_id: str = Field(default="", max_length=40)

    def body(self) -> dict[str, Any]:
        return {"channels": self.channels, "email": optional_text(self.notify_email),
                "slack_user_id": optional_text(self.slack_user_id)}

    @classmethod
    def of(cls, settings: dict[str, Any]) -> NotifyBoxes:
        return cls(channels=settings.get("channels") or [], notify_email=settings.get("email") or "",
                   slack_user_id=settings.get("slack_user_id") or "")


def _with_id(body: dict[str, Any], given_id: str) -> dict[str, Any]:
    """A new rep's or team's body: routing makes up an id when none is given."""
    return {**body, "id": given_id.strip()} if given_id.strip() else body


def _text(value: Any) -> str:
    return "" if value is None else str(value)


# -- a manager's reach ----------------------------------------------------------------------

NO_REP = "There is no such rep in your teams."
NO_TEAM = "There is no such team among yours."
NOT_YOUR_TEAM = "must be one of your teams"
NOT_YOUR_REP = "must be a rep of your teams"


async def _reachable_rep(user: User, routing: ServiceClient, rep_id: str) -> dict[str, Any]:
    rep: dict[str, Any] = await routing.get(f"/v1/admin/reps/{rep_id}")
    if not user.manages_team(rep.get("team_id")):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NO_REP)
    return rep


async def _reachable_team(user: User, routing: ServiceClient, team_id: str) -> dict[str, Any]:
    if not user.manages_team(team_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NO_TEAM)
    team: dict[str, Any] = await routing.get(f"/v1/admin/teams/{team_id}")
    return team


def _team_refused(user: User, boxes: RepBoxes) -> FieldErrors:
    """A manager's rep must stay in one of their teams (no team would put it out of their reach too)."""
    errors = FieldErrors()
    if not user.manages_team(boxes.team_id.strip() or None):
        errors.add("team_id", NOT_YOUR_TEAM)
    return errors


async def _manager_refused(user: User, routing: ServiceClient, boxes: TeamBoxes, team: dict[str, Any]) -> FieldErrors:
    """A sales manager names as their team's manager (whom its leads escalate to) a rep of their teams; a
    manager an admin named stays as it is. Another team's rep is refused like one that does not exist."""
    errors = FieldErrors()
    rep_id = boxes.manager_rep_id.strip()
    if user.role == "admin" or not rep_id or rep_id == (team.get("manager_rep_id") or ""):
        return errors
    try:
        rep: dict[str, Any] = await routing.get(f"/v1/admin/reps/{quote(rep_id, safe='')}")
    except ServiceError as exc:
        if exc.status != 404:
            raise
        rep = {}
    if not rep or not user.manages_team(rep.get("team_id")):
        errors.add("manager_rep_id", NOT_YOUR_REP)
    return errors


# -- the list -------------------------------------------------------------------------------


@router.get("/people", response_class=HTMLResponse, summary="Reps and teams")
async def people(request: Request, user: Manager, console: ConsoleDep) -> Response:
    try:
        reps = await console.clients.routing.get("/v1/admin/reps")
        teams = await console.clients.routing.get("/v1/admin/teams")
    except ServiceUnavailable:
        reps = teams = None
    else:
        reps = [rep for rep in reps if user.manages_team(rep.get("team_id"))]
        teams = [team for team in teams if user.manages_team(team["id"])]
    unlinked = user.role == "sales_manager" and not user.team_ids
    return await render(request, "people/list.html", {"reps": reps, "teams": teams, "unlinked": unlinked,
                                                       "shapes_teams": user.role == "admin"})


# -- reps -----------------------------------------------------------------------------------


@router.get("/people/reps/new", response_class=HTMLResponse, summary="A new rep")
async def new_rep(request: Request, user: Manager, console: ConsoleDep) -> Response:
    return await _rep_editor(request, user, console.clients.routing, RepBoxes(active=True), None, FieldErrors())


@router.post("/people/reps/new", response_class=HTMLResponse, summary="Create a rep",
             responses={303: {"description": "Created"}, 422: {"description": "Refused; see the page"}})
async def create_rep(request: Request, user: Manager, console: ConsoleDep,
                     boxes: Annotated[RepBoxes, Form()]) -> Response:
    routing = console.clients.routing
    refused = _team_refused(user, boxes)
    if refused:
        return await _rep_editor(request, user, routing, boxes, None, refused)
    created = await attempt(lambda: routing.post("/v1/admin/reps", json=boxes.new_body()), REP_FIELDS)
    if isinstance(created, FieldErrors):
        return await _rep_editor(request, user, routing, boxes, None, created)
    return redirect(request, f"/people/reps/{quote(created['id'])}", f"Rep '{created['name']}' created.")


@router.get("/people/reps/{rep_id}", response_class=HTMLResponse, summary="One rep: edit, availability, channels")
async def edit_rep(request: Request, rep_id: RoutingId, user: Manager, console: ConsoleDep) -> Response:
    routing = console.clients.routing
    rep = await _reachable_rep(user, routing, rep_id)
    return await _rep_editor(request, user, routing, RepBoxes.of(rep), rep, FieldErrors())


@router.post("/people/reps/{rep_id}", response_class=HTMLResponse, summary="Change a rep",
             responses={303: {"description": "Saved"}, 422: {"description": "Refused; see the page"}})
async def update_rep(request: Request, rep_id: RoutingId, user: Manager, console: ConsoleDep,
                     boxes: Annotated[RepBoxes, Form()]) -> Response:
    routing = console.clients.routing
    rep = await _reachable_rep(user, routing, rep_id)
    boxes.id = rep_id
    refused = _team_refused(user, boxes)
    if refused:
        return await _rep_editor(request, user, routing, boxes, rep, refused)
    saved = await attempt(lambda: routing.patch(f"/v1/admin/reps/{rep_id}", json=boxes.body()), REP_FIELDS)
    if isinstance(saved, FieldErrors):
        return await _rep_editor(request, user, routing, boxes, rep, saved)
    return redirect(request, f"/people/reps/{rep_id}", "Rep saved.")


@router.post("/people/reps/{rep_id}/notifications", response_class=HTMLResponse,
             summary="Set how a rep is told of their leads",
             responses={303: {"description": "Saved"}, 422: {"description": "Refused; see the page"}})
async def update_notifications(request: Request, rep_id: RoutingId, user: Manager, console: ConsoleDep,
                               boxes: Annotated[NotifyBoxes, Form()]) -> Response:
    routing = console.clients.routing
    rep = await _reachable_rep(user, routing, rep_id)
    try:
        await routing.put(f"/v1/admin/reps/{rep_id}/notifications", json=boxes.body())
    except ServiceError as exc:
        if not is_refusal(exc) or exc.status == 404:
            raise
        errors = refusal_errors(exc, NOTIFY_FIELDS, aliases={"email": "notify_email"})
        return await _rep_editor(request, user, routing, RepBoxes.of(rep), rep, FieldErrors(), notify=boxes,
                                 notify_errors=errors)
    return redirect(request, f"/people/reps/{rep_id}", "Notification channels saved.")


@router.post("/people/reps/{rep_id}/deactivate", response_class=HTMLResponse,
             summary="Deactivate a rep (no new leads; kept for the audit trail)",
             responses={303: {"description": "Done"}})
async def deactivate_rep(request: Request, rep_id: RoutingId, user: Manager, console: ConsoleDep) -> Response:
    await _reachable_rep(user, console.clients.routing, rep_id)
    await console.clients.routing.delete(f"/v1/admin/reps/{rep_id}")
    return redirect(request, f"/people/reps/{rep_id}", "Rep deactivated: routing gives them no new lead.")


async def _rep_editor(request: Request, user: User, routing: ServiceClient, boxes: RepBoxes,
                      rep: dict[str, Any] | None, errors: FieldErrors, *, notify: NotifyBoxes | None = None,
                      notify_errors: FieldErrors | None = None) -> HTMLResponse:
    teams = [team for team in await routing.get("/v1/admin/teams") if user.manages_team(team["id"])]
    if rep is not None and notify is None:
        notify = NotifyBoxes.of(await routing.get(f"/v1/admin/reps/{rep['id']}/notifications"))
    failed = bool(errors) or bool(notify_errors)
    return await render(request, "people/rep.html", {
        "boxes": boxes, "rep": rep, "errors": errors, "teams": teams, "notify": notify,
        "notify_errors": notify_errors or FieldErrors(), "any_team": user.role == "admin",
    }, status_code=422 if failed else 200)


# -- teams ----------------------------------------------------------------------------------


@router.get("/people/teams/new", response_class=HTMLResponse, summary="A new team")
async def new_team(request: Request, user: Admin) -> Response:
    return await _team_editor(request, user, TeamBoxes(), None, FieldErrors())


@router.post("/people/teams/new", response_class=HTMLResponse, summary="Create a team",
             responses={303: {"description": "Created"}, 422: {"description": "Refused; see the page"}})
async def create_team(request: Request, user: Admin, console: ConsoleDep,
                      boxes: Annotated[TeamBoxes, Form()]) -> Response:
    created = await attempt(lambda: console.clients.routing.post("/v1/admin/teams", json=boxes.new_body()),
                            TEAM_FIELDS)
    if isinstance(created, FieldErrors):
        return await _team_editor(request, user, boxes, None, created)
    return redirect(request, f"/people/teams/{quote(created['id'])}", f"Team '{created['name']}' created.")


@router.get("/people/teams/{team_id}", response_class=HTMLResponse, summary="One team")
async def edit_team(request: Request, team_id: RoutingId, user: Manager, console: ConsoleDep) -> Response:
    team = await _reachable_team(user, console.clients.routing, team_id)
    return await _team_editor(request, user, TeamBoxes.of(team), team, FieldErrors())


@router.post("/people/teams/{team_id}", response_class=HTMLResponse, summary="Change a team",
             responses={303: {"description": "Saved"}, 422: {"description": "Refused; see the page"}})
async def update_team(request: Request, team_id: RoutingId, user: Manager, console: ConsoleDep,
                      boxes: Annotated[TeamBoxes, Form()]) -> Response:
    team = await _reachable_team(user, console.clients.routing, team_id)
    boxes.id = team_id
    refused = await _manager_refused(user, console.clients.routing, boxes, team)
    if refused:
        return await _team_editor(request, user, boxes, team, refused)
    saved = await attempt(lambda: console.clients.routing.patch(f"/v1/admin/teams/{team_id}", json=boxes.body()),
                          TEAM_FIELDS)
    if isinstance(saved, FieldErrors):
        return await _team_editor(request, user, boxes, team, saved)
    return redirect(request, f"/people/teams/{team_id}", "Team saved.")


@router.post("/people/teams/{team_id}/delete", response_class=HTMLResponse,
             summary="Remove a team no rep is in and no active rule names",
             responses={303: {"description": "Removed"}, 409: {"description": "Still in use; the page says by what"}})
async def delete_team(request: Request, team_id: RoutingId, user: Admin, console: ConsoleDep) -> Response:
    try:
        await console.clients.routing.delete(f"/v1/admin/teams/{team_id}")
    except ServiceError as exc:
        if exc.status != 409:
            raise
        return redirect(request, f"/people/teams/{team_id}", f"The team stays: {exc.detail}", kind="error")
    return redirect(request, "/people", f"Team '{team_id}' removed.")


async def _team_editor(request: Request, user: User, boxes: TeamBoxes, team: dict[str, Any] | None,
                       errors: FieldErrors) -> HTMLResponse:
    return await render(request, "people/team.html", {
        "boxes": boxes, "team": team, "errors": errors, "strategies": STRATEGIES,
        "shapes_teams": user.role == "admin",
    }, status_code=422 if errors else 200)


page = Page(router, (NavItem("People", "/people", ("sales_manager",)),))
