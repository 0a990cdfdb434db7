"""Signing in, sessions, lockout and user management against the real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from leadflow_console import store
from leadflow_console.auth import SESSION_COOKIE
from leadflow_console.tables import session_table

from .conftest import PASSWORD, ConsoleHarness, form_token

pytestmark = pytest.mark.integration


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def test_a_user_signs_in_gets_a_stored_session_and_signs_out(harness: ConsoleHarness,
                                                                    client: httpx.AsyncClient):
    user = await harness.user(name("ada"), "marketing_ops", display_name="Ada Park")
    answer = await harness.sign_in(client, user.upper())
    assert answer.status_code == 303 and answer.headers["location"] == "/home"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie
    home = await client.get("/home")
    assert home.status_code == 200 and "Welcome, Ada Park" in home.text and "Marketing ops" in home.text
    # The database holds only the token's hash.
    token_cookie = client.cookies[SESSION_COOKIE]
    async with harness.console.db.transaction() as session:
        hashes = (await session.execute(select(session_table.c.token_hash))).scalars().all()
    assert hashes and all(h not in token_cookie for h in hashes)

    out = await client.post("/sign-out", data={"csrf_token": form_token(home.text)})
    assert out.status_code == 303 and out.headers["location"] == "/"
    client.cookies.set(SESSION_COOKIE, token_cookie, domain="console.test")
    assert (await client.get("/home")).status_code == 303, "a signed-out session must not come back"


async def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(harness: ConsoleHarness,
                                                                         client: httpx.AsyncClient):
    user = await harness.user(name("bea"))
    wrong = await harness.sign_in(client, user, "not the password at all")
    unknown = await harness.sign_in(client, name("nobody"), "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert "The username or password is not right." in wrong.text
    assert "The username or password is not right." in unknown.text
    assert SESSION_COOKIE not in client.cookies


async def test_repeated_failures_lock_the_account_until_the_lockout_ends(harness: ConsoleHarness,
                                                                          client: httpx.AsyncClient):
    user = await harness.user(name("cal"))
    for _ in range(harness.settings.sign_in_max_failures):
        assert (await harness.sign_in(client, user, "guess guess guess")).status_code == 401
    locked = await harness.sign_in(client, user)
    assert locked.status_code == 401 and "this account is locked" in locked.text
    harness.clock.advance(timedelta(seconds=harness.settings.sign_in_lockout_seconds + 1))
    assert (await harness.sign_in(client, user)).status_code == 303


async def test_a_success_resets_the_failure_count(harness: ConsoleHarness, client: httpx.AsyncClient):
    user = await harness.user(name("dee"))
    for _ in range(harness.settings.sign_in_max_failures - 1):
        await harness.sign_in(client, user, "guess guess guess")
    assert (await harness.sign_in(client, user)).status_code == 303
    client.cookies.clear()
    for _ in range(harness.settings.sign_in_max_failures - 1):
        await harness.sign_in(client, user, "guess guess guess")
    assert (await harness.sign_in(client, user)).status_code == 303


async def test_an_admin_creates_a_user_who_can_sign_in_and_is_refused_admin_pages(harness: ConsoleHarness,
                                                                                  client: httpx.AsyncClient):
    admin = await harness.user(name("admin"))
    assert (await harness.sign_in(client, admin)).status_code == 303
    page = await client.get("/users")
    assert page.status_code == 200 and admin in page.text
    new = name("ops")
    bad = await client.post("/users", data={"csrf_token": form_token(page.text), "username": new,
                                            "role": "marketing_ops", "password": "short"})
    assert bad.status_code == 422 and "at least 12 characters" in bad.text
    created = await client.post("/users", data={"csrf_token": form_token(page.text), "username": new,
                                                "display_name": "Olga Ops", "role": "marketing_ops",
                                                "password": PASSWORD})
    assert created.status_code == 303
    listing = await client.get("/users")
    assert f"User &#39;{new}&#39; created." in listing.text and "Olga Ops" in listing.text
    again = await client.post("/users", data={"csrf_token": form_token(page.text), "username": new,
                                              "role": "marketing_ops", "password": PASSWORD})
    assert again.status_code == 422 and "There is already a user" in again.text

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=harness.app),
                                 base_url="https://console.test") as other:
        assert (await harness.sign_in(other, new)).status_code == 303
        refused = await other.get("/users")
        assert refused.status_code == 403 and "This page is for: Admin." in refused.text
        home = await other.get("/home")
        assert 'href="/users"' not in home.text


async def test_a_rep_or_manager_needs_a_routing_link_and_routing_must_confirm_it(harness: ConsoleHarness,
                                                                                 client: httpx.AsyncClient):
    admin = await harness.user(name("admin"))
    await harness.sign_in(client, admin)
    token = form_token((await client.get("/users")).text)
    no_rep = await client.post("/users", data={"csrf_token": token, "username": name("rep"), "role": "rep",
                                               "password": PASSWORD})
    assert no_rep.status_code == 422 and "needs the routing rep id" in no_rep.text
    # Routing is down in this harness: the link cannot be confirmed, and the user is not created.
    unconfirmed = await client.post("/users", data={"csrf_token": token, "username": name("rep"), "role": "rep",
                                                    "rep_id": "rep-bob", "password": PASSWORD})
    assert unconfirmed.status_code == 422 and "Routing is unavailable" in unconfirmed.text


async def test_disabling_a_user_ends_their_session_and_refuses_their_sign_in(harness: ConsoleHarness,
                                                                             client: httpx.AsyncClient):
    admin = await harness.user(name("admin"))
    victim = await harness.user(name("eve"), "marketing_ops")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=harness.app),
                                 base_url="https://console.test") as theirs:
        await harness.sign_in(theirs, victim)
        assert (await theirs.get("/home")).status_code == 200
        await harness.sign_in(client, admin)
        page = await client.get("/users")
        target = await store.user_by_username(harness.console.db, victim)
        assert target is not None
        done = await client.post(f"/users/{target.id}/disable", data={"csrf_token": form_token(page.text)})
        assert done.status_code == 303
        assert (await theirs.get("/home")).status_code == 303
        refused = await harness.sign_in(theirs, victim)
        assert refused.status_code == 401 and "disabled" in refused.text
        await client.post(f"/users/{target.id}/enable", data={"csrf_token": form_token(page.text)})
        reset = await client.post(f"/users/{target.id}/password",
                                  data={"csrf_token": form_token(page.text), "password": "a brand new password"})
        assert reset.status_code == 303
        assert (await harness.sign_in(theirs, victim)).status_code == 401
        assert (await harness.sign_in(theirs, victim, "a brand new password")).status_code == 303


async def test_an_admin_cannot_disable_themselves(harness: ConsoleHarness, client: httpx.AsyncClient):
    admin = await harness.user(name("admin"))
    await harness.sign_in(client, admin)
    me = await store.user_by_username(harness.console.db, admin)
    assert me is not None
    page = await client.get("/users")
    answer = await client.post(f"/users/{me.id}/disable", data={"csrf_token": form_token(page.text)})
    assert answer.status_code == 303
    assert "You cannot disable yourself." in (await client.get("/users")).text
    assert (await client.post("/users/no-such-user/disable",
                              data={"csrf_token": form_token(page.text)})).status_code == 404
