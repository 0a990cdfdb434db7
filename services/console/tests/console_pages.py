"""The console's pages in-process for its unit tests: the app over stand-in services (httpx.MockTransport), signed in
as a user. On the tests' pythonpath (pyproject.toml); ``unit/conftest.py`` makes ``page_client`` a fixture."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from leadflow_console.app import create_app
from leadflow_console.auth import PRESESSION_COOKIE, User
from leadflow_console.settings import Settings
from leadflow_kit.clock import FrozenClock

SECRET = "unit-test-secret-key-0123456789abcdef"
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)

Handler = Callable[[httpx.Request], httpx.Response]
PageClient = Callable[[User, Handler], AbstractAsyncContextManager[httpx.AsyncClient]]


class StandIn:
    """Stand-in services behind httpx.MockTransport: ``answer`` each request; every request is kept."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def answer(self, request: httpx.Request) -> httpx.Response:
        raise NotImplementedError

    def changes(self) -> list[str]:
        """What was asked to change (every request but a GET), in order."""
        return [f"{r.method} {r.url.path}" for r in self.requests if r.method != "GET"]


def signed_in_as(app: ASGIApp, user: User) -> ASGIApp:
    """The app with every request signed in as ``user`` (the session lookup needs the database)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["user"] = user
        await app(scope, receive, send)

    return wrapped


def page_client() -> PageClient:
    """``page_client(user, handle)``: a client of the console signed in as ``user``, whose calls to the five
    services ``handle`` answers; it sends the CSRF token a form would."""

    @asynccontextmanager
    async def client(user: User, handle: Handler) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(Settings(environment="test", secret_key=SECRET), clock=FrozenClock(NOW),
                         transport=httpx.MockTransport(handle))
        token = hmac.new(SECRET.encode(), b"csrf:pre", hashlib.sha256).hexdigest()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=signed_in_as(app, user)),
                                     base_url="https://console.test", cookies={PRESESSION_COOKIE: "pre"},
                                     headers={"X-CSRF-Token": token}) as c:
            yield c

    return client
