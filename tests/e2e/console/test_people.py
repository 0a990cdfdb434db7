"""Reps and teams in the console, in a real browser against the real stack: an admin's team, its manager's rep with
capacity and an out-of-office range that routing then reports, notification channels; and a rep refused every
configuration page."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from console_support import ConsoleUnderTest, check_a11y, sign_in, sign_in_as_admin
from e2e_support import ADMIN_KEY
from playwright.async_api import Browser, Page

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CONFIGURATION_PAGES = ("/forms", "/forms/new", "/people", "/people/reps/new", "/people/teams/new", "/accounts",
                       "/webhooks", "/webhooks/new", "/api-keys")


async def test_an_admin_makes_a_team_and_its_manager_a_rep_who_is_out_of_office(console: ConsoleUnderTest, page: Page,
                                                                                browser: Browser) -> None:
    tag = uuid.uuid4().hex[:6]
    # Teams are an admin's to make and remove; a sales manager manages the teams their user is linked to.
    admin = await browser.new_context()
    try:
        admin_page = await admin.new_page()
        await sign_in_as_admin(admin_page, console)
        await admin_page.goto(f"{console.url}/people")
        await admin_page.get_by_role("link", name="New team").click()
        await admin_page.get_by_label("Team id").fill(f"team-{tag}")
        await admin_page.get_by_label("Name").fill(f"Nordics {tag}")
        await admin_page.get_by_label("Strategy").select_option("load_balanced")
        await admin_page.get_by_role("button", name="Create team").click()
        await admin_page.wait_for_url(f"{console.url}/people/teams/team-{tag}")
        await check_a11y(admin_page)
    finally:
        await admin.close()

    username, password = await console.make_user("sales_manager", team_ids=(f"team-{tag}",))
    await sign_in(page, console.url, username, password)
    await page.goto(f"{console.url}/people")
    await check_a11y(page)
    assert await page.get_by_role("link", name="New team").count() == 0
    assert await page.get_by_role("link", name=f"Nordics {tag}").count() == 1
    assert await page.get_by_role("link", name="Ada Lovelace").count() == 0  # the demo's rep, not in this team

    now = datetime.now(UTC)
    await page.goto(f"{console.url}/people/reps/new")
    await page.get_by_label("Rep id").fill(f"rep-{tag}")
    await page.get_by_label("Name").fill(f"Sigrid {tag}")
    await page.get_by_label("Team").select_option(f"team-{tag}")
    await page.get_by_label("Territories").fill("SE, NO")
    await page.get_by_label("Leads a day at most").fill("12")
    await page.get_by_label("Time zone").fill("Europe/Stockholm")
    await page.get_by_label("Out of office").fill(
        f"{(now - timedelta(hours=1)).isoformat()} {(now + timedelta(days=2)).isoformat()} parental leave")
    await page.get_by_role("button", name="Create rep").click()
    await page.wait_for_url(f"{console.url}/people/reps/rep-{tag}")
    assert "Skipped for a hot lead now: out of office" in " ".join((await page.locator("main").text_content()
                                                                    or "").split())
    await check_a11y(page)

    rep = (await console.pipeline.client.get(f"{console.pipeline.urls['routing']}/v1/admin/reps/rep-{tag}",
                                             headers={"Authorization": f"Bearer {ADMIN_KEY}"})).json()
    assert rep["team_id"] == f"team-{tag}" and rep["territories"] == ["SE", "NO"] and rep["daily_capacity"] == 12
    assert rep["out_of_office"][0]["reason"] == "parental leave" and rep["unavailable_now"] == "out_of_office"

    # Slack without the rep's Slack id: routing says what is missing, next to the field.
    await page.get_by_label("Slack", exact=True).check()
    await page.get_by_role("button", name="Save channels").click()
    assert "needs the rep's Slack user id" in (await page.locator("#slack_user_id-error").text_content() or "")
    await check_a11y(page)
    await page.get_by_label("Slack user id").fill("U024BE7LH")
    await page.get_by_role("button", name="Save channels").click()
    assert "Notification channels saved." in (await page.get_by_role("status").first.text_content() or "")
    assert await page.get_by_label("Slack", exact=True).is_checked()

    # A wrong time zone is routing's 422, shown at the field; nothing else changes.
    await page.get_by_label("Time zone").fill("Mars/Olympus")
    await page.get_by_role("button", name="Save", exact=True).click()
    assert "unknown time zone" in (await page.locator("#timezone-error").text_content() or "")


async def test_a_rep_is_refused_every_configuration_page(console: ConsoleUnderTest, page: Page) -> None:
    username, password = await console.make_user("rep", rep_id="rep-ada")
    await sign_in(page, console.url, username, password)
    nav = page.get_by_role("navigation", name="Main")
    for label in ("Forms", "People", "Accounts", "Webhooks", "API keys"):
        assert await nav.get_by_role("link", name=label).count() == 0, label
    for path in CONFIGURATION_PAGES:
        response = await page.goto(f"{console.url}{path}")
        assert response is not None and response.status == 403, path
        assert await page.get_by_role("heading", level=1).text_content() == "Not allowed"
    await check_a11y(page)


async def test_the_admin_sees_every_configuration_area(console: ConsoleUnderTest, page: Page) -> None:
    await sign_in_as_admin(page, console)
    nav = page.get_by_role("navigation", name="Main")
    for label in ("Forms", "People", "Accounts", "Webhooks", "API keys"):
        assert await nav.get_by_role("link", name=label).count() == 1, label
