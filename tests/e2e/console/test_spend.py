"""Spend and currency rates in the console, in a real browser against the real stack, as marketing ops: a rate
table from a day on, a spend recorded and removed, a CSV refused whole with its row at fault, then imported."""

from __future__ import annotations

import uuid

import pytest
from console_support import ConsoleUnderTest, check_a11y, screenshot, sign_in
from playwright.async_api import FilePayload, Page

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

# Far enough ahead that no other test's report reads it; removed again at the end.
LATER = "2099-01-01"


async def _alert_or_status(page: Page) -> str:
    return " ".join((await page.locator(".flash").first.text_content() or "").split())


async def test_marketing_ops_set_rates_from_a_day_and_record_and_import_spend(
        console: ConsoleUnderTest, page: Page) -> None:
    tag = uuid.uuid4().hex[:8]
    campaign = f"e2e-{tag}"
    username, password = await console.make_user("marketing_ops")
    await sign_in(page, console.url, username, password)
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Spend & rates").click()
    await page.wait_for_url(f"{console.url}/spend")
    await check_a11y(page)

    # A rate table from a day on: the tables before it stay.
    tables = page.get_by_role("region", name="Currency rate tables")
    before = " ".join((await tables.text_content() or "").split())
    await page.get_by_label("Rates", exact=True).fill("EUR=1.07, GBP=1.24")
    await page.get_by_label("In force from").fill(LATER)
    await page.get_by_role("button", name="Save rates").click()
    await page.wait_for_url(f"{console.url}/spend")
    assert await _alert_or_status(page) == f"Currency rates saved, in force from {LATER} on."
    row = tables.locator("tbody tr", has_text=LATER)
    assert "EUR = 1.07, GBP = 1.24" in " ".join((await row.text_content() or "").split())
    # The reporting currency takes no rate: sla's reason at the field.
    await page.get_by_label("Rates", exact=True).fill("USD=1")
    await page.get_by_role("button", name="Save rates").click()
    assert "USD is the reporting currency" in (await page.locator("#rates-error").text_content() or "")
    await check_a11y(page)

    # One spend recorded through the form; sla refuses a currency that is not one, at its field.
    await page.goto(f"{console.url}/spend")
    for label, value in (("Campaign", campaign), ("Source", "linkedin"), ("First day", "2026-11-01"),
                         ("Last day", "2026-11-30"), ("Amount", "3000"), ("Currency", "EUX")):
        await page.get_by_label(label, exact=True).fill(value)
    await page.get_by_role("button", name="Record spend").click()
    assert "ISO 4217" in (await page.locator("#currency-error").text_content() or "")
    assert await page.get_by_label("Campaign", exact=True).input_value() == campaign
    await page.get_by_label("Currency", exact=True).fill("EUR")
    await page.get_by_role("button", name="Record spend").click()
    await page.wait_for_url(f"{console.url}/spend")
    assert await _alert_or_status(page) == f"Spend of 3000.00 EUR on {campaign} (linkedin) recorded."

    # A CSV with one row at fault imports nothing and names the row; the right one imports whole.
    header = "utm_campaign,source,period_from,period_to,amount,currency\n"
    bad = header + f"{campaign},google,2026-10-01,2026-10-31,100,USD\n{campaign},google,2026-10-01,2026-09-30,1,USD\n"
    await page.get_by_label("CSV file", exact=True).set_input_files(
        files=[FilePayload(name="bad.csv", mimeType="text/csv", buffer=bad.encode())])
    await page.get_by_role("button", name="Import").click()
    await page.wait_for_url(f"{console.url}/spend/import")
    assert (await page.locator("#import-summary").text_content() or "").startswith("SLA refused the file:")
    cells = [" ".join((await c.text_content() or "").split()) for c in await page.locator("tbody tr td").all()]
    assert cells[0] == "line 3: period_to" and "period_to must not be before period_from" in cells[1]
    await check_a11y(page)
    await page.goto(f"{console.url}/spend")
    good = header + f"{campaign},google,2026-10-01,2026-10-31,3100,USD\n"
    await page.get_by_label("CSV file", exact=True).set_input_files(
        files=[FilePayload(name="q4.csv", mimeType="text/csv", buffer=good.encode())])
    await page.get_by_role("button", name="Import").click()
    assert " ".join((await page.locator("#import-summary").text_content() or "").split()) == \
        "q4.csv: 1 spends imported."

    # Both spends listed under the campaign; one removed.
    await page.goto(f"{console.url}/spend?campaign={campaign}")
    spends = page.get_by_role("region", name="Spends")
    assert await spends.locator("tbody tr").count() == 2
    await screenshot(page, "console-spend")
    for source in ("linkedin", "google"):
        await spends.locator("tbody tr", has_text=source).get_by_role("button", name="Remove").click()
        await page.wait_for_url(f"{console.url}/spend")
        await page.goto(f"{console.url}/spend?campaign={campaign}")
    assert await page.get_by_text("No spend matches.").count() == 1

    # The dated table removed again: the tables are as they were.
    await tables.locator("tbody tr", has_text=LATER).get_by_role("button", name="Remove").click()
    await page.wait_for_url(f"{console.url}/spend")
    assert await _alert_or_status(page) == f"The rate table in force from {LATER} was removed."
    assert " ".join((await tables.text_content() or "").split()) == before
