"""The sign-in page at ``/`` and signing out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from leadflow_console.auth import CurrentUser, SignInRefused, end_session, sign_in, start_session
from leadflow_console.deps import ConsoleDep
from leadflow_console.pages import Page
from leadflow_console.templating import redirect, render

router = APIRouter(tags=["sign-in"])

HOME = "/home"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this console only (never another site)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")) and "\n" not in target:
        return target
    return HOME


@router.get("/", response_class=HTMLResponse, summary="The sign-in page (signed in: to the home page)")
async def sign_in_page(request: Request, user: CurrentUser, next: str | None = None) -> Response:
    if user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return await render(request, "auth/sign_in.html", {"next": safe_next(next), "username": ""})


@router.post("/", response_class=HTMLResponse, summary="Sign in with a username and password",
             responses={303: {"description": "Signed in: to the home page"},
                        401: {"description": "Wrong credentials, or the account is disabled or locked"}})
async def sign_in_submit(
    request: Request,
    console: ConsoleDep,
    username: Annotated[str, Form(max_length=256)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2048)] = HOME,
) -> Response:
    result = await sign_in(console, username, password) if username and password else SignInRefused(
        "Enter your username and password.")
    if isinstance(result, SignInRefused):
        return await render(request, "auth/sign_in.html",
                            {"error": result.message, "next": safe_next(next), "username": username[:64]},
                            status_code=401)
    response = redirect(request, safe_next(next))
    await start_session(console, response, result)
    return response


@router.post("/sign-out", summary="Sign out (ends the session)", responses={303: {"description": "To sign-in"}})
async def sign_out(request: Request, console: ConsoleDep) -> Response:
    response = redirect(request, "/", "You are signed out.", kind="info")
    await end_session(console, request, response)
    return response


page = Page(router)
