"""The console under test: the five services and the console as processes on the suite's real Kafka and
PostgreSQL, a headless Chromium, and helpers to sign in, check accessibility and take screenshots."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e_support import Pipeline, running_pipeline
from playwright.async_api import Page, ViewportSize

from leadflow_console.auth import FIRST_ADMIN, Role, create_user
from leadflow_kit.db import Database
from leadflow_stack.console import CONSOLE, console_secrets

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
PASSWORD = "correct horse battery staple"


@dataclass
class ConsoleUnderTest:
    """The running console (``url``), the pipeline behind it, and its first admin's password."""

    url: str
    database_url: str
    pipeline: Pipeline
    admin_password: str
    users: dict[str, Any] = field(default_factory=dict)

    async def make_user(self, role: Role, *, rep_id: str | None = None, team_ids: tuple[str, ...] = (),
                        username: str | None = None, password: str = PASSWORD) -> tuple[str, str]:
        """A new enabled user with ``role`` (and rep / team links); returns (username, password)."""
        name = username or f"{role.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
        db = Database(self.database_url, pool_size=1)
        try:
            await create_user(db, username=name, password=password, role=role, rep_id=rep_id, team_ids=team_ids,
                              display_name=name.replace("-", " ").title())
        finally:
            await db.dispose()
        return name, password


@asynccontextmanager
async def running_console(infra: Any, tmp: Path) -> AsyncIterator[ConsoleUnderTest]:
    async with running_pipeline(infra) as pipeline:
        secrets = await console_secrets(tmp / CONSOLE, pipeline.urls, "dev-admin-key")
        database_url = await infra.new_database(CONSOLE)
        config = await infra.start_service(CONSOLE, secrets.env(pipeline.urls), database_url=database_url,
                                           seed_demo=True, timeout=90)
        try:
            yield ConsoleUnderTest(config.url, database_url, pipeline, secrets.admin_password)
        finally:
            await infra.stop_service(CONSOLE)


async def sign_in(page: Page, console_url: str, username: str, password: str) -> None:
    """Sign in through the form at ``/``; returns on the home page."""
    await page.goto(f"{console_url}/")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    async with page.expect_navigation(url=f"{console_url}/home"):
        await page.get_by_role("button", name="Sign in").click()


async def sign_in_as_admin(page: Page, console: ConsoleUnderTest) -> None:
    await sign_in(page, console.url, FIRST_ADMIN, console.admin_password)


async def check_a11y(page: Page) -> None:
    """The page passes axe-core (no violation of impact serious or critical) and loads nothing from
    another site (no http(s):// script, stylesheet, image or frame)."""
    external = await page.evaluate("""() => [...document.querySelectorAll(
        'script[src], link[href], img[src], iframe[src], source[src], video[src], audio[src]')]
        .map(e => e.getAttribute('src') || e.getAttribute('href'))
        .filter(u => /^(https?:)?\\/\\//i.test(u) && !u.startsWith(location.origin))""")
    assert external == [], f"{page.url} references assets from another site: {external}"
    # Served by the console itself: its Content-Security-Policy refuses inline scripts.
    await page.add_script_tag(url="/static/vendor/axe.min.js")
    results = await page.evaluate("async () => await axe.run(document)")
    serious = [v for v in results["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == [], f"{page.url}: axe-core violations:\n" + "\n".join(
        f"- {v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}" for v in serious)


async def screenshot(page: Page, name: str) -> Path | None:
    """With ``CONSOLE_SCREENSHOTS=1``, the whole page as ``docs/screenshots/<name>.png``."""
    if os.environ.get("CONSOLE_SCREENSHOTS") != "1":
        return None
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
