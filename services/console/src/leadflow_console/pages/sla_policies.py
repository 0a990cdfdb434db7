"""SLA policies (a time-to-first-touch target per tier, optionally per team, with business hours) and reps'
own calendars. The form's values go to sla as typed; sla checks them and each error it names is shown
next to its field.

An admin sets every policy and calendar. A sales manager sets the policies of the teams their user is linked to
and the calendars of those teams' reps: the tier defaults for every team are shown to them but are an admin's,
other teams' policies and reps are not listed, and opening or posting to one is a 404 (as for one that does not
exist)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from leadflow_console.auth import User, require_roles
from leadflow_console.clients import ServiceClients, ServiceError, ServiceUnavailable
from leadflow_console.deps import ConsoleDep
from leadflow_console.pages import NavItem, Page
from leadflow_console.templating import redirect, render
from leadflow_console.unavailable import degrades

HOME = "/sla-policies"
router = APIRouter(prefix=HOME, tags=["sla policies"])

POLICIES = "/v1/admin/sla-policies"
CALENDARS = "/v1/admin/sla-calendars"
TIERS = ("hot", "warm", "cold")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
POLICY_TEXT_FIELDS = ("name", "target_seconds", "warning_ratio", "breach_limit")
HOURS_TEXT_FIELDS = ("timezone", "start", "end", "holiday_country", "holiday_subdivision")
# The form posts a handful of short fields; anything longer is not a policy.
MAX_FIELD_CHARS = 1000

Manager = Annotated[User, Depends(require_roles("sales_manager"))]
PolicyId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
RepId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]

NEW_POLICY: dict[str, Any] = {"tier": "hot", "team_id": "", "name": "", "target_seconds": "300",
                              "warning_ratio": "0.8", "breach_limit": "3", "use_owner_hours": False, "active": True,
                              "business_hours": False, "timezone": "UTC", "days": ["0", "1", "2", "3", "4"],
                              "start": "09:00", "end": "17:00", "holiday_country": "", "holiday_subdivision": ""}


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip()[:MAX_FIELD_CHARS] if isinstance(value, str) else ""


def form_values(form: FormData) -> dict[str, Any]:
    """The submitted form as the template shows it again (strings, checkboxes as booleans)."""
    values: dict[str, Any] = {name: _text(form, name) for name in
                              ("tier", "team_id", *POLICY_TEXT_FIELDS, *HOURS_TEXT_FIELDS)}
    for box in ("use_owner_hours", "active", "business_hours"):
        values[box] = form.get(box) == "on"
    values["days"] = [d for d in form.getlist("days") if isinstance(d, str)][:7]
    return values


def hours_body(values: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {name: values[name] for name in HOURS_TEXT_FIELDS if values.get(name)}
    body["days"] = values.get("days") or []
    return body


def policy_body(values: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
    """What sla's policy API takes, from the form's values; sla checks the types and ranges."""
    body: dict[str, Any] = {name: values[name] for name in POLICY_TEXT_FIELDS if values.get(name)}
    if creating:
        body["tier"] = values.get("tier")
        if values.get("team_id"):
            body["team_id"] = values["team_id"]
    body["use_owner_hours"] = bool(values.get("use_owner_hours"))
    body["active"] = bool(values.get("active"))
    body["business_hours"] = hours_body(values) if values.get("business_hours") else None
    return body


def policy_values(policy: Mapping[str, Any]) -> dict[str, Any]:
    """A saved policy as the form shows it."""
    hours = policy.get("business_hours") or {}
    return {"tier": policy.get("tier"), "team_id": policy.get("team_id") or "", "name": policy.get("name") or "",
            "target_seconds": str(policy.get("target_seconds", "")),
            "warning_ratio": str(policy.get("warning_ratio", "")), "breach_limit": str(policy.get("breach_limit", "")),
            "use_owner_hours": bool(policy.get("use_owner_hours")), "active": bool(policy.get("active")),
            **_hours_values(hours)}


def _hours_values(hours: Mapping[str, Any]) -> dict[str, Any]:
    return {"business_hours": bool(hours), "timezone": hours.get("timezone") or "UTC",
            "days": [str(d) for d in hours.get("days", [0, 1, 2, 3, 4])],
            "start": str(hours.get("start") or "09:00")[:5], "end": str(hours.get("end") or "17:00")[:5],
            "holiday_country": hours.get("holiday_country") or "",
            "holiday_subdivision": hours.get("holiday_subdivision") or ""}


def field_errors(exc: ServiceError, prefix: str = "") -> dict[str, str]:
    """sla's field errors by the form's field path (``target_seconds``, ``business_hours.timezone``; ``prefix``
    is put before each, for a body that is the hours themselves); a refusal naming no field is under ``""``."""
    errors: dict[str, str] = {}
    for error in exc.errors:
        named = str(error.get("field") or "").removeprefix("body").lstrip(".")
        path = prefix + named if named else ""
        # An error inside a field (one of the days) is shown next to the field's input.
        if path.startswith("business_hours.") and path.count(".") > 1:
            path = ".".join(path.split(".")[:2])
        errors.setdefault(path, str(error.get("message") or "invalid"))
    if not errors:
        errors[""] = exc.detail
    return errors


def hours_summary(hours: Mapping[str, Any] | None) -> str:
    if not hours:
        return "around the clock"
    days = ", ".join(WEEKDAYS[int(d)][:3] for d in hours.get("days", []) if str(d).isdigit() and int(d) < 7)
    text = f"{days} {str(hours.get('start', ''))[:5]} to {str(hours.get('end', ''))[:5]} {hours.get('timezone', '')}"
    if hours.get("holiday_country"):
        text += f", {hours['holiday_country']} holidays"
    return text


NO_POLICY = "There is no such SLA policy of your teams."
NO_REP = "There is no such rep in your teams."


async def _teams(user: User, clients: ServiceClients) -> list[dict[str, Any]] | None:
    try:
        teams: list[dict[str, Any]] = await clients.routing.get("/v1/admin/teams")
    except ServiceError:
        return None
    return [team for team in teams if user.manages_team(team["id"])]


async def _calendars(user: User, clients: ServiceClients) -> list[dict[str, Any]] | None:
    """Every rep of the user's teams routing knows, with their calendar in sla (None: the policy's hours apply)."""
    try:
        reps: list[dict[str, Any]] = await clients.routing.get("/v1/admin/reps")
    except ServiceError:
        return None
    rows = []
    for rep in reps:
        if not user.manages_team(rep.get("team_id")):
            continue
        try:
            calendar = await clients.sla.get(f"{CALENDARS}/{rep['id']}")
        except ServiceError as exc:
            if exc.status != 404:
                raise
            calendar = None
        rows.append({"rep": rep, "calendar": calendar})
    return rows


async def _index(request: Request, user: User, clients: ServiceClients, *, values: Mapping[str, Any] | None = None,
                 errors: Mapping[str, str] | None = None, status_code: int = 200) -> Response:
    try:
        policies: list[dict[str, Any]] = await clients.sla.get(POLICIES)
        calendars = await _calendars(user, clients)
    except ServiceUnavailable:
        return await render(request, "sla_policies/index.html", {"unavailable": True})
    order = {tier: i for i, tier in enumerate(TIERS)}
    # A manager sees the tier defaults that apply to their teams too, without changing them.
    policies = [{**p, "editable": user.manages_team(p.get("team_id"))} for p in policies
                if p.get("team_id") is None or user.manages_team(p["team_id"])]
    policies.sort(key=lambda p: (order.get(p.get("tier", ""), 9), p.get("team_id") or ""))
    return await render(request, "sla_policies/index.html", {
        "unavailable": False, "policies": policies, "calendars": calendars, "teams": await _teams(user, clients),
        "every_team": user.manages_team(None), "values": values or NEW_POLICY, "errors": errors or {},
        "tiers": TIERS, "weekdays": WEEKDAYS, "hours_summary": hours_summary}, status_code=status_code)


async def _policy_of_theirs(user: User, clients: ServiceClients, policy_id: str) -> dict[str, Any]:
    policy: dict[str, Any] = await clients.sla.get(f"{POLICIES}/{policy_id}")
    if not user.manages_team(policy.get("team_id")):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NO_POLICY)
    return policy


async def _rep_of_theirs(user: User, clients: ServiceClients, rep_id: str) -> dict[str, Any]:
    rep: dict[str, Any] = await clients.routing.get(f"/v1/admin/reps/{rep_id}")
    if not user.manages_team(rep.get("team_id")):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NO_REP)
    return rep


@router.get("", response_class=HTMLResponse, summary="SLA policies, reps' calendars, and a form for a new policy")
@degrades(HOME)
async def policies_page(request: Request, user: Manager, console: ConsoleDep) -> Response:
    return await _index(request, user, console.clients)


@router.post("", response_class=HTMLResponse, summary="Create an SLA policy",
             responses={303: {"description": "Created: to the list"},
                        422: {"description": "Refused: each error next to its field"}})
@degrades(HOME)
async def create_policy(request: Request, user: Manager, console: ConsoleDep) -> Response:
    values = form_values(await request.form())
    if not user.manages_team(values["team_id"] or None):
        refusal = "must be one of your teams" if values["team_id"] or user.team_ids else "your user manages no team"
        return await _index(request, user, console.clients, values=values, errors={"team_id": refusal},
                            status_code=422)
    try:
        created = await console.clients.sla.post(POLICIES, policy_body(values, creating=True))
    except ServiceError as exc:
        if exc.status not in (400, 409, 422):
            raise
        return await _index(request, user, console.clients, values=values, errors=field_errors(exc),
                            status_code=422)
    return redirect(request, "/sla-policies", f"Policy “{created['name']}” created.")


@router.get("/calendars/{rep_id}", response_class=HTMLResponse, summary="A rep's own business hours")
@degrades(HOME)
async def calendar_page(request: Request, user: Manager, console: ConsoleDep, rep_id: RepId) -> Response:
    rep = await _rep_of_theirs(user, console.clients, rep_id)
    try:
        calendar = await console.clients.sla.get(f"{CALENDARS}/{rep_id}")
    except ServiceError as exc:
        if exc.status != 404:
            raise
        calendar = None
    values = _hours_values((calendar or {}).get("business_hours") or {"timezone": rep.get("timezone") or "UTC"})
    return await render(request, "sla_policies/calendar.html", {
        "rep": rep, "calendar": calendar, "values": values, "errors": {}, "weekdays": WEEKDAYS})


@router.post("/calendars/{rep_id}", response_class=HTMLResponse, summary="Set a rep's business hours",
             responses={303: {"description": "Saved: to the list"},
                        422: {"description": "Refused: each error next to its field"}})
@degrades(HOME)
async def calendar_save(request: Request, user: Manager, console: ConsoleDep, rep_id: RepId) -> Response:
    values = form_values(await request.form())
    rep = await _rep_of_theirs(user, console.clients, rep_id)
    try:
        await console.clients.sla.put(f"{CALENDARS}/{rep_id}", hours_body(values))
    except ServiceError as exc:
        if exc.status not in (400, 422):
            raise
        return await render(request, "sla_policies/calendar.html", {
            "rep": rep, "calendar": None, "values": values, "errors": field_errors(exc, prefix="business_hours."),
            "weekdays": WEEKDAYS}, status_code=422)
    return redirect(request, "/sla-policies", f"{rep.get('name') or rep_id}'s calendar saved.")


@router.post("/calendars/{rep_id}/delete", summary="Remove a rep's calendar (the policy's hours apply again)",
             responses={303: {"description": "Removed: to the list"}})
@degrades(HOME)
async def calendar_delete(request: Request, user: Manager, console: ConsoleDep, rep_id: RepId) -> Response:
    await _rep_of_theirs(user, console.clients, rep_id)
    await console.clients.sla.delete(f"{CALENDARS}/{rep_id}")
    return redirect(request, "/sla-policies", f"The calendar of {rep_id} is removed; the policies' hours apply.")


@router.get("/{policy_id}", response_class=HTMLResponse, summary="Edit an SLA policy")
@degrades(HOME)
async def policy_page(request: Request, user: Manager, console: ConsoleDep, policy_id: PolicyId) -> Response:
    policy = await _policy_of_theirs(user, console.clients, policy_id)
    return await render(request, "sla_policies/policy.html", {
        "policy": policy, "values": policy_values(policy), "errors": {}, "weekdays": WEEKDAYS})


@router.post("/{policy_id}", response_class=HTMLResponse, summary="Change an SLA policy",
             responses={303: {"description": "Saved: to the list"},
                        422: {"description": "Refused: each error next to its field"}})
@degrades(HOME)
async def policy_save(request: Request, user: Manager, console: ConsoleDep, policy_id: PolicyId) -> Response:
    values = form_values(await request.form())
    policy = await _policy_of_theirs(user, console.clients, policy_id)
    try:
        saved = await console.clients.sla.patch(f"{POLICIES}/{policy_id}", policy_body(values, creating=False))
    except ServiceError as exc:
        if exc.status not in (400, 422):
            raise
        return await render(request, "sla_policies/policy.html", {
            "policy": policy, "values": {**values, "tier": policy.get("tier"), "team_id": policy.get("team_id")},
            "errors": field_errors(exc), "weekdays": WEEKDAYS}, status_code=422)
    return redirect(request, "/sla-policies", f"Policy “{saved['name']}” saved; running clocks keep their deadline.")


@router.post("/{policy_id}/delete", summary="Remove an SLA policy (the tier's built-in default applies again)",
             responses={303: {"description": "Removed: to the list"}})
@degrades(HOME)
async def policy_delete(request: Request, user: Manager, console: ConsoleDep, policy_id: PolicyId) -> Response:
    await _policy_of_theirs(user, console.clients, policy_id)
    await console.clients.sla.delete(f"{POLICIES}/{policy_id}")
    return redirect(request, "/sla-policies", "Policy removed; the tier's default applies to new clocks.")


page = Page(router, nav=(NavItem("SLA policies", "/sla-policies", ("sales_manager",)),))
