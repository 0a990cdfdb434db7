"""Rendering pages: every template gets the signed-in user, the navigation their role may open, the
CSRF token and the flash messages left by the previous request (a redirect after a form post)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeSerializer

from leadflow_console.auth import (
    CSRF_FIELD,
    CSRF_HEADER,
    csrf_token,
    current_user,
    presession_to_set,
    set_presession_cookie,
)
from leadflow_console.deps import request_console
from leadflow_console.pages import NavItem

FLASH_COOKIE = "console_flash"
FLASH_KINDS = frozenset({"info", "success", "error"})

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def _flash_serializer(request: Request) -> URLSafeSerializer:
    return URLSafeSerializer(request_console(request).settings.signing_key(), salt="leadflow-console-flash")


def read_flashes(request: Request) -> list[dict[str, str]]:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return []
    try:
        loaded = _flash_serializer(request).loads(raw)
    except BadSignature:
        return []
    return [m for m in loaded if isinstance(m, dict) and m.get("kind") in FLASH_KINDS] if isinstance(
        loaded, list) else []


def redirect(request: Request, url: str, message: str | None = None, kind: str = "success") -> RedirectResponse:
    """A 303 to ``url`` (what a form post answers), leaving ``message`` for the next page to show.
    An htmx request is sent there with ``HX-Redirect``."""
    response = RedirectResponse(url, status_code=303)
    if request.headers.get("hx-request"):
        response.headers["HX-Redirect"] = url
    if message:
        flashes = [*read_flashes(request), {"kind": kind, "text": message}]
        response.set_cookie(FLASH_COOKIE, _flash_serializer(request).dumps(flashes), httponly=True,
                            samesite="lax", secure=request_console(request).settings.secure_cookies, path="/")
    return response


def navigation(request: Request, role: str) -> list[NavItem]:
    return [item for item in request_console(request).navigation if item.visible_to(role)]


async def render(request: Request, template: str, context: Mapping[str, Any] | None = None, *,
                 status_code: int = 200, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """``template`` with the shared context; flash messages shown here are cleared."""
    console = request_console(request)
    user = await current_user(request)
    flashes = read_flashes(request)
    presession = presession_to_set(console, request) if user is None else None
    token = csrf_token(console, request)
    shared = {
        "user": user,
        "nav": navigation(request, user.role) if user is not None else [],
        "csrf_token": token,
        "csrf_field": CSRF_FIELD,
        "htmx_headers": json.dumps({CSRF_HEADER: token}),
        "flashes": flashes,
        "current_path": request.url.path,
    }
    response = templates.TemplateResponse(request, template, {**shared, **(context or {})},
                                          status_code=status_code, headers=dict(headers or {}))
    if presession is not None:
        set_presession_cookie(console, response, presession)
    if flashes:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response
