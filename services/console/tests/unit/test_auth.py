"""Sessions, CSRF, roles and lead scoping, without a database or a network: the app runs in-process and
routes that would reach PostgreSQL are not called."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from leadflow_console.app import create_app
from leadflow_console.auth import (
    CSRF_HEADER,
    SESSION_COOKIE,
    RoleRequired,
    SignInRequired,
    User,
    hash_password,
    lead_visible_to,
    require_roles,
    session_token,
    verify_password,
)
from leadflow_console.deps import request_console
from leadflow_console.pages.sign_in import safe_next
from leadflow_console.settings import Settings
from leadflow_console.templating import navigation, render
from leadflow_kit.clock import FrozenClock

SECRET = "unit-test-secret-key-0123456789abcdef"
ADMIN = User("u1", "admin", "Admin", "admin")
OPS = User("u2", "ops", "Ops", "marketing_ops")
MANAGER = User("u3", "mia", "Mia", "sales_manager", team_ids=("emea",))
REP = User("u4", "bob", "Bob", "rep", rep_id="rep-bob")


def settings(**overrides: Any) -> Settings:
    return Settings(environment="test", secret_key=SECRET, **overrides)


@pytest.fixture
def app() -> FastAPI:
    return create_app(settings(), clock=FrozenClock(datetime(2026, 12, 3, 9, tzinfo=UTC)))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://console.test") as c:
        yield c


def form_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def test_the_sign_in_page_gives_a_pre_session_cookie_and_a_token_bound_to_it(client: httpx.AsyncClient):
    page = await client.get("/")
    assert page.status_code == 200
    assert "console_presession" in page.cookies
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie
    # Without a username the form is refused by the page itself: the CSRF check let it through.
    answer = await client.post("/", data={"csrf_token": form_token(page.text), "username": "", "password": ""})
    assert answer.status_code == 401
    assert "Enter your username and password." in answer.text


@pytest.mark.parametrize("token", [None, "", "0" * 64])
async def test_a_form_without_the_right_token_is_refused_with_403_and_a_clear_message(
        client: httpx.AsyncClient, token: str | None):
    await client.get("/")
    data = {"username": "admin", "password": "whatever"} | ({"csrf_token": token} if token is not None else {})
    answer = await client.post("/", data=data)
    assert answer.status_code == 403
    assert "CSRF token missing or wrong" in answer.text
    assert "Traceback" not in answer.text


async def test_a_token_from_another_browser_is_refused(app: FastAPI):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://console.test") as attacker, \
            httpx.AsyncClient(transport=transport, base_url="https://console.test") as victim:
        stolen = form_token((await attacker.get("/")).text)
        await victim.get("/")
        answer = await victim.post("/", data={"csrf_token": stolen, "username": "", "password": ""})
        assert answer.status_code == 403
        # The header htmx sends counts as the field does.
        page = await victim.get("/")
        ok = await victim.post("/", data={"username": "", "password": ""},
                               headers={CSRF_HEADER: form_token(page.text)})
        assert ok.status_code == 401


async def test_a_post_without_any_cookie_is_refused(client: httpx.AsyncClient):
    page = await client.get("/")
    client.cookies.clear()
    answer = await client.post("/", data={"csrf_token": form_token(page.text), "username": "", "password": ""})
    assert answer.status_code == 403


async def test_signed_out_pages_redirect_to_sign_in_and_htmx_is_told_to(client: httpx.AsyncClient):
    answer = await client.get("/home")
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    answer = await client.get("/users")
    assert answer.status_code == 303 and answer.headers["location"] == "/?next=/users"
    answer = await client.get("/users", headers={"HX-Request": "true"})
    assert answer.headers["HX-Redirect"] == "/?next=/users"


async def test_an_unknown_page_is_a_404_page_with_security_headers(client: httpx.AsyncClient):
    answer = await client.get("/no/such/page")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "There is no such page" in answer.text
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"


def request_for(app: FastAPI, cookies: dict[str, str] | None = None, user: User | str | None = "unset") -> Request:
    headers = [(b"cookie", "; ".join(f"{k}={v}" for k, v in (cookies or {}).items()).encode())] if cookies else []
    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers, "app": app, "state": {},
             "query_string": b""}
    request = Request(scope)
    if user != "unset":
        request.state.user = user
    return request


def test_a_session_cookie_counts_only_when_signed_with_the_secret_and_young_enough(app: FastAPI):
    console = request_console(request_for(app))
    signed = URLSafeTimedSerializer(SECRET, salt="leadflow-console-session").dumps("token-1")
    assert session_token(console, request_for(app, {SESSION_COOKIE: signed})) == "token-1"
    forged = URLSafeTimedSerializer("another secret", salt="leadflow-console-session").dumps("token-1")
    assert session_token(console, request_for(app, {SESSION_COOKIE: forged})) is None
    assert session_token(console, request_for(app, {SESSION_COOKIE: signed[:-2] + "xx"})) is None
    assert session_token(console, request_for(app, {SESSION_COOKIE: "token-1"})) is None
    short = create_app(settings(session_max_age_seconds=60))
    stale = URLSafeTimedSerializer(SECRET, salt="leadflow-console-session", signer=SignedLongAgo).dumps("token-1")
    assert session_token(request_console(request_for(short)), request_for(short, {SESSION_COOKIE: stale})) is None


class SignedLongAgo(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 3600


async def test_require_roles_lets_in_the_roles_named_and_admins_and_no_one_else(app: FastAPI):
    managers = require_roles("sales_manager")
    assert await managers(request_for(app, user=MANAGER)) == MANAGER
    assert await managers(request_for(app, user=ADMIN)) == ADMIN
    for refused in (OPS, REP):
        with pytest.raises(RoleRequired) as raised:
            await managers(request_for(app, user=refused))
        assert raised.value.status_code == 403 and "Sales manager" in str(raised.value.detail)
    with pytest.raises(SignInRequired):
        await managers(request_for(app, user=None))
    anyone = require_roles()
    assert await anyone(request_for(app, user=REP)) == REP


def test_the_navigation_shows_each_role_only_what_it_may_open(app: FastAPI):
    labels = {user.role: [item.label for item in navigation(request_for(app), user.role)]
              for user in (ADMIN, OPS, MANAGER, REP)}
    assert "Users" in labels["admin"]
    for role in ("marketing_ops", "sales_manager", "rep"):
        assert "Users" not in labels[role]
    for item in app.state.deps.navigation:
        assert item.visible_to("admin")


SEARCHED = {"lead_id": "l1", "owner": "rep-bob", "team": "emea", "queue": None}
ASSIGNED = {"lead_id": "l2", "owner": {"rep_id": "rep-ann", "team_id": "amer"}, "team_id": "amer", "queue": None}
QUEUED = {"lead_id": "l3", "owner": None, "team": None, "queue": "unassigned"}


def test_a_rep_sees_only_their_own_leads_a_manager_their_teams_and_the_queues():
    assert lead_visible_to(REP, SEARCHED)
    assert not lead_visible_to(REP, ASSIGNED)
    assert not lead_visible_to(REP, QUEUED)
    assert not lead_visible_to(User("u5", "norep", "No rep", "rep"), {"owner": None})
    assert lead_visible_to(MANAGER, SEARCHED)
    assert not lead_visible_to(MANAGER, ASSIGNED)
    assert lead_visible_to(MANAGER, QUEUED)
    for everyone in (ADMIN, OPS):
        assert all(lead_visible_to(everyone, lead) for lead in (SEARCHED, ASSIGNED, QUEUED))


def test_after_sign_in_only_a_path_of_this_console_is_followed():
    assert safe_next("/leads?tier=hot") == "/leads?tier=hot"
    for unsafe in (None, "", "https://evil.example/", "//evil.example/", "/\\evil.example", "leads"):
        assert safe_next(unsafe) == "/home"


async def test_a_service_that_is_down_is_a_clear_page_not_a_500(app: FastAPI):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    down = create_app(settings(), transport=httpx.MockTransport(refuse))

    async def needs_routing(request: Request) -> HTMLResponse:
        await request_console(request).clients.routing.get("/v1/admin/reps")
        return await render(request, "home/home.html")

    down.add_api_route("/probe", needs_routing)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=down), base_url="https://console.test") as client:
        answer = await client.get("/probe")
    assert answer.status_code == 503
    assert "routing is unavailable" in answer.text
    assert "Traceback" not in answer.text


def test_settings_refuse_a_missing_or_short_secret_outside_development():
    with pytest.raises(ValueError, match="secret_key is required"):
        Settings(environment="production")
    with pytest.raises(ValueError, match="at least 32"):
        Settings(environment="production", secret_key="short")
    assert Settings(environment="development").secure_cookies is False
    assert Settings(environment="test", secret_key=SECRET).secure_cookies is True


def test_browsers_reach_capture_at_its_public_address_when_one_is_set() -> None:
    internal = settings(capture_url="http://capture.internal:8001/")
    assert internal.capture_public() == "http://capture.internal:8001"
    public = settings(capture_url="http://capture.internal:8001", capture_public_url="https://forms.example.com/")
    assert public.capture_public() == "https://forms.example.com"
    assert public.service_url("capture") == "http://capture.internal:8001"


async def test_hashing_and_checking_a_password_leave_the_event_loop_serving_others():
    ticks = 0
    stop = False

    async def other_requests() -> None:
        nonlocal ticks
        while not stop:
            ticks += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_requests())
    await asyncio.sleep(0)
    try:
        ticks_before = ticks
        stored = await hash_password("correct horse battery")
        during_hash = ticks - ticks_before
        ticks_before = ticks
        assert await verify_password(stored, "correct horse battery")
        assert not await verify_password(stored, "wrong horse battery")
        during_checks = ticks - ticks_before
    finally:
        stop = True
        await other
    # On the loop itself, argon2id's tens of milliseconds would let the other task run at most once.
    assert during_hash > 2 and during_checks > 2, (during_hash, during_checks)
