"""Reports in a real browser against the real stack: fills posted to capture show in the funnel's charts
and tables, a filter changes the figures, the CSV downloads the service's figures; each role sees only
the reports it may open."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from console_support import PHONE, ConsoleUnderTest, check_a11y, screenshot, sign_in
from e2e_support import ADMIN_KEY, eventually
from playwright.async_api import Download, Page

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SOURCES = ("google", "google", "linkedin")


async def _service_report(console: ConsoleUnderTest, service: str, path: str, **params: str) -> dict[str, Any]:
    pipeline = console.pipeline
    response = await pipeline.client.get(f"{pipeline.urls[service]}{path}", params=params,
                                         headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _post_fills(console: ConsoleUnderTest) -> tuple[str, list[str]]:
    """Three fills of a campaign of their own; returns the campaign and the leads once sla and enrichment
    count them."""
    campaign = f"report-{uuid.uuid4().hex[:6]}"
    leads = [await console.pipeline.submit(email=f"{campaign}-{i}@initech.example", first_name="Ada",
                                           last_name=f"Park{i}", company="Initech", utm_source=source,
                                           utm_campaign=campaign)
             for i, source in enumerate(SOURCES)]

    async def counted() -> bool:
        funnel = await _service_report(console, "sla", "/v1/reports/funnel", group_by="utm_campaign")
        quality = await _service_report(console, "enrichment", "/v1/reports/data-quality", group_by="source")
        in_funnel = any(g["group"] == campaign and g["counts"]["captured"] == 3 for g in funnel["groups"])
        return in_funnel and quality["total"]["fills"] >= 3

    await eventually(counted)
    return campaign, leads


async def _add_money(console: ConsoleUnderTest, campaign: str, leads: list[str]) -> None:
    """The CRM wins the first lead (12000 USD) and opens an opportunity on the second (5000 USD); the
    campaign spent 900 USD today on google."""
    pipeline = console.pipeline
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    for lead_id, (kind, amount) in zip(leads, (("converted", "12000"), ("opportunity_created", "5000")), strict=False):
        assignment = await eventually(lambda lead_id=lead_id: pipeline.assignment(lead_id))
        response = await pipeline.client.post(
            f"{pipeline.urls['routing']}/v1/leads/{lead_id}/events", headers=admin,
            json={"type": kind, "rep_id": (assignment.get("owner") or {}).get("rep_id"), "amount": amount,
                  "currency": "USD"})
        assert response.status_code == 202, response.text
    today = datetime.now(UTC).date().isoformat()
    response = await pipeline.client.post(f"{pipeline.urls['sla']}/v1/admin/campaigns/spend", headers=admin, json={
        "utm_campaign": campaign, "source": "google", "period_from": today, "period_to": today, "amount": "900",
        "currency": "USD"})
    assert response.status_code == 201, response.text

    async def counted() -> bool:
        funnel = await _service_report(console, "sla", "/v1/reports/funnel", group_by="utm_campaign")
        return any(g["group"] == campaign and g["revenue"] == "12000.00" and g["pipeline"] == "5000.00"
                   for g in funnel["groups"])

    await eventually(counted)


async def _table_row(page: Page, caption: str, header: str) -> list[str]:
    table = page.locator("table", has=page.locator("caption", has_text=caption))
    row = table.locator("tbody tr", has=page.get_by_role("rowheader", name=header, exact=True))
    return [cell.strip() for cell in await row.locator("th, td").all_text_contents()]


async def _downloaded_lines(download: Download) -> list[str]:
    text = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8")
    return text.splitlines()


async def _charts_drawn(page: Page) -> int:
    await page.wait_for_function("() => document.querySelectorAll('canvas[data-chart]').length > 0 && "
                                 "[...document.querySelectorAll('canvas[data-chart]')].every(c => c.dataset.drawn)")
    return await page.locator("canvas[data-drawn='true']").count()


async def test_marketing_ops_filters_the_funnel_and_downloads_its_csv(console: ConsoleUnderTest, page: Page) -> None:
    campaign, leads = await _post_fills(console)
    await _add_money(console, campaign, leads)
    username, password = await console.make_user("marketing_ops")
    await sign_in(page, console.url, username, password)
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Reports").click()
    await page.get_by_role("link", name="Funnel", exact=True).first.click()
    await page.wait_for_url(f"{console.url}/reports/funnel")
    assert await page.get_by_role("heading", level=1).text_content() == "Funnel"
    assert await _charts_drawn(page) == 3
    total = await _table_row(page, "Leads at each stage", "total")
    assert int(total[1].replace(",", "")) >= 3
    await check_a11y(page)

    # Grouped by campaign, this campaign's own row has its three leads.
    await page.get_by_label("Group by").select_option("utm_campaign")
    await page.get_by_role("button", name="Apply").click()
    await page.wait_for_url("**/reports/funnel?*group_by=utm_campaign*")
    row = await _table_row(page, "Leads at each stage", campaign)
    assert row[1] == "3"
    assert (await _table_row(page, "Pipeline, revenue and deals", campaign))[1:5] == [
        "5000.00 USD", "12000.00 USD", "1", "1"]
    assert (await _table_row(page, "Spend and cost per lead", campaign))[1:3] == ["900.00 USD", "300.00 USD"]

    async with page.expect_download() as downloading:
        await page.get_by_role("link", name="Download CSV").click()
    download = await downloading.value
    assert download.suggested_filename.startswith("funnel-") and download.suggested_filename.endswith(".csv")
    lines = await _downloaded_lines(download)
    assert lines[0].startswith("group,captured,mql,accepted,sql,opportunity,converted,")
    assert any(line.startswith(f"{campaign},3,") for line in lines)
    assert lines[-1].startswith("total,")

    # A window after today holds none of them.
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    await page.get_by_label("From (first day)").fill(tomorrow)
    await page.get_by_label("Through (last day)").fill(tomorrow)
    await page.get_by_role("button", name="Apply").click()
    await page.wait_for_url(f"**/reports/funnel?from={tomorrow}*")
    assert await page.get_by_role("rowheader", name=campaign, exact=True).count() == 0
    assert (await _table_row(page, "Leads at each stage", "total"))[1] == "0"

    await page.goto(f"{console.url}/reports/funnel?group_by=source")
    assert (await _table_row(page, "Leads at each stage", "linkedin"))[1] != "0"
    await _charts_drawn(page)
    await screenshot(page, "funnel")

    await page.set_viewport_size(PHONE)
    await page.reload()
    await _charts_drawn(page)
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    await check_a11y(page)


async def test_the_other_reports_chart_their_figures_and_name_a_wrong_filter(
        console: ConsoleUnderTest, page: Page) -> None:
    await _post_fills(console)
    username, password = await console.make_user("marketing_ops")
    await sign_in(page, console.url, username, password)

    await page.goto(f"{console.url}/reports/trend?tz=Europe/Paris&interval=day&view=cohort")
    assert await _charts_drawn(page) == 2
    assert (await _table_row(page, "Cohorts by capture period", "total"))[1] != "0"
    await check_a11y(page)

    response = await page.goto(f"{console.url}/reports/trend?tz=Mars/Olympus&interval=fortnight")
    assert response is not None and response.status == 422
    assert await page.get_by_label("Time zone").get_attribute("aria-invalid") == "true"
    assert "not an IANA time zone" in (await page.locator("#tz-error").text_content() or "")
    assert "Choose one of: Day, Week, Month." in (await page.locator("#interval-error").text_content() or "")
    await check_a11y(page)

    await page.goto(f"{console.url}/reports/speed-to-lead?group_by=team")
    assert await _charts_drawn(page) == 2
    assert await page.get_by_role("rowheader", name="total", exact=True).count() == 2
    await check_a11y(page)

    await page.goto(f"{console.url}/reports/data-quality?group_by=source")
    assert await _charts_drawn(page) == 2
    assert int((await _table_row(page, "Data quality of form fills", "linkedin"))[1]) >= 1
    await check_a11y(page)
    async with page.expect_download() as downloading:
        await page.get_by_role("link", name="Download CSV").click()
    header = (await _downloaded_lines(await downloading.value))[0]
    assert header.startswith("group,bucket,fills,duplicates,")


async def test_a_sales_manager_reads_only_the_sla_figures(console: ConsoleUnderTest, page: Page) -> None:
    username, password = await console.make_user("sales_manager", team_ids=("emea",))
    await sign_in(page, console.url, username, password)
    await page.goto(f"{console.url}/reports")
    links = await page.locator(".report-cards a").all_text_contents()
    assert links == ["Speed to lead and SLA"]
    await check_a11y(page)
    response = await page.goto(f"{console.url}/reports/speed-to-lead")
    assert response is not None and response.status == 200
    for refused in ("/reports/funnel", "/reports/funnel.csv", "/reports/data-quality"):
        response = await page.goto(f"{console.url}{refused}")
        assert response is not None and response.status == 403, refused


async def test_a_rep_is_refused_every_report(console: ConsoleUnderTest, page: Page) -> None:
    username, password = await console.make_user("rep", rep_id="rep-ada")
    await sign_in(page, console.url, username, password)
    assert await page.get_by_role("navigation", name="Main").get_by_role("link", name="Reports").count() == 0
    for refused in ("/reports", "/reports/funnel", "/reports/speed-to-lead", "/reports/funnel.csv",
                    "/reports/data-quality.csv"):
        response = await page.goto(f"{console.url}{refused}")
        assert response is not None and response.status == 403, refused
        assert await page.get_by_role("heading", level=1).text_content() == "Not allowed"
    await check_a11y(page)
