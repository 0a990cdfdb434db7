"""Capture's forms in the console, in a real browser against the real stack: create a form, copy its embed
snippet, and fill its live preview, which posts from the browser to the real capture (CORS) and makes a lead."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from console_support import PHONE, ConsoleUnderTest, check_a11y, sign_in, sign_in_as_admin
from e2e_support import ADMIN_KEY, eventually
from playwright.async_api import Page

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


async def test_a_new_form_is_created_and_its_live_preview_makes_a_real_lead(
        console: ConsoleUnderTest, page: Page) -> None:
    key = f"webinar-{uuid.uuid4().hex[:8]}"
    await sign_in_as_admin(page, console)
    await page.goto(f"{console.url}/forms/new")
    await check_a11y(page)
    await page.get_by_label("Key").fill(key)
    await page.get_by_label("Name").fill("Webinar sign-up")
    await page.get_by_label("Field mapping").fill("work_email = email\norganisation = company")
    await page.get_by_label("Required fields").fill("email, company")
    await page.get_by_role("button", name="Create form").click()
    await page.wait_for_url(f"{console.url}/forms/{key}")
    assert f"Form '{key}' created." in (await page.get_by_role("status").first.text_content() or "")
    snippet = await page.get_by_label(f"Embed snippet for {key}").input_value()
    assert f'data-leadflow-form="{key}"' in snippet and 'name="work_email"' in snippet
    assert f"/v1/forms/{key}/embed.js" in snippet
    await check_a11y(page)

    # The preview posts from this page's origin: capture must allow it first, and the console asks.
    await page.get_by_role("link", name="Live preview").click()
    await page.get_by_role("button", name=f"Allow {console.url} and preview").click()
    await page.wait_for_url(f"{console.url}/forms/{key}/preview")
    await check_a11y(page)

    # Capture's own validation answers the browser: the missing company is shown at its input.
    email = f"lin.{uuid.uuid4().hex[:6]}@initech.example"
    await page.get_by_label("Email (work_email) (required)").fill(email)
    await page.get_by_role("button", name="Send to capture").click()
    result = page.locator("#preview-result")
    await result.filter(has_text="Capture refused the fill (422)").wait_for()
    assert await page.locator(".preview-error").count() == 1
    assert await page.get_by_label("Company (organisation) (required)").get_attribute("aria-invalid") == "true"

    await page.get_by_label("Email (work_email) (required)").fill(email)
    await page.get_by_label("Company (organisation) (required)").fill("Initech")
    await page.get_by_label("First name").fill("Lin")
    await page.get_by_role("button", name="Send to capture").click()
    lead_id = await result.locator("[data-lead-id]").get_attribute("data-lead-id", timeout=10_000)
    assert lead_id

    async def found() -> dict[str, Any] | None:
        response = await console.pipeline.client.get(f"{console.pipeline.urls['sla']}/v1/leads",
                                                     params={"email": email},
                                                     headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        leads = response.json().get("leads", []) if response.status_code == 200 else []
        return leads[0] if leads else None

    lead = await eventually(found)
    assert lead["lead_id"] == lead_id
    await check_a11y(page)

    # The editor is usable on a phone: nothing wider than the screen.
    await page.set_viewport_size(PHONE)
    await page.goto(f"{console.url}/forms/{key}")
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


async def test_capture_refusing_a_form_shows_why_next_to_the_field(console: ConsoleUnderTest, page: Page) -> None:
    await sign_in_as_admin(page, console)
    await page.goto(f"{console.url}/forms/new")
    await page.get_by_label("Key").fill(f"bad-{uuid.uuid4().hex[:6]}")
    await page.get_by_label("Name").fill("Bad origins")
    await page.get_by_label("Allowed origins").fill("not an origin")
    await page.get_by_role("button", name="Create form").click()
    error = page.locator("#allowed_origins-error")
    assert "is not an origin like https://www.example.com" in (await error.text_content() or "")
    assert await page.get_by_label("Allowed origins").get_attribute("aria-invalid") == "true"
    await check_a11y(page)


async def test_marketing_ops_may_edit_forms_but_not_people_accounts_webhooks_or_keys(console: ConsoleUnderTest,
                                                                                     page: Page) -> None:
    username, password = await console.make_user("marketing_ops")
    await sign_in(page, console.url, username, password)
    nav = page.get_by_role("navigation", name="Main")
    assert await nav.get_by_role("link", name="Forms").count() == 1
    assert await nav.get_by_role("link", name="People").count() == 0
    response = await page.goto(f"{console.url}/forms")
    assert response is not None and response.status == 200
    await check_a11y(page)
    for path in ("/people", "/accounts", "/webhooks", "/api-keys"):
        response = await page.goto(f"{console.url}{path}")
        assert response is not None and response.status == 403, path
