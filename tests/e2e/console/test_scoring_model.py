"""The scoring model in the console, in a real browser against the real stack: marketing ops type a model with
an error and see the message at its line, fix it, dry-run it, activate it, and roll back."""

from __future__ import annotations

import uuid

import httpx
import pytest
from console_support import PHONE, ConsoleUnderTest, check_a11y, screenshot, sign_in
from e2e_support import ADMIN_KEY
from playwright.async_api import Page, expect

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
MODELS = "/v1/admin/scoring-models"


async def test_marketing_ops_fix_a_model_error_shown_at_its_line_then_activate_and_roll_back(
    console: ConsoleUnderTest, page: Page,
) -> None:
    scoring = console.pipeline.urls["scoring"]
    active_before = (await console.pipeline.client.get(f"{scoring}{MODELS}/active", headers=ADMIN)).json()["id"]
    username, password = await console.make_user("marketing_ops")
    await sign_in(page, console.url, username, password)
    await page.get_by_role("link", name="Scoring model").first.click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Scoring model")
    editor = page.get_by_label("Model (YAML)")
    source = await editor.input_value()
    assert source.startswith("# LeadFlow's shipped scoring model") or "fit_rules:" in source
    await check_a11y(page)

    # Points that are no number: scoring names the path, the console shows it at the line.
    lines = source.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("points:"))
    lines[at] = lines[at].split("points:")[0] + "points: lots"
    await editor.fill("\n".join(lines) + "\n")
    await page.get_by_role("button", name="Validate").click()
    problem = page.locator(f".problems li[data-line='{at + 1}']")
    await expect(problem).to_contain_text(f"Line {at + 1}")
    await expect(problem).to_contain_text("points")
    await expect(problem).to_contain_text("points: lots")
    await expect(page.locator("#model-gutter .bad")).to_have_text(str(at + 1))
    await check_a11y(page)
    await screenshot(page, "console-scoring-model-error")

    # A YAML syntax error is placed at its line by the console itself.
    broken = source.replace("fit_rules:", "fit_rules: [unclosed", 1)
    await editor.fill(broken)
    await page.get_by_role("button", name="Validate").click()
    syntax_line = next(i for i, line in enumerate(broken.splitlines()) if "[unclosed" in line) + 1
    await expect(page.locator(".problems")).to_contain_text("not valid YAML")
    assert int(await page.locator(".problems li[data-line]").first.get_attribute("data-line") or 0) >= syntax_line

    # Fixed: valid, dry-run, then saved and activated as a new version.
    tag = uuid.uuid4().hex[:6]
    fixed = source.replace("description: ", f"description: Console test {tag}. ", 1)
    await editor.fill(fixed)
    await page.get_by_role("button", name="Validate").click()
    await expect(page.get_by_role("status")).to_contain_text("The model is valid")
    await page.get_by_label("Leads to dry-run").fill("20")
    await page.get_by_role("button", name="Dry run").click()
    await expect(page.get_by_role("heading", name=f"Dry run: the draft against {active_before}")).to_be_visible()
    await check_a11y(page)

    await page.get_by_role("button", name="Save and activate").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved and activated")
    activated = (await console.pipeline.client.get(f"{scoring}{MODELS}/active", headers=ADMIN)).json()
    try:
        assert activated["id"] != active_before
        assert activated["description"].startswith(f"Console test {tag}.")
        await expect(page.get_by_label("Model (YAML)")).to_have_value(fixed.replace("\r\n", "\n"))

        await page.set_viewport_size(PHONE)
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        await check_a11y(page)
        await page.get_by_role("button", name="Roll back the latest activation").click()
        await expect(page.get_by_role("status")).to_contain_text(f"Rolled back: {active_before} is the active")
    finally:
        async with httpx.AsyncClient(timeout=10) as client:
            # Whatever failed above, the other tests score with the model they started with.
            await client.post(f"{scoring}{MODELS}/{active_before}/activate", headers=ADMIN)
