"""``create_service_app``: the FastAPI app every service is, with its lifespan and platform routes."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, cast

import asyncpg
import sqlalchemy.exc
from asyncpg.exceptions import _base as asyncpg_base
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadflow_kit.auth import (
    SECURITY_SCHEMES,
    api_key_router,
    key_required_detail,
    key_security,
    lacks_scope_detail,
    sync_bootstrap_key,
)
from leadflow_kit.bodies import REQUIRED_SCOPE_ATTRIBUTE, BoundedBodyMiddleware, scope_checks
from leadflow_kit.consumer import ConsumerRunner, EventConsumer
from leadflow_kit.errors import (
    PROBLEM_JSON,
    FieldError,
    Problem,
    field_errors,
    problem,
    problem_from_detail,
    problem_response,
)
from leadflow_kit.failures import is_infrastructure_error, is_outage
from leadflow_kit.logging import configure_logging, correlation_id_var
from leadflow_kit.metrics import ServiceMetrics
from leadflow_kit.outbox import OutboxRelay
from leadflow_kit.platform import Background, Platform, PlatformDep, attach_deps, on_the_loop, request_platform
from leadflow_kit.publisher import DirectPublisher
from leadflow_kit.retention import RetentionRule, inbox_rule, run_sweeper
from leadflow_kit.version import VERSION

log = logging.getLogger(__name__)

D = TypeVar("D")

StartupHook = Callable[[], Coroutine[Any, Any, None]]

CHECK_TIMEOUT_SECONDS = 2.0
# A partition held back this long by an outage makes the service unready; a deadlock retried at
# once does not flap readiness.
CONSUMER_STALL_UNREADY_SECONDS = 2.0
OUTAGE_RETRY_AFTER = "5"


def create_service_app(
    platform: Platform,
    deps: D,
    *,
    title: str,
    description: str = "",
    routers: Sequence[APIRouter] = (),
    consumer: EventConsumer[D] | None = None,
    background: Sequence[Background] = (),
    on_startup: Sequence[StartupHook] = (),
    broker_needed_for_readiness: bool = True,
    retention: Sequence[RetentionRule] = (),
) -> FastAPI:
    """Build a service's app around what its bootstrap built (``platform``, and ``deps``, the service's
    own typed dependencies, which routes reach through ``deps_dependency``). Nothing connects until the
    lifespan starts.

    ``retention``: the service's own rules; the sweeper also applies the inbox's (``inbox_rule``).
    """
    settings = platform.settings
    lifespan = _lifespan(platform, deps, consumer, background, on_startup, broker_needed_for_readiness, retention)
    app = FastAPI(title=title, description=description, version=VERSION, lifespan=lifespan,
                  generate_unique_id_function=operation_id)
    # Read only through the kit's typed dependencies (``leadflow_kit.platform``).
    app.state.platform = platform
    attach_deps(app, deps)
    app.add_middleware(BoundedBodyMiddleware, default_limit=settings.max_body_bytes)
    app.add_middleware(RequestMetricsMiddleware, metrics=platform.metrics)
    if "*" not in settings.trusted_hosts:
        # Added last, so it runs first: a request for another Host is turned away before anything.
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts)
    _install_error_handlers(app)
    app.include_router(platform_router())
    app.include_router(api_key_router())
    for router in routers:
        app.include_router(router)
    _document_problems(app)
    return app


def _lifespan(
    platform: Platform,
    deps: D,
    consumer: EventConsumer[D] | None,
    background: Sequence[Background],
    on_startup: Sequence[StartupHook],
    broker_needed_for_readiness: bool,
    retention: Sequence[RetentionRule],
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start the service's loops (outbox relay, consumer, background tasks, retention sweeper) and stop
    them, then its connections, in reverse order."""
    settings = platform.settings
    sweeper = Background("retention-sweeper", lambda: run_sweeper(
        settings, platform.db, platform.clock, platform.metrics, [inbox_rule(settings), *retention]))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level)
        # Made per start: a stopped runner or relay stays stopped.
        runner = ConsumerRunner(consumer, platform, deps) if consumer is not None else None
        relay = OutboxRelay(settings, platform.db, platform.producers, platform.metrics, platform.clock)
        publisher = DirectPublisher(settings, platform.pipeline_db, platform.producers, platform.metrics)
        platform.outbox.publisher = publisher
        app.state.runtime = Runtime(runner, relay, broker_needed_for_readiness)
        if settings.admin_api_key is not None:
            await sync_bootstrap_key(platform.db, settings.admin_api_key.get_secret_value())
        for hook in on_startup:
            await hook()
        # The relay and the runner stop by themselves, and first; background loops are cancelled.
        stoppable = [asyncio.create_task(relay.run(), name="outbox-relay"),
                     asyncio.create_task(publisher.run(), name="outbox-publisher")]
        if runner is not None:
            stoppable.append(asyncio.create_task(runner.run(), name="event-consumer"))
        cancelled = [asyncio.create_task(task.run(), name=task.name) for task in (*background, sweeper)]
        for task in (*stoppable, *cancelled):
            task.add_done_callback(_log_crash)
        log.info("%s started on %s:%s", settings.service_name, settings.host, settings.port)
        try:
            yield
        finally:
            # Stop taking new events first, let in-flight work commit, then close connections.
            if runner is not None:
                runner.stop()
            relay.stop()
            publisher.stop()
            _, pending = await asyncio.wait(stoppable, timeout=10)
            for task in [*pending, *cancelled]:
                task.cancel()
            await asyncio.gather(*stoppable, *cancelled, return_exceptions=True)
            await platform.producers.close()
            await platform.http.aclose()
            await platform.pipeline_db.dispose()
            await platform.db.dispose()
            log.info("%s stopped", settings.service_name)

    return lifespan


