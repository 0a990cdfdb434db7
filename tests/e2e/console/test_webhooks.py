"""Webhook subscriptions in the console, in a real browser against the real stack: subscribe a receiver, see a
lead's delivery in the log with its failed first attempt and its retry, and replay it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
import uvicorn
from console_support import ConsoleUnderTest, check_a11y, sign_in_as_admin
from e2e_support import eventually
from playwright.async_api import Page
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from leadflow_stack.procs import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@dataclass
class FlakyReceiver:
    """A CRM stand-in whose first answer is a 500; it keeps each delivery's webhook id and raw request."""

    port: int = field(default_factory=free_port)
    received: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def receive(self, request: Request) -> Response:
        self.received.append((request.headers["webhook-id"], await request.body(), dict(request.headers)))
        return Response(status_code=500 if len(self.received) == 1 else 204)

    def webhook_ids(self) -> list[str]:
        return [webhook_id for webhook_id, _body, _headers in self.received]


@pytest_asyncio.fixture(loop_scope="session")
async def receiver() -> AsyncIterator[FlakyReceiver]:
    started = FlakyReceiver()
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/hooks", started.receive, methods=["POST"])]),
                                           host="127.0.0.1", port=started.port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        yield started
    finally:
        server.should_exit = True
        await task


async def test_a_subscription_is_created_and_its_deliveries_logged_and_replayed(
        console: ConsoleUnderTest, page: Page, receiver: FlakyReceiver) -> None:
    form = f"wh-{uuid.uuid4().hex[:8]}"
    await sign_in_as_admin(page, console)
    await page.goto(f"{console.url}/webhooks/new")
    await check_a11y(page)
    await page.get_by_label("URL").fill(receiver.url)
    await page.get_by_label("Description").fill("console test receiver")
    await page.get_by_label("lead.routed").uncheck()
    await page.get_by_label("lead.captured", exact=True).check()
    # Only the fills of one form: other tests' leads do not reach this receiver.
    await page.get_by_label("Forms").fill(form)
    await page.get_by_role("button", name="Create subscription").click()
    await page.get_by_role("heading", name="Subscription created").wait_for()
    secret = (await page.locator("#webhook-secret").text_content() or "").strip()
    assert secret.startswith("whsec_")
    await check_a11y(page)
    await page.get_by_role("link", name="Open the subscription and its delivery log").click()
    subscription_url = page.url
    assert await page.get_by_label("Forms").input_value() == form

    # A fill of that form: routing sends lead.captured, the receiver fails it once, the retry lands.
    capture = console.pipeline.urls["capture"]
    created = await console.pipeline.client.post(
        f"{capture}/v1/admin/forms", headers={"Authorization": "Bearer dev-admin-key"},
        json={"key": form, "name": "Webhook test form"})
    assert created.status_code == 201, created.text
    fill = await console.pipeline.client.post(f"{capture}/v1/forms/{form}/submissions",
                                              json={"email": f"wh.{uuid.uuid4().hex[:6]}@initech.example"})
    assert fill.status_code == 202, fill.text
    lead_id = fill.json()["lead_id"]
    async def retried() -> bool:
        return len(receiver.received) >= 2

    await eventually(retried, timeout=90)
    webhook_id, body, headers = receiver.received[-1]
    Webhook(secret).verify(body, headers)  # signed with the secret the console showed once

    async def delivered_row() -> Any:
        await page.goto(subscription_url)
        row = page.locator(f'tr[data-webhook-id="{webhook_id}"]')
        text = " ".join((await row.text_content() or "").split()) if await row.count() else ""
        return row if "delivered" in text else None

    row = await eventually(delivered_row, timeout=30, interval=1)
    text = " ".join((await row.text_content() or "").split())
    assert "lead.captured" in text and lead_id in text and "delivered 2" in text
    await check_a11y(page)

    # Its attempts: the failed one, then the delivery.
    await row.get_by_role("link", name=webhook_id).click()
    attempts = page.get_by_role("table").locator("tbody tr")
    assert await attempts.count() == 2
    assert "failed" in (await attempts.nth(0).text_content() or "") and "500" in (
        await attempts.nth(0).text_content() or "")
    assert "delivered" in (await attempts.nth(1).text_content() or "")
    await check_a11y(page)

    # Replay: the receiver gets it again, with the same webhook id.
    await page.get_by_role("button", name="Replay this delivery").click()
    await page.wait_for_url(subscription_url)
    assert f"Delivery {webhook_id} queued to be sent again." in (await page.get_by_role("status").first.text_content()
                                                                 or "")
    async def replayed() -> bool:
        return receiver.webhook_ids().count(webhook_id) >= 3

    await eventually(replayed, timeout=60)


async def test_an_unknown_event_type_is_refused_at_the_field(console: ConsoleUnderTest, page: Page) -> None:
    await sign_in_as_admin(page, console)
    await page.goto(f"{console.url}/webhooks/new")
    await page.get_by_label("URL").fill("http://127.0.0.1:9/hooks")
    await page.get_by_label("Other types or patterns").fill("lead.exploded")
    await page.get_by_role("button", name="Create subscription").click()
    error = await page.locator("#event_types-error").text_content() or ""
    assert "unknown event type(s) lead.exploded" in error
    await check_a11y(page)
