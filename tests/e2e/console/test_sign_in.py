"""Signing in and out of the console in a real browser, against the real stack."""

from __future__ import annotations

import pytest
from console_support import ConsoleUnderTest, check_a11y, screenshot, sign_in_as_admin
from playwright.async_api import Page

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


async def test_the_admin_signs_in_sees_every_area_and_signs_out(console: ConsoleUnderTest, page: Page) -> None:
    await page.goto(f"{console.url}/home")
    assert page.url == f"{console.url}/"
    assert await page.get_by_role("heading", level=1).text_content() == "Sign in to the LeadFlow console"
    await check_a11y(page)
    await screenshot(page, "console-sign-in")

    await sign_in_as_admin(page, console)
    assert await page.get_by_role("heading", level=1).text_content() == "Welcome, Admin"
    assert "Admin" in (await page.locator(".account").text_content() or "")
    cookie = next(c for c in await page.context.cookies() if c["name"] == "console_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    await check_a11y(page)

    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(f"{console.url}/")
    assert "You are signed out." in (await page.get_by_role("status").text_content() or "")
    await page.goto(f"{console.url}/home")
    assert page.url == f"{console.url}/"
    assert await page.get_by_role("heading", level=1).text_content() == "Sign in to the LeadFlow console"


async def test_a_wrong_password_is_refused_with_a_message(console: ConsoleUnderTest, page: Page) -> None:
    await page.goto(f"{console.url}/")
    await page.get_by_label("Username").fill("admin")
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    assert await page.get_by_role("alert").text_content() == "The username or password is not right."
    await check_a11y(page)
    assert all(c["name"] != "console_session" for c in await page.context.cookies())
