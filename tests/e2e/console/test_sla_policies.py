"""SLA policies and calendars in the console, in a real browser against the real stack; and a rep refused
every configuration page of routing rules, the scoring model and SLA policies."""

from __future__ import annotations

import uuid

import pytest
from console_support import ConsoleUnderTest, check_a11y, screenshot, sign_in
from e2e_support import ADMIN_KEY
from playwright.async_api import Page, expect

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def test_a_manager_creates_an_sla_policy_after_fixing_the_field_sla_refused(console: ConsoleUnderTest,
                                                                                  page: Page) -> None:
    pipeline = console.pipeline
    tag = uuid.uuid4().hex[:6]
    team = await pipeline.client.post(f"{pipeline.urls['routing']}/v1/admin/teams", headers=ADMIN,
                                      json={"id": f"night-{tag}", "name": f"Night shift {tag}"})
    assert team.status_code == 201, team.text
    rep = await pipeline.client.post(f"{pipeline.urls['routing']}/v1/admin/reps", headers=ADMIN,
                                     json={"id": f"owl-{tag}", "name": f"Night Owl {tag}", "team_id": f"night-{tag}"})
    assert rep.status_code == 201, rep.text
    username, password = await console.make_user("sales_manager", team_ids=(f"night-{tag}",))
    await sign_in(page, console.url, username, password)
    await page.get_by_role("link", name="SLA policies").first.click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("SLA policies")
    await check_a11y(page)

    await page.get_by_label("Tier").select_option("warm")
    await page.get_by_label("Team", exact=True).select_option(f"night-{tag}")
    await page.get_by_label("Name").fill(f"Warm night {tag}")
    await page.get_by_label("Time to first touch (seconds)").fill("1800")
    await page.get_by_label("Count only business hours").check()
    await page.get_by_label("Time zone").fill("Mars/Olympus_Mons")
    await page.get_by_role("button", name="Create policy").click()

    # sla refuses the zone; its message is next to the field, which is marked invalid.
    zone = page.get_by_label("Time zone")
    await expect(zone).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#f-business_hours-timezone-error")).to_contain_text("unknown time zone")
    await expect(page.get_by_label("Name")).to_have_value(f"Warm night {tag}")
    await check_a11y(page)

    await zone.fill("Pacific/Auckland")
    await page.get_by_role("button", name="Create policy").click()
    await expect(page.get_by_role("status")).to_contain_text(f"Policy “Warm night {tag}” created.")
    row = page.locator("table.policies tr", has_text=f"Warm night {tag}")
    await expect(row).to_contain_text(f"night-{tag}")
    await expect(row).to_contain_text("1800 s")
    await expect(row).to_contain_text("Pacific/Auckland")
    await screenshot(page, "console-sla-policies")

    listed = await pipeline.client.get(f"{pipeline.urls['sla']}/v1/admin/sla-policies", headers=ADMIN)
    [policy] = [p for p in listed.json() if p["team_id"] == f"night-{tag}"]
    assert (policy["tier"], policy["target_seconds"], policy["business_hours"]["timezone"]) == (
        "warm", 1800, "Pacific/Auckland")

    # A rep's own calendar: the manager's team's reps only (the demo's Ada is another team's).
    await expect(page.get_by_role("link", name="Set the calendar of Ada Lovelace")).to_have_count(0)
    await page.get_by_role("link", name=f"Set the calendar of Night Owl {tag}").click()
    await page.get_by_label("Time zone").fill("Europe/London")
    await page.get_by_label("Saturday").check()
    await check_a11y(page)
    await page.get_by_role("button", name="Save calendar").click()
    await expect(page.get_by_role("status")).to_contain_text(f"Night Owl {tag}'s calendar saved.")
    await expect(page.locator("tr", has_text=f"owl-{tag}")).to_contain_text("Sat 09:00 to 17:00 Europe/London")
    await page.get_by_role("link", name=f"Edit the calendar of Night Owl {tag}").click()
    await page.get_by_role("button", name="Remove the calendar").click()
    await expect(page.locator("tr", has_text=f"owl-{tag}")).to_contain_text("none: the policy's hours")


@pytest.mark.parametrize("path", ["/routing-rules", "/routing-rules/draft", "/scoring-model", "/sla-policies"])
async def test_a_rep_is_refused_every_configuration_page(console: ConsoleUnderTest, page: Page, path: str) -> None:
    username, password = await console.make_user("rep", rep_id="rep-grace")
    await sign_in(page, console.url, username, password)
    for label in ("Routing rules", "Scoring model", "SLA policies"):
        await expect(page.get_by_role("link", name=label)).to_have_count(0)
    response = await page.goto(f"{console.url}{path}")
    assert response is not None and response.status == 403
    await expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    await check_a11y(page)
