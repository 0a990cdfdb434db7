"""``create_service_app``: the FastAPI app every service is, with its lifespan and platform routes."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadflow_kit.auth import api_key_router, sync_bootstrap_key
from leadflow_kit.clock import Clock, SystemClock
from leadflow_kit.consumer import ConsumerRunner, EventConsumer
from leadflow_kit.db import Database
from leadflow_kit.errors import field_errors
from leadflow_kit.failures import is_infrastructure_error, is_outage
from leadflow_kit.kafka import ProducerHolder
from leadflow_kit.logging import configure_logging, correlation_id_var
from leadflow_kit.metrics import ServiceMetrics
from leadflow_kit.outbox import Outbox, OutboxRelay
from leadflow_kit.retention import RetentionRule, inbox_rule, run_sweeper
from leadflow_kit.settings import ServiceSettings
from leadflow_kit.version import VERSION

log = logging.getLogger(__name__)

BackgroundTask = Callable[[FastAPI], Coroutine[Any, Any, None]]
StartupHook = Callable[[FastAPI], Coroutine[Any, Any, None]]

CHECK_TIMEOUT_SECONDS = 2.0
# A partition held back this long by an outage makes the service unready; a deadlock retried at
# once does not flap readiness.
CONSUMER_STALL_UNREADY_SECONDS = 2.0
OUTAGE_RETRY_AFTER = "5"


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str = "",
    routers: Sequence[APIRouter] = (),
    consumer: EventConsumer | None = None,
    clock: Clock | None = None,
    background: Sequence[BackgroundTask] = (),
    on_startup: Sequence[StartupHook] = (),
    broker_needed_for_readiness: bool = True,
    retention: Sequence[RetentionRule] = (),
) -> FastAPI:
    """Build a service's app. Nothing connects until the lifespan starts.

    ``retention``: the service's own rules; the sweeper also applies the inbox's (``inbox_rule``).

    ``app.state`` then holds: settings, db, outbox, producers, metrics, clock, http, relay, runner.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level)
        state = app.state
        state.db = Database(settings.database_url, pool_size=settings.database_pool_size)
        state.producers = ProducerHolder(settings)
        state.http = httpx.AsyncClient(timeout=httpx.Timeout(10.0))
        state.relay = OutboxRelay(settings, state.db, state.producers, state.metrics, state.clock)
        state.runner = (
            ConsumerRunner(consumer, settings, state.db, state.producers, state.outbox, state.metrics, state.clock)
            if consumer is not None
            else None
        )
        if settings.admin_api_key is not None:
            await sync_bootstrap_key(state.db, settings.admin_api_key.get_secret_value())
        for hook in on_startup:
            await hook(app)
        tasks = [asyncio.create_task(state.relay.run(), name="outbox-relay")]
        if state.runner is not None:
            tasks.append(asyncio.create_task(state.runner.run(), name="event-consumer"))
        tasks += [asyncio.create_task(task(app), name=getattr(task, "__name__", "task")) for task in background]
        tasks.append(asyncio.create_task(
            run_sweeper(settings, state.db, state.clock, state.metrics, [inbox_rule(settings), *retention]),
            name="retention-sweeper",
        ))
        for task in tasks:
            task.add_done_callback(_log_crash)
        log.info("%s started on %s:%s", settings.service_name, settings.host, settings.port)
        try:
            yield
        finally:
            # Stop taking new events first, let in-flight work commit, then close connections.
            if state.runner is not None:
                state.runner.stop()
            state.relay.stop()
            # Only the relay and the runner stop by themselves; background loops are cancelled.
            stoppable = 1 if state.runner is None else 2
            _, pending = await asyncio.wait(tasks[:stoppable], timeout=10)
            for task in [*pending, *tasks[stoppable:]]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await state.producers.close()
            await state.http.aclose()
            await state.db.dispose()
            log.info("%s stopped", settings.service_name)

    app = FastAPI(title=title, description=description, version=VERSION, lifespan=lifespan)
    app.state.settings = settings
    app.state.clock = clock or SystemClock()
    app.state.metrics = ServiceMetrics(settings.service_name)
    app.state.outbox = Outbox(settings.topic_prefix)
    app.state.broker_needed_for_readiness = broker_needed_for_readiness
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.metrics)
    if "*" not in settings.trusted_hosts:
        # Added last, so it runs first: a request for another Host is turned away before anything.
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts)
    _install_error_handlers(app)
    app.include_router(platform_router())
    app.include_router(api_key_router())
    for router in routers:
        app.include_router(router)
    return app


def _log_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s crashed", task.get_name(), exc_info=task.exception())


def platform_router() -> APIRouter:
    router = APIRouter(tags=["platform"])

    @router.get("/healthz", summary="Liveness: the process is up, and which release it runs",
                responses={200: {"content": {"application/json": {"example": {
                    "status": "ok", "service": "capture", "version": VERSION}}}}})
    async def healthz(request: Request) -> dict[str, str]:
        return {"status": "ok", "service": request.app.state.settings.service_name, "version": VERSION}

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
    async def readyz(request: Request) -> JSONResponse:
        state = request.app.state
        checks: dict[str, str] = {}
        ready = True
        for name, probe, critical in (
            ("database", state.db.ping, True),
            ("kafka", state.producers.ping, state.broker_needed_for_readiness),
        ):
            try:
                await asyncio.wait_for(probe(), CHECK_TIMEOUT_SECONDS)
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"unreachable: {type(exc).__name__}"
                ready = ready and not critical
        runner: ConsumerRunner | None = getattr(state, "runner", None)
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
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_failed(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors(exc.errors())
        return JSONResponse(
            {"detail": "The request is invalid; see errors.", "errors": jsonable_encoder(errors)}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = exc.detail if isinstance(exc.detail, dict) else {"detail": exc.detail}
        return JSONResponse(jsonable_encoder(body), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        db = getattr(request.app.state, "db", None)
        if is_infrastructure_error(exc) or (db is not None and await is_outage(exc, db)):
            # The database (or broker) is unreachable: nothing is wrong with the request, retry it.
            log.warning("%s %s refused: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
            return JSONResponse(
                {"detail": "A dependency is unreachable; retry shortly.", "correlation_id": correlation_id_var.get()},
                status_code=503, headers={"Retry-After": OUTAGE_RETRY_AFTER},
            )
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": "Internal error; it has been logged.", "correlation_id": correlation_id_var.get()},
            status_code=500,
        )


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
