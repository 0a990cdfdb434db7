"""A real browser (headless Chromium) posting to capture from another origin: a plain HTML form and
the embed script both reach lead.captured with their UTM parameters."""

from __future__ import annotations

import asyncio
import functools
import http.server
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright

from leadflow_contracts import topics

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ADMIN = {"Authorization": "Bearer test-admin-key-0123456789"}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A static web site on its own origin (another port), as a marketer's page would be."""
    root = tmp_path_factory.mktemp("site")
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


async def define_form(capture_url: str, **fields: object) -> str:
    key = f"web-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=capture_url) as client:
        response = await client.post("/v1/admin/forms", headers=ADMIN, json={"key": key, "name": "Web", **fields})
    assert response.status_code == 201, response.text
    return key


async def test_plain_html_form_lands_on_the_success_url_and_reaches_kafka(live_capture, site, browser, read_topic):
    site_url, root = site
    key = await define_form(live_capture, allowed_origins=[site_url], success_url=f"{site_url}/thanks.html",
                            required_fields=["email", "company"])
    (root / "thanks.html").write_text("<!doctype html><title>Thanks</title><h1>Thanks for your interest</h1>")
    (root / "plain.html").write_text(f"""<!doctype html>
<html><head><meta charset="utf-8"><meta name="referrer" content="unsafe-url"><title>Spring campaign</title></head>
<body>
<form method="post" action="{live_capture}/v1/forms/{key}/submissions">
  <input name="email" type="email">
  <input name="first_name">
  <input name="company">
  <input type="hidden" name="utm_source" value="google">
  <input type="hidden" name="utm_medium" value="cpc">
  <input type="hidden" name="utm_campaign" value="spring-sale">
  <input type="hidden" name="page_title" value="Spring campaign">
  <input name="_hp" style="display:none">
  <button type="submit">Send</button>
</form>
</body></html>""")
    page = await browser.new_page()
    try:
        await page.goto(f"{site_url}/plain.html?utm_term=crm&gclid=abc123")
        await page.fill("input[name=email]", "plain.form@example.com")
        await page.fill("input[name=first_name]", "Plain")
        await page.fill("input[name=company]", "Static Sites Ltd")
        async with page.expect_navigation(url=f"{site_url}/thanks.html?lead_id=*"):
            await page.click("button[type=submit]")
        assert await page.text_content("h1") == "Thanks for your interest"
        lead_id = page.url.split("lead_id=", 1)[1]
    finally:
        await page.close()

    events = await read_topic(topics.CAPTURED, lambda evs: any(e.subject == lead_id for e in evs))
    data = next(e for e in events if e.subject == lead_id).data
    assert data.contact.email == "plain.form@example.com"
    assert data.contact.company == "Static Sites Ltd"
    assert data.attribution.utm_source == "google"
    assert data.attribution.utm_medium == "cpc"
    assert data.attribution.utm_campaign == "spring-sale"
    # The browser's Referer (the page itself) fills the landing page and the query's UTM and click ids.
    assert data.attribution.landing_page == f"{site_url}/plain.html?utm_term=crm&gclid=abc123"
    assert data.attribution.utm_term == "crm"
    assert data.attribution.gclid == "abc123"


async def test_plain_html_form_with_errors_lands_on_the_error_url(live_capture, site, browser):
    site_url, root = site
    key = await define_form(live_capture, allowed_origins=[site_url], error_url=f"{site_url}/error.html")
    (root / "error.html").write_text("<!doctype html><title>Error</title><h1>Please check the form</h1>")
    (root / "plain-bad.html").write_text(f"""<!doctype html><html><body>
<form method="post" action="{live_capture}/v1/forms/{key}/submissions">
  <input name="email"><button type="submit">Send</button>
</form></body></html>""")
    page = await browser.new_page()
    try:
        await page.goto(f"{site_url}/plain-bad.html")
        await page.fill("input[name=email]", "not-an-email")
        async with page.expect_navigation(url=f"{site_url}/error.html?*"):
            await page.click("button[type=submit]")
        assert "error.email=invalid_email" in page.url
    finally:
        await page.close()


def embed_page(capture_url: str, key: str) -> str:
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Webinar sign-up</title></head>
<body>
<form data-leadflow-form="{key}" data-leadflow-success="You are on the list!">
  <label>Email <input name="email"></label>
  <label>Name <input name="first_name"></label>
  <label><input type="checkbox" name="consent" value="yes"> Keep me posted</label>
  <button type="submit">Register</button>
</form>
<script src="{capture_url}/v1/forms/{key}/embed.js" async></script>
</body></html>"""


async def test_embed_script_submits_with_fetch_and_shows_success(live_capture, site, browser, read_topic):
    site_url, root = site
    key = await define_form(live_capture, allowed_origins=[site_url], min_fill_seconds=1, consent_required=True,
                            consent_text="Keep me posted", consent_version="2026-11")
    (root / "embed.html").write_text(embed_page(live_capture, key))
    (root / "landing.html").write_text(f'<!doctype html><a id="go" href="{site_url}/embed.html'
                                       '?utm_source=linkedin&utm_medium=social&utm_campaign=webinar-q4&fbclid=fb1">'
                                       "go</a>")
    context = await browser.new_context()
    page = await context.new_page()
    try:
        await page.goto(f"{site_url}/landing.html")
        await page.click("#go")
        await page.wait_for_selector(f"form[data-leadflow-form='{key}'][data-leadflow-ready]")

        # Invalid first: the errors show inline next to their fields.
        await page.fill("input[name=email]", "broken")
        await page.click("button[type=submit]")
        email_error = await page.wait_for_selector(".leadflow-field-error[data-field=email]")
        assert "email" in (await email_error.text_content() or "")
        assert await page.get_attribute("input[name=email]", "aria-invalid") == "true"
        consent_error = await page.wait_for_selector(".leadflow-field-error[data-field=consent]")
        assert await consent_error.text_content() == "Keep me posted"

        await asyncio.sleep(1.1)  # a person takes longer than min_fill_seconds
        await page.fill("input[name=email]", "embed.user@example.com")
        await page.fill("input[name=first_name]", "Embed")
        await page.check("input[name=consent]")
        await page.click("button[type=submit]")
        message = await page.wait_for_selector("[data-leadflow-message][data-kind=success]")
        assert await message.text_content() == "You are on the list!"
        assert await page.query_selector(".leadflow-field-error") is None
        lead_id = await page.get_attribute(f"form[data-leadflow-form='{key}']", "data-leadflow-lead-id")
        assert lead_id
    finally:
        await context.close()

    events = await read_topic(topics.CAPTURED, lambda evs: any(e.subject == lead_id for e in evs))
    data = next(e for e in events if e.subject == lead_id).data
    assert data.contact.email == "embed.user@example.com"
    assert data.attribution.utm_source == "linkedin"
    assert data.attribution.utm_medium == "social"
    assert data.attribution.utm_campaign == "webinar-q4"
    assert data.attribution.fbclid == "fb1"
    assert data.attribution.landing_page.startswith(f"{site_url}/embed.html?utm_source=linkedin")
    assert data.attribution.referrer == f"{site_url}/landing.html"
    assert data.attribution.page_title == "Webinar sign-up"
    assert data.consent is not None and data.consent.text_version == "2026-11"
    assert data.visitor_id
    assert "_hp" not in data.custom_fields and "_rendered_at" not in data.custom_fields
