"""The account directory in the console, in a real browser against the real stack: a CSV import and its result,
a free-mail row refused with its line and reason."""

from __future__ import annotations

import uuid

import pytest
from console_support import ConsoleUnderTest, check_a11y, sign_in_as_admin
from playwright.async_api import FilePayload, Page

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


async def test_an_accounts_csv_is_imported_and_its_free_mail_row_refused_with_the_reason(console: ConsoleUnderTest,
                                                                                       page: Page) -> None:
    tag = uuid.uuid4().hex[:8]
    csv = (
        "id,name,domains,industry,employee_count,country,owner_rep_id,tier\n"
        f"acct-{tag}-1,Vandelay {tag},vandelay-{tag}.com,Import/Export,120,US,rep-ada,mid-market\n"
        f"acct-{tag}-2,Kramerica {tag},kramerica-{tag}.io,Consulting,4,GB,,smb\n"
        f"acct-{tag}-3,Someone at Gmail,gmail.com,,,,,\n"
    )
    await sign_in_as_admin(page, console)
    await page.goto(f"{console.url}/accounts")
    await check_a11y(page)
    await page.get_by_label("CSV file", exact=True).set_input_files(
        files=[FilePayload(name="accounts.csv", mimeType="text/csv", buffer=csv.encode())])
    await page.get_by_role("button", name="Import").click()
    await page.wait_for_url(f"{console.url}/accounts/import")

    summary = await page.locator("#import-summary").text_content() or ""
    assert "accounts.csv: 2 created, 0 replaced, 1 refused." in " ".join(summary.split())
    rows = page.get_by_role("table").locator("tbody tr")
    assert await rows.count() == 1
    cells = [" ".join((await cell.text_content() or "").split()) for cell in await rows.first.locator("td").all()]
    assert cells[0] == "4" and cells[1] == "domains"
    assert "'gmail.com' is a free or disposable mail domain" in cells[2]
    await check_a11y(page)

    # The directory now holds the two accounts.
    await page.goto(f"{console.url}/accounts")
    await page.get_by_label("Name or domain").fill(tag)
    await page.get_by_role("button", name="Search").click()
    directory = page.get_by_role("table")
    assert await directory.locator("tbody tr").count() == 2
    assert await directory.get_by_text(f"vandelay-{tag}.com").count() == 1


async def test_a_csv_without_a_name_column_is_refused_with_enrichments_reason(
        console: ConsoleUnderTest, page: Page) -> None:
    await sign_in_as_admin(page, console)
    await page.goto(f"{console.url}/accounts")
    await page.get_by_label("CSV file", exact=True).set_input_files(
        files=[FilePayload(name="nameless.csv", mimeType="text/csv", buffer=b"no,header,we,know\n1,2,3,4\n")])
    await page.get_by_role("button", name="Import").click()
    alert = await page.get_by_role("alert").text_content() or ""
    assert alert.startswith("Enrichment refused the file:")
    await check_a11y(page)
