"""Admins manage the console's users: create one with a role (and the routing rep or teams it acts
for), reset a password, disable and enable. Disabling or resetting ends the user's sessions at once."""

from __future__ import annotations

import re
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from leadflow_console import store
from leadflow_console.auth import (
    ROLE_LABELS,
    ROLES,
    USERNAME_PATTERN,
    Role,
    User,
    create_user,
    hash_password,
    password_problem,
    require_roles,
)
from leadflow_console.clients import ServiceError, ServiceUnavailable
from leadflow_console.deps import Console, ConsoleDep
from leadflow_console.pages import NavItem, Page
from leadflow_console.templating import redirect, render

router = APIRouter(prefix="/users", tags=["users"])

Admin = Annotated[User, Depends(require_roles("admin"))]
ID_LIST = re.compile(r"[\s,]+")
Text = Annotated[str, Form(max_length=1024)]


def split_ids(raw: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(part for part in ID_LIST.split(raw.strip()) if part))


async def routing_link_problems(console: Console, role: str, rep_id: str, team_ids: tuple[str, ...]) -> dict[str, str]:
    """A rep user needs a routing rep, a sales manager at least one routing team; each must exist."""
    errors: dict[str, str] = {}
    if role == "rep" and not rep_id:
        errors["rep_id"] = "A rep user needs the routing rep id they act for."
    if role == "sales_manager" and not team_ids:
        errors["team_ids"] = "A sales manager needs the routing team ids they manage."
    checks = [("rep_id", f"/v1/admin/reps/{rep_id}", f"routing has no rep '{rep_id}'.")] if rep_id else []
    checks += [("team_ids", f"/v1/admin/teams/{team}", f"routing has no team '{team}'.") for team in team_ids]
    for field, path, missing in checks:
        if field in errors:
            continue
        try:
            await console.clients.routing.get(path)
        except ServiceUnavailable:
            errors[field] = "Routing is unavailable, so the link cannot be checked; try again shortly."
        except ServiceError as exc:
            errors[field] = missing if exc.status in (404, 422) else exc.message
    return errors


async def _users_page(request: Request, console: Console, *, form: dict[str, Any] | None = None,
                      errors: dict[str, str] | None = None, status_code: int = 200) -> HTMLResponse:
    users = await store.list_users(console.db)
    return await render(request, "users/list.html", {
        "users": users, "roles": [(r, ROLE_LABELS[r]) for r in ROLES], "role_labels": ROLE_LABELS,
        "form": form or {"role": "rep"}, "errors": errors or {},
    }, status_code=status_code)


@router.get("", response_class=HTMLResponse, summary="The console's users (admins)")
async def list_users(request: Request, console: ConsoleDep, _: Admin) -> HTMLResponse:
    return await _users_page(request, console)


@router.post("", response_class=HTMLResponse, summary="Create a console user",
             responses={303: {"description": "Created: back to the list"}, 422: {"description": "Invalid fields"}})
async def create_console_user(
    request: Request, console: ConsoleDep, _: Admin,
    username: Text = "", display_name: Text = "", role: Text = "", password: Text = "", rep_id: Text = "",
    team_ids: Text = "",
) -> Response:
    name = username.strip().lower()
    teams = split_ids(team_ids)
    form = {"username": username, "display_name": display_name, "role": role, "rep_id": rep_id,
            "team_ids": team_ids}
    errors: dict[str, str] = {}
    if not re.fullmatch(USERNAME_PATTERN, name):
        errors["username"] = "Use 1-64 lower-case letters, digits, dots, dashes or underscores, starting with a " \
                             "letter or digit."
    elif await store.user_by_username(console.db, name) is not None:
        errors["username"] = f"There is already a user '{name}'."
    if role not in ROLES:
        errors["role"] = "Choose a role."
    problem = password_problem(password)
    if problem:
        errors["password"] = problem.capitalize() + "."
    if len(display_name) > 255:
        errors["display_name"] = "At most 255 characters."
    if role in ROLES and not errors:
        errors |= await routing_link_problems(console, role, rep_id.strip(), teams)
    if errors:
        return await _users_page(request, console, form=form, errors=errors, status_code=422)
    await create_user(console.db, username=name, password=password, role=cast(Role, role),
                      display_name=display_name.strip() or name,
                      rep_id=rep_id.strip() or None if role == "rep" else None,
                      team_ids=teams if role == "sales_manager" else ())
    return redirect(request, "/users", f"User '{name}' created.")


async def _target(console: Console, user_id: str) -> Any:
    row = await store.user_by_id(console.db, user_id[:64])
    if row is None:
        raise HTTPException(404)
    return row


@router.post("/{user_id}/password", response_class=HTMLResponse, summary="Reset a user's password",
             responses={303: {"description": "Reset"}, 404: {"description": "No such user"}})
async def reset_password(request: Request, console: ConsoleDep, _: Admin, user_id: str,
                         password: Text = "") -> Response:
    row = await _target(console, user_id)
    problem = password_problem(password)
    if problem:
        return redirect(request, "/users", f"Password of '{row.username}' not reset: {problem}.", kind="error")
    await store.update_user(console.db, row.id, password_hash=await hash_password(password), failed_sign_ins=0,
                            locked_until=None)
    await store.delete_user_sessions(console.db, row.id)
    return redirect(request, "/users", f"Password of '{row.username}' reset; their sessions have ended.")


@router.post("/{user_id}/disable", response_class=HTMLResponse, summary="Disable a user (ends their sessions)",
             responses={303: {"description": "Disabled"}, 404: {"description": "No such user"}})
async def disable_user(request: Request, console: ConsoleDep, admin: Admin, user_id: str) -> Response:
    row = await _target(console, user_id)
    if row.id == admin.id:
        return redirect(request, "/users", "You cannot disable yourself.", kind="error")
    if row.role == "admin" and row.disabled_at is None and await store.count_active_admins(console.db) <= 1:
        return redirect(request, "/users", "The last enabled admin cannot be disabled.", kind="error")
    await store.update_user(console.db, row.id, disabled_at=console.clock.now())
    await store.delete_user_sessions(console.db, row.id)
    return redirect(request, "/users", f"User '{row.username}' disabled; their sessions have ended.")


@router.post("/{user_id}/enable", response_class=HTMLResponse, summary="Enable a disabled user",
             responses={303: {"description": "Enabled"}, 404: {"description": "No such user"}})
async def enable_user(request: Request, console: ConsoleDep, _: Admin, user_id: str) -> Response:
    row = await _target(console, user_id)
    await store.update_user(console.db, row.id, disabled_at=None, failed_sign_ins=0, locked_until=None)
    return redirect(request, "/users", f"User '{row.username}' enabled.")


page = Page(router, nav=(NavItem("Users", "/users", roles=("admin",)),))
