"""What every service has before its app exists: the ``Platform`` (settings, clock, metrics, database,
outbox, Kafka producer, HTTP client), and the typed FastAPI dependencies that hand it, or a service's
own dependencies object, to a route.

A service's ``bootstrap.py`` builds its ``Deps`` (which holds a ``Platform``) and passes it to
``create_service_app``; nothing is bound to the app afterwards. Nothing here connects: the engine,
the producer and the client open their connections on first use, and the app's lifespan closes them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, cast

import httpx
from fastapi import Depends, FastAPI, Request

from leadflow_kit.clock import Clock, SystemClock
from leadflow_kit.db import PIPELINE_PLANNING, Database
from leadflow_kit.kafka import ProducerHolder
from leadflow_kit.metrics import ServiceMetrics
from leadflow_kit.outbox import Outbox
from leadflow_kit.settings import ServiceSettings

D = TypeVar("D")
T = TypeVar("T")

# Outbound calls (firmographics, webhooks) set their own, shorter, timeouts per request.
HTTP_TIMEOUT_SECONDS = 10.0


@dataclass
class Platform:
    """The parts every service has, whatever it does."""

    settings: ServiceSettings
    clock: Clock
    metrics: ServiceMetrics
    db: Database
    # The event pipeline's connections: its batch statements, planned once per connection (PIPELINE_PLANNING).
    pipeline_db: Database
    outbox: Outbox
    producers: ProducerHolder
    http: httpx.AsyncClient

    @classmethod
    def build(cls, settings: ServiceSettings, clock: Clock | None = None) -> Platform:
        return cls(
            settings=settings,
            clock=clock or SystemClock(),
            metrics=ServiceMetrics(settings.service_name),
            db=Database(settings.database_url, pool_size=settings.database_pool_size,
                        toast_compression=settings.database_toast_compression),
            pipeline_db=Database(settings.database_url, pool_size=settings.database_pipeline_pool_size,
                                 toast_compression=settings.database_toast_compression,
                                 planning=PIPELINE_PLANNING),
            outbox=Outbox(settings.topic_prefix),
            producers=ProducerHolder(settings),
            http=httpx.AsyncClient(timeout=httpx.Timeout(HTTP_TIMEOUT_SECONDS)),
        )


@dataclass(frozen=True)
class Background:
    """A task the service runs beside its routes for as long as it is up (cancelled at shutdown)."""

    name: str
    run: Callable[[], Coroutine[Any, Any, None]]


def request_platform(request: Request) -> Platform:
    """The route's service platform."""
    return cast(Platform, request.app.state.platform)


def on_the_loop(accessor: Callable[[Request], T]) -> Callable[[Request], Awaitable[T]]:
    """``accessor`` as a FastAPI dependency that runs on the event loop. FastAPI runs a plain ``def``
    dependency in its thread pool: a thread hand-off, and a GIL to share, per request for an attribute
    read (py-spy found capture in the pool queue's ``Condition.notify`` in 9 % of its samples at 100 leads/s)."""

    async def dependency(request: Request) -> T:
        return accessor(request)

    dependency.__name__ = getattr(accessor, "__name__", "dependency")
    return dependency


PlatformDep = Annotated[Platform, Depends(on_the_loop(request_platform))]


def attach_deps(app: FastAPI, deps: object) -> None:
    """Make ``deps`` what ``deps_dependency`` hands the app's routes (an app's one place for them)."""
    app.state.deps = deps


def deps_accessor(kind: type[D]) -> Callable[[Request], D]:
    """A function reading a request's typed ``Deps`` (for code that is not a FastAPI dependency)."""

    def deps(request: Request) -> D:
        value = request.app.state.deps
        if not isinstance(value, kind):
            raise TypeError(f"this app's dependencies are a {type(value).__name__}, not a {kind.__name__}")
        return value

    deps.__name__ = f"{kind.__name__.lower()}_dependency"
    return deps


def deps_dependency(kind: type[D]) -> Callable[[Request], Awaitable[D]]:
    """A FastAPI dependency handing a route its service's typed ``Deps``::

        DepsDep = Annotated[Deps, Depends(deps_dependency(Deps))]
    """
    return on_the_loop(deps_accessor(kind))

