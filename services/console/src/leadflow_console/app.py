"""The console's app factory: pages (``PAGES``), static files, error pages, security headers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadflow_console.auth import SignInRequired, verify_csrf
from leadflow_console.clients import ServiceClients, ServiceError, ServiceUnavailable
from leadflow_console.deps import Console, ConsoleDep
from leadflow_console.pages import (
    Page,
    accounts,
    api_keys,
    forms,
    home,
    leads,
    people,
    queues,
    reports,
    routing_rules,
    scoring_model,
    sign_in,
    sla_policies,
    spend,
    users,
    webhooks,
)
from leadflow_console.provisioning import KeptKeys
from leadflow_console.settings import Settings
from leadflow_console.templating import render
from leadflow_kit.clock import Clock
from leadflow_kit.db import Database
from leadflow_kit.failures import is_infrastructure_error
from leadflow_kit.logging import configure_logging
from leadflow_kit.platform import attach_deps
from leadflow_kit.version import VERSION

log = logging.getLogger(__name__)

# Every area of the console, in navigation order; each engineer adds their area's line.
PAGES: list[Page] = [
    sign_in.page,
    home.page,
    leads.page,
    queues.page,
    forms.page,
    scoring_model.page,
    routing_rules.page,
    people.page,
    sla_policies.page,
    accounts.page,
    webhooks.page,
    api_keys.page,
    reports.page,
    spend.page,
    users.page,
]

STATIC = Path(__file__).parent / "static"
CHECK_TIMEOUT_SECONDS = 2.0


def create_app(settings: Settings, *, clock: Clock | None = None,
               transport: httpx.AsyncBaseTransport | None = None, kept_keys: Sequence[str] = ()) -> FastAPI:
    """``transport`` replaces the network under the service clients (unit tests only); ``kept_keys`` names the
    services whose key ``provision-keys`` keeps (read again when the service refuses it)."""
    db = Database(settings.database_url, pool_size=settings.database_pool_size)
    replacement = KeptKeys(settings, db, kept_keys).replacement if kept_keys else None
    console = Console(settings=settings, db=db,
                      clients=ServiceClients(settings, transport=transport, replacement=replacement))
    if clock is not None:
        console.clock = clock

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level)
        log.info("console started on %s:%s", settings.host, settings.port)
        try:
            yield
        finally:
            await console.clients.aclose()
            await console.db.dispose()

    app = FastAPI(title="LeadFlow console", version=VERSION, lifespan=lifespan, docs_url=None, redoc_url=None)
    console.navigation = [item for page in PAGES for item in page.nav]
    attach_deps(app, console)
    app.add_middleware(SecurityHeadersMiddleware, capture_url=settings.capture_public())
    if "*" not in settings.trusted_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for page in PAGES:
        app.include_router(page.router, dependencies=[Depends(verify_csrf)])
    app.include_router(_probes())
    _install_error_pages(app)
    return app


def _probes() -> APIRouter:
    router = APIRouter(tags=["platform"])

    @router.get("/healthz", summary="Liveness, and which release runs")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": "console", "version": VERSION}

    @router.get("/readyz", summary="Readiness: the console's database is reachable",
                responses={503: {"description": "The database is unreachable"}})
    async def readyz(console: ConsoleDep) -> JSONResponse:
        try:
            await asyncio.wait_for(console.db.ping(), CHECK_TIMEOUT_SECONDS)
        except Exception as exc:
            return JSONResponse({"status": "not_ready", "checks": {"database": f"unreachable: {type(exc).__name__}"}},
                                status_code=503)
        return JSONResponse({"status": "ready", "checks": {"database": "ok"}})

    return router


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith(("/healthz", "/readyz", "/static"))


def _install_error_pages(app: FastAPI) -> None:
    """Every failure is a page that says what happened, never a stack trace."""

    @app.exception_handler(SignInRequired)
    async def signed_out(request: Request, exc: SignInRequired) -> Response:
        target = "/"
        if request.method == "GET" and request.url.path not in ("/", "/home"):
            target = f"/?next={quote(request.url.path)}"
        response = RedirectResponse(target, status_code=303)
        if request.headers.get("hx-request"):
            response.headers["HX-Redirect"] = target
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {403: "Not allowed", 404: "Not found", 405: "Not allowed here"}
        detail = exc.detail if isinstance(exc.detail, str) and exc.status_code != 404 else (
            "There is no such page, or nothing with this id.")
        return await _error_page(request, exc.status_code, titles.get(exc.status_code, "Request refused"), detail,
                                 headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', 'invalid')}"
                    for e in exc.errors()]
        return await _error_page(request, 422, "The request is invalid", "; ".join(problems[:10]))

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        if isinstance(exc, ServiceUnavailable):
            log.warning("%s unavailable on %s %s: %s", exc.service, request.method, request.url.path, exc.detail)
            return await _error_page(request, 503, f"{exc.service.capitalize()} is unavailable", exc.message,
                                     headers={"Retry-After": "5"})
        if exc.status in (401, 403):
            # The console's own key was refused: a deployment problem, not the user's.
            log.error("%s refused the console's key on %s %s: %s", exc.service, request.method, request.url.path,
                      exc.detail)
            return await _error_page(request, 502, "Configuration problem",
                                     f"{exc.service} refused the console's API key; an operator must fix it.")
        code = exc.status if exc.status < 500 else 502
        return await _error_page(request, code, "Request refused" if code < 500 else "Service error", exc.message)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        if is_infrastructure_error(exc):
            log.warning("%s %s refused: %s", request.method, request.url.path, type(exc).__name__)
            return await _error_page(request, 503, "Temporarily unavailable",
                                     "The console cannot reach its database; retry shortly.",
                                     headers={"Retry-After": "5"}, signed_in=False)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return await _error_page(request, 500, "Something went wrong",
                                 "The error has been logged; try again, or tell an admin if it persists.",
                                 signed_in=False)


async def _error_page(request: Request, status: int, title: str, detail: str, *,
                      headers: Mapping[str, str] | None = None, signed_in: bool = True) -> Response:
    if not _wants_html(request):
        return JSONResponse({"status": status, "title": title, "detail": detail}, status_code=status,
                            headers=dict(headers or {}))
    if not signed_in:
        # The database may be what failed: the page must not need it to look the user up.
        request.state.user = None
    return await render(request, "error.html", {"status": status, "title": title, "detail": detail},
                        status_code=status, headers=headers)


class SecurityHeadersMiddleware:
    """A strict Content-Security-Policy (only this console's own scripts and styles; forms may also post
    to capture, whose embed script the form preview loads), no framing, no sniffing."""

    def __init__(self, app: ASGIApp, capture_url: str) -> None:
        self.app = app
        policy = (
            "default-src 'self'; "
            f"script-src 'self' {capture_url}; "
            f"connect-src 'self' {capture_url}; "
            f"form-action 'self' {capture_url}; "
            "img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
        )
        self.headers = [
            (b"content-security-policy", policy.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"same-origin"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)
