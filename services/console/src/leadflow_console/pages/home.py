"""The page a user lands on after signing in: what their role may open."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from leadflow_console.auth import SignedIn
from leadflow_console.pages import Page
from leadflow_console.templating import render

router = APIRouter(tags=["home"])


@router.get("/home", response_class=HTMLResponse, summary="Home: what the signed-in user may open")
async def home(request: Request, user: SignedIn) -> HTMLResponse:
    return await render(request, "home/home.html")


page = Page(router)
