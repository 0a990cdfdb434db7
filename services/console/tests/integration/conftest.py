"""The console in-process (its real lifespan) on a fresh database of the suite's real PostgreSQL, with a
clock the tests move. No service runs behind it: these tests need none."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from fastapi import FastAPI

import leadflow_console
from leadflow_console.app import create_app
from leadflow_console.auth import Role, create_user
from leadflow_console.deps import Console
from leadflow_console.settings import Settings
from leadflow_kit.clock import FrozenClock
from leadflow_kit.migrations import upgrade
from leadflow_stack.procs import free_port

MIGRATIONS = Path(leadflow_console.__file__).parent / "migrations"
PASSWORD = "correct horse battery staple"
SECRET = "integration-test-secret-0123456789abcdef"


def form_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


@dataclass
class ConsoleHarness:
    app: FastAPI
    settings: Settings
    clock: FrozenClock

    @property
    def console(self) -> Console:
        console: Console = self.app.state.deps
        return console

    async def user(self, username: str, role: Role = "admin", **links: Any) -> str:
        await create_user(self.console.db, username=username, password=PASSWORD, role=role, **links)
        return username

    @staticmethod
    async def sign_in(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
        page = await client.get("/")
        return await client.post("/", data={"csrf_token": form_token(page.text), "username": username,
                                            "password": password})


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def harness(infra: Any) -> AsyncIterator[ConsoleHarness]:
    database_url = await infra.new_database("console")
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    # The services' URLs lead nowhere: a page that needs one shows it unavailable.
    nowhere = f"http://127.0.0.1:{free_port()}"
    settings = Settings(environment="test", secret_key=SECRET, database_url=database_url, database_pool_size=2,
                        **{f"{s}_url": nowhere for s in ("capture", "enrichment", "scoring", "routing", "sla")})
    clock = FrozenClock(datetime(2026, 12, 3, 9, tzinfo=UTC))
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        yield ConsoleHarness(app, settings, clock)


@pytest_asyncio.fixture(loop_scope="session")
async def client(harness: ConsoleHarness) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=harness.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://console.test") as opened:
        yield opened