@dataclass(frozen=True)
class Runtime:
    """The loops of a started app, for readiness and for tests that drive them."""

    runner: ConsumerRunner[Any] | None
    relay: OutboxRelay
    broker_needed_for_readiness: bool


def runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


def app_runtime(app: FastAPI) -> Runtime:
    """A built app's loops (tests drive the consumer and the relay through it)."""
    return cast(Runtime, app.state.runtime)


def app_deps(app: FastAPI) -> Any:
    """A built app's service ``Deps`` (for tests; routes use ``deps_dependency``)."""
    return app.state.deps


def operation_id(route: APIRoute) -> str:
    """An operation's id is its route function's name: stable, snake_case, what a generated client calls."""
    return route.name


def _log_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s crashed", task.get_name(), exc_info=task.exception())


def platform_router() -> APIRouter:
    router = APIRouter(tags=["platform"])

    @router.get("/healthz", summary="Liveness: the process is up, and which release it runs",
                responses={200: {"content": {"application/json": {"example": {
                    "status": "ok", "service": "capture", "version": VERSION}}}}})
    async def healthz(platform: PlatformDep) -> dict[str, str]:
        return {"status": "ok", "service": platform.settings.service_name, "version": VERSION}

    @router.get("/readyz", summary="Readiness: the database and the Kafka broker are reachable, and the "
                                   "consumer is not waiting out an outage",
                responses={
                    200: {"content": {"application/json": {"example": {
                        "status": "ready", "checks": {"database": "ok", "kafka": "ok"}}}}},
                    503: {"description": "A critical dependency is unreachable",
                          "content": {"application/json": {"example": {
                              "status": "not_ready",
                              "checks": {"database": "unreachable: ConnectionRefusedError", "kafka": "ok",
                                         "consumer": "retrying for 12s: ConnectionRefusedError"}}}}},
                })
    async def readyz(platform: PlatformDep, loops: Annotated[Runtime, Depends(on_the_loop(runtime))]) -> JSONResponse:
        checks: dict[str, str] = {}
        ready = True
        for name, probe, critical in (
            ("database", platform.db.ping, True),
            ("kafka", platform.producers.ping, loops.broker_needed_for_readiness),
        ):
            try:
                await asyncio.wait_for(probe(), CHECK_TIMEOUT_SECONDS)
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"unreachable: {type(exc).__name__}"
                ready = ready and not critical
        runner = loops.runner
        if runner is not None:
            checks["consumer"] = "ok"
            stall = runner.oldest_stall()
            waited = asyncio.get_running_loop().time() - stall.since if stall is not None else 0.0
            if stall is not None and waited >= CONSUMER_STALL_UNREADY_SECONDS:
                # Still waiting out an outage (the database may answer this probe yet not the handlers).
                checks["consumer"] = f"retrying for {waited:.0f}s: {stall.error_type}"
                ready = False
        return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks},
                            status_code=200 if ready else 503)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response,
                responses={200: {"content": {CONTENT_TYPE_LATEST: {"example": (
                    '# TYPE leadflow_outbox_backlog gauge\nleadflow_outbox_backlog{service="capture"} 0.0\n')}}}})
    async def metrics(platform: PlatformDep) -> Response:
        return Response(generate_latest(platform.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_failed(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(422, "The request is invalid; see errors.", field_errors(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail, errors = problem_from_detail(exc.status_code, exc.detail)
        return problem_response(exc.status_code, detail, errors, headers=exc.headers)

    @app.exception_handler(sqlalchemy.exc.DBAPIError)
    @app.exception_handler(asyncpg.PostgresError)
    @app.exception_handler(asyncpg.InterfaceError)
    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        violation = _constraint_violation(exc)
        if violation is not None:
            # A row the request names was removed, or made, by a concurrent request; or a column the
            # route should have checked. Logged: the route's own check is the better answer.
            log.warning("%s %s: %s", request.method, request.url.path, type(violation).__name__)
            if isinstance(violation, asyncpg.NotNullViolationError | asyncpg.CheckViolationError):
                return problem_response(422, "A value in the request is not allowed here.", [FieldError(
                    field=violation.column_name or "body", code="not_allowed", message="the value is not allowed")])
            return problem_response(409, "The request conflicts with what is stored (changed meanwhile?).")
        if not _is_data_exception(exc):
            return await unexpected(request, exc)
        # A value the request carried that no column can hold (a number out of range, a NUL in text).
        # Routes validate what they know; this answers for what slipped through, and says so in the log.
        log.warning("%s %s: a request value cannot be stored: %s", request.method, request.url.path,
                    str(exc).splitlines()[0][:300])
        return problem_response(422, "A value in the request cannot be stored (out of range, or not text).",
                                [FieldError(field="body", code="unstorable_value", message="a value cannot be stored")])

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_infrastructure_error(exc) or await is_outage(exc, request_platform(request).db):
            # The database (or broker) is unreachable: nothing is wrong with the request, retry it.
            log.warning("%s %s refused: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
            return problem_response(503, "A dependency is unreachable; retry shortly.",
                                    headers={"Retry-After": OUTAGE_RETRY_AFTER},
                                    correlation_id=correlation_id_var.get())
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "Internal error; it has been logged.", correlation_id=correlation_id_var.get())


ERROR_DESCRIPTIONS = {
    400: "The request is malformed (e.g. a body that is not valid JSON or UTF-8)",
    401: "No API key, or an unknown or revoked one",
    403: "The API key lacks the scope",
    404: "Nothing with this id",
    409: "The request conflicts with what is stored",
    413: "The body is over this route's size limit",
    415: "The Content-Type is not one this route takes",
    422: "Invalid fields; `errors` names each",
    429: "Rate limited; see Retry-After",
}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _document_problems(app: FastAPI) -> None:
    """Every operation documents the shared problem body for each 4xx it can answer (FastAPI's own
    ``HTTPValidationError`` is not what the services send)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = generate()
            # Included routers stay nested in app.routes; their routes as served are the route contexts.
            routes = {(context.path_format, method.lower()): context
                      for context in iter_route_contexts(app.routes)
                      if isinstance(context.original_route, APIRoute) for method in context.methods or ()}
            seen: dict[str, str] = {}
            for path, item in doc.get("paths", {}).items():
                for method, operation in item.items():
                    _document_operation(method, operation, routes.get((path, method)))
                    where = f"{method.upper()} {path}"
                    if seen.setdefault(operation["operationId"], where) != where:
                        raise ValueError(f"operationId {operation['operationId']!r} names both "
                                         f"{seen[operation['operationId']]} and {where}: rename a route function")
            components = doc.setdefault("components", {})
            components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
            schemas = components.setdefault("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            _, definitions = models_json_schema([(Problem, "serialization")],
                                                ref_template="#/components/schemas/{model}")
            schemas.update(definitions.get("$defs", {}))
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_operation(method: str, operation: dict[str, Any], route: RouteContext | None) -> None:
    responses = operation.setdefault("responses", {})
    # Every 4xx is a problem; a 5xx only where the route says so (readyz's 503 has a body of its own).
    codes = {int(code) for code, documented in responses.items() if code.isdigit() and (
        400 <= int(code) < 500 or any(c.get("schema") == PROBLEM_REF for c in documented.get("content", {}).values()))}
    parameters = operation.get("parameters") or []
    if "requestBody" in operation:
        codes |= {400, 413, 422}
    if method in ("post", "put", "patch", "delete"):
        codes |= {409, 422}
    if parameters:
        codes.add(422)
    if any(p.get("in") == "path" for p in parameters):
        codes.add(404)
    scopes = [scope for check in (scope_checks(route) if route is not None else ())
              for scope in getattr(check, REQUIRED_SCOPE_ATTRIBUTE)]
    if scopes:
        codes |= {401, 403}
        operation["security"] = key_security(scopes)
        operation["x-required-scopes"] = scopes
    for code in sorted(codes):
        documented = responses.get(str(code), {})
        content: dict[str, Any] = {"schema": PROBLEM_REF}
        example = next((c["example"] for c in documented.get("content", {}).values() if "example" in c), None)
        if isinstance(example, dict) and "detail" in example:
            content["example"] = problem(code, str(example["detail"]), example.get("errors") or [])
        elif scopes and code in (401, 403):
            # What ``leadflow_kit.auth.authorize`` answers, word for word.
            content["example"] = problem(code, key_required_detail() if code == 401 else lacks_scope_detail(scopes))
        if code == 401:
            documented.setdefault("headers", {"WWW-Authenticate": {
                "description": "`Bearer`: the scheme to send the key with", "schema": {"type": "string"}}})
        responses[str(code)] = {
            # FastAPI's own "Validation Error" names the body it no longer sends.
            "description": (documented.get("description") if documented.get("description") != "Validation Error"
                            else None) or ERROR_DESCRIPTIONS.get(code, "Error"),
            **({"headers": documented["headers"]} if "headers" in documented else {}),
            "content": {PROBLEM_JSON: content},
        }


def _constraint_violation(exc: BaseException | None) -> asyncpg.IntegrityConstraintViolationError | None:
    while exc is not None:
        if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
            return exc
        exc = exc.__cause__ or getattr(exc, "orig", None)
    return None


def _is_data_exception(exc: BaseException | None) -> bool:
    """PostgreSQL's "data exception" class (22xxx), or asyncpg refusing an argument, however wrapped."""
    while exc is not None:
        if isinstance(exc, asyncpg.exceptions.DataError | asyncpg_base.DataError):
            return True
        exc = exc.__cause__ or getattr(exc, "orig", None)
    return False


class RequestMetricsMiddleware:
    """Counts and times requests by route template, and carries the correlation id (pure ASGI: cheap)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        correlation_id = headers.get(b"x-correlation-id", b"").decode("latin-1")[:64] or str(uuid.uuid4())
        token = correlation_id_var.set(correlation_id)
        status_code = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-correlation-id", correlation_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if template not in ("/metrics", "/healthz", "/readyz"):
                service = self.metrics.service
                self.metrics.http_requests.labels(service, scope["method"], template, str(status_code)).inc()
                self.metrics.http_duration.labels(service, scope["method"], template).observe(
                    time.perf_counter() - started
                )
            correlation_id_var.reset(token)
