"""Each role signs in and sees only its navigation; every console area it may not open is a 403 page.
Areas come from the console's own ``PAGES``, so each page added later is checked for every role here."""

from __future__ import annotations

import pytest
from console_support import PASSWORD, PHONE, ConsoleUnderTest, check_a11y, screenshot, sign_in, sign_in_as_admin
from playwright.async_api import Browser, Page

from leadflow_console.app import PAGES
from leadflow_console.auth import ROLES, Role

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

LINKS: dict[Role, dict[str, str]] = {"rep": {"rep_id": "rep-ada"}, "sales_manager": {"team_ids": "sales"}}
NAV = [item for page in PAGES for item in page.nav]


async def nav_labels(page: Page) -> list[str]:
    return [text.strip() for text in await page.get_by_role("navigation", name="Main").get_by_role(
        "link").all_text_contents()]


@pytest.mark.parametrize("role", ROLES)
async def test_each_role_sees_only_its_navigation_and_is_refused_every_other_area(
        role: Role, console: ConsoleUnderTest, browser: Browser) -> None:
    links = LINKS.get(role, {})
    username, password = await console.make_user(
        role, rep_id=links.get("rep_id"), team_ids=tuple(links["team_ids"].split(",")) if "team_ids" in links else ())
    context = await browser.new_context(viewport=PHONE if role == "rep" else None)
    page = await context.new_page()
    try:
        await sign_in(page, console.url, username, password)
        allowed = [item for item in NAV if item.visible_to(role)]
        assert await nav_labels(page) == ["Home", *[item.label for item in allowed]]
        await check_a11y(page)
        await screenshot(page, f"console-home-{role}")
        for item in NAV:
            response = await page.goto(f"{console.url}{item.href}")
            assert response is not None
            if item.visible_to(role):
                assert response.status == 200, f"{role} should open {item.href}"
                await check_a11y(page)
            else:
                assert response.status == 403, f"{role} must be refused {item.href}"
                assert await page.get_by_role("heading", level=1).text_content() == "Not allowed"
                await check_a11y(page)
    finally:
        await context.close()


async def test_an_admin_creates_a_rep_user_linked_to_a_real_routing_rep(console: ConsoleUnderTest, page: Page) -> None:
    await sign_in_as_admin(page, console)
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    await page.wait_for_url(f"{console.url}/users")
    await check_a11y(page)
    await page.get_by_label("Username").fill("grace")
    await page.get_by_label("Name", exact=True).fill("Grace Hopper")
    await page.get_by_label("Role").select_option("rep")
    await page.get_by_label("Routing rep id (for a rep)").fill("rep-nobody")
    await page.get_by_label("Password (at least 12 characters)").fill(PASSWORD)
    await page.get_by_role("button", name="Create user").click()
    assert await page.locator("#rep_id-error").text_content() == "routing has no rep 'rep-nobody'."
    await check_a11y(page)

    await page.get_by_label("Routing rep id (for a rep)").fill("rep-grace")
    await page.get_by_label("Password (at least 12 characters)").fill(PASSWORD)
    await page.get_by_role("button", name="Create user").click()
    await page.wait_for_url(f"{console.url}/users")
    assert "User 'grace' created." in (await page.get_by_role("status").text_content() or "")
    # The username's own cell: other tests' users (linked to rep-grace) match "grace" in their row's name.
    assert await page.get_by_role("row").filter(has=page.get_by_role("cell", name="grace", exact=True)).count() == 1
    await screenshot(page, "console-users")

    rep = await page.context.browser.new_context()  # type: ignore[union-attr]
    rep_page = await rep.new_page()
    try:
        await sign_in(rep_page, console.url, "grace", PASSWORD)
        assert "Sales rep" in (await rep_page.locator(".account").text_content() or "")
        response = await rep_page.goto(f"{console.url}/users")
        assert response is not None and response.status == 403
    finally:
        await rep.close()


async def test_the_keyboard_reaches_each_page_s_content_through_the_skip_link_then_the_navigation(
        console: ConsoleUnderTest, page: Page) -> None:
    await sign_in_as_admin(page, console)
    for item in NAV:
        await page.goto(f"{console.url}{item.href}")
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent.trim()") == "Skip to content", item.href
        assert await page.evaluate("getComputedStyle(document.activeElement).left") != "-9999px", item.href
        await page.keyboard.press("Enter")
        assert await page.evaluate("document.activeElement.id") == "main", item.href
    await page.goto(f"{console.url}/home")
    reached: list[str] = []
    for _ in range(3 + len(NAV)):  # the skip link, the brand, Home, then the areas
        await page.keyboard.press("Tab")
        reached.append(await page.evaluate("document.activeElement.textContent.trim()"))
    assert [item.label for item in NAV if item.label in reached] == [item.label for item in NAV], reached
