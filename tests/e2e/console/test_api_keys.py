"""API keys in the console, in a real browser against the real stack: mint a key (shown once), use it, revoke it."""

from __future__ import annotations

import uuid

import pytest
from console_support import ConsoleUnderTest, check_a11y, sign_in_as_admin
from playwright.async_api import Page

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


async def test_a_key_is_minted_shown_once_works_and_is_revoked(console: ConsoleUnderTest, page: Page) -> None:
    name = f"bi-export-{uuid.uuid4().hex[:6]}"
    sla = console.pipeline.urls["sla"]
    await sign_in_as_admin(page, console)
    await page.goto(f"{console.url}/api-keys")
    await check_a11y(page)
    await page.get_by_label("Service").select_option("sla")
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Scopes").fill("reports:read")
    await page.get_by_role("button", name="Mint key").click()
    await page.get_by_role("heading", name="Key minted on sla").wait_for()
    key = (await page.locator("#new-api-key").text_content() or "").strip()
    assert key.startswith("lf_")
    await check_a11y(page)

    headers = {"Authorization": f"Bearer {key}"}
    funnel = await console.pipeline.client.get(f"{sla}/v1/reports/funnel", headers=headers)
    assert funnel.status_code == 200, funnel.text
    lacking = await console.pipeline.client.get(f"{sla}/v1/leads", params={"email": "a@b.example"}, headers=headers)
    assert lacking.status_code == 403

    # The list shows it without the key itself; revoking it makes the service refuse it.
    await page.goto(f"{console.url}/api-keys")
    assert key not in await page.content()
    row = page.locator("tr", has_text=name)
    assert "reports:read" in (await row.text_content() or "")
    await row.get_by_role("button", name="Revoke").click()
    assert "Key revoked on sla" in (await page.get_by_role("status").first.text_content() or "")
    assert "revoked" in (await page.locator("tr", has_text=name).text_content() or "")
    refused = await console.pipeline.client.get(f"{sla}/v1/reports/funnel", headers=headers)
    assert refused.status_code == 401


async def test_a_scope_the_console_cannot_grant_is_refused_at_the_field(console: ConsoleUnderTest, page: Page) -> None:
    await sign_in_as_admin(page, console)
    await page.goto(f"{console.url}/api-keys")
    await page.get_by_label("Service").select_option("capture")
    await page.get_by_label("Name").fill("too-strong")
    await page.get_by_label("Scopes").fill("*")
    await page.get_by_role("button", name="Mint key").click()
    error = await page.locator("#scopes-error").text_content() or ""
    assert error == "the console's key on capture cannot grant *"
    await check_a11y(page)
    # The console's own key is listed but cannot be revoked from here.
    own = page.locator("tr", has_text="(this console)")
    assert await own.count() == 5
    assert await own.get_by_role("button", name="Revoke").count() == 0
