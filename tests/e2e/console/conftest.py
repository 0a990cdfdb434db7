"""Fixtures of the console's browser tests: one stack (Kafka, PostgreSQL, the five services, the console)
for all of them, one headless Chromium, and a fresh browser context (no cookies) per test.

Helpers (sign-in per role, ``check_a11y``, ``screenshot``) live in ``console_support``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from console_support import CHROMIUM, CHROMIUM_ARGS, DESKTOP, ConsoleUnderTest, running_console
from playwright.async_api import Browser, BrowserContext, Page, async_playwright


# Package scope (this folder is a package for it): the stack stops after the last console test, before
# the other e2e modules start their own services of the same names on the same infrastructure.
@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def console(infra: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ConsoleUnderTest]:
    async with running_console(infra, tmp_path_factory.mktemp("console")) as started:
        yield started


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    created = await browser.new_context(viewport=DESKTOP)
    try:
        yield created
    finally:
        await created.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(context: BrowserContext) -> AsyncIterator[Page]:
    opened = await context.new_page()
    yield opened


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The first test also waits for the whole stack to start (about two minutes, more on a busy machine).
    for item in items:
        if "e2e/console" in str(item.path):
            item.add_marker(pytest.mark.timeout(900))
    # The fuzzer runs after the other console tests: what it creates must not surprise them.
    fuzz = [item for item in items if item.path.name == "test_schemathesis.py" and "e2e/console" in str(item.path)]
    if fuzz:
        last_console = max(i for i, item in enumerate(items) if "e2e/console" in str(item.path))
        rest = [item for item in items if item not in fuzz]
        position = last_console + 1 - len(fuzz)
        items[:] = rest[:position] + fuzz + rest[position:]
