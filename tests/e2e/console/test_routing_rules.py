"""Routing rules in the console, in a real browser against the real stack: a sales manager edits a draft
(an error shown at its line), dry-runs it over the last leads (the before/after table), activates it, sees
the next lead follow it, and rolls back."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import yaml
from console_support import PHONE, ConsoleUnderTest, check_a11y, screenshot, sign_in
from e2e_support import ADMIN_KEY, eventually
from playwright.async_api import Page, expect

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def _routed_and_found(console: ConsoleUnderTest, lead_id: str, email: str) -> dict[str, Any] | None:
    """The lead's assignment once routing routed it and sla's search finds it (the dry run lists it)."""
    pipeline = console.pipeline
    assignment = await pipeline.assignment(lead_id)
    found = await pipeline.client.get(f"{pipeline.urls['sla']}/v1/leads", params={"email": email}, headers=ADMIN)
    return assignment if assignment and found.status_code == 200 and found.json()["leads"] else None


async def test_a_manager_edits_dry_runs_activates_and_rolls_back_routing_rules(
        console: ConsoleUnderTest, page: Page) -> None:
    pipeline = console.pipeline
    routing = pipeline.urls["routing"]
    tag = uuid.uuid4().hex[:6]
    rep_id, company = f"rep-kiwi-{tag}", f"Kiwi Orchards {tag}"
    # A rep on no team: only a rule naming them sends them a lead, so the other tests' leads never reach them.
    created = await pipeline.client.post(f"{routing}/v1/admin/reps", headers=ADMIN,
                                         json={"id": rep_id, "name": f"Kiri Kiwi {tag}", "email": "kiri@example.com"})
    assert created.status_code == 201, created.text
    before_email = f"first.{tag}@example.com"
    first_lead = await pipeline.submit(email=before_email, first_name="Wiremu", company=company, country="NZ")
    first = await eventually(lambda: _routed_and_found(console, first_lead, before_email))
    assert (first["owner"] or {}).get("rep_id") != rep_id
    active_before = (await pipeline.client.get(f"{routing}/v1/admin/routing-rules", headers=ADMIN)).json()

    username, password = await console.make_user("sales_manager", team_ids=("sales",))
    await sign_in(page, console.url, username, password)
    await page.get_by_role("link", name="Routing rules").first.click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Routing rules")
    await expect(page.get_by_role("heading", name=f"Active: version {active_before['version']}")).to_be_visible()
    await check_a11y(page)

    await page.get_by_role("link", name="Edit a new draft").click()
    editor = page.get_by_label("Rules (YAML or JSON)")
    draft = yaml.safe_load(await editor.input_value())
    assert [rule["id"] for rule in draft["rules"]] == [rule["id"] for rule in active_before["rules"]]
    kiwi_rule = {"id": f"kiwi-{tag}", "name": "Kiwi Orchards to Kiri", "match": "all",
                 "conditions": [{"field": "company", "op": "eq", "value": company}], "rep_id": f"rep-nobody-{tag}"}
    draft["rules"].insert(0, kiwi_rule)
    draft["comment"] = f"Kiwi Orchards to Kiri {tag}"
    text = yaml.safe_dump(draft, sort_keys=False)
    await editor.fill(text)
    await page.get_by_role("button", name="Save draft").click()

    # Routing refuses the unknown rep; the message is shown at the line that names it.
    rep_line = text.splitlines().index(f"  rep_id: rep-nobody-{tag}") + 1
    problem = page.locator(f".problems li[data-line='{rep_line}']")
    await expect(problem).to_contain_text(f"no rep 'rep-nobody-{tag}'")
    await expect(problem).to_contain_text(f"Line {rep_line}")
    await check_a11y(page)

    await editor.fill(text.replace(f"rep-nobody-{tag}", rep_id))
    await page.get_by_role("button", name="Save draft").click()
    await expect(page.get_by_role("status")).to_contain_text("not active yet")
    heading = await page.get_by_role("heading", level=1).text_content() or ""
    version = int(heading.split("version")[1].split()[0])
    assert version > active_before["version"]

    # The dry run: the first lead goes to the team under the active rules, to Kiri under the draft.
    await page.get_by_label("Leads").fill("10")
    await page.get_by_role("button", name="Dry run").click()
    row = page.locator(f"table.dry-run tr[data-lead-id='{first_lead}']")
    await expect(row).to_be_visible()
    cells = row.locator("td")
    await expect(cells.nth(0)).to_have_text(before_email)
    await expect(cells.nth(1)).to_contain_text("rule everyone-to-sales")
    await expect(cells.nth(1)).not_to_contain_text(rep_id)
    await expect(cells.nth(2)).to_contain_text(f"({rep_id})")
    await expect(cells.nth(2)).to_contain_text(f"rule kiwi-{tag}")
    await expect(cells.nth(3)).to_have_text("yes")
    await check_a11y(page)
    await screenshot(page, "console-routing-dry-run")

    await page.get_by_role("button", name=f"Activate version {version}").click()
    await expect(page.get_by_role("status")).to_contain_text(f"Version {version} is now the active routing rules.")
    await expect(page.get_by_role("heading", name=f"Active: version {version}")).to_be_visible()
    try:
        # The next lead from Kiwi Orchards follows the new rule.
        next_email = f"next.{tag}@example.com"
        next_lead = await pipeline.submit(email=next_email, first_name="Aroha", company=company, country="NZ")
        routed = await eventually(lambda: pipeline.assignment(next_lead))
        assert (routed["owner"] or {}).get("rep_id") == rep_id
        assert routed["rule_id"] == f"kiwi-{tag}"

        await page.set_viewport_size(PHONE)
        await page.reload()
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        await check_a11y(page)
        await page.get_by_role("button", name=f"Roll back to version {active_before['version']}").first.click()
        await expect(page.get_by_role("heading", name=f"Active: version {active_before['version']}")).to_be_visible()
    finally:
        async with httpx.AsyncClient(timeout=10) as client:
            # Whatever failed above, the other tests get the rules they started with.
            await client.post(f"{routing}/v1/admin/routing-rules/versions/{active_before['version']}/activate",
                              headers=ADMIN)
