"""Capture in-process (its real lifespan) against the suite's real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from fastapi import FastAPI

import leadflow_capture
from leadflow_capture.app import create_app
from leadflow_capture.seed import seed_demo
from leadflow_capture.settings import Settings
from leadflow_contracts import Event, EventData, topics
from leadflow_kit.db import Database
from leadflow_kit.migrations import upgrade
from leadflow_stack.procs import free_port
from leadflow_stack.testing import app_client, bearer, read_events, service_settings, serving

MIGRATIONS = Path(leadflow_capture.__file__).parent / "migrations"
ADMIN = bearer()


@dataclass
class Capture:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    bootstrap_servers: str

    def topic(self, name: str) -> str:
        return f"{self.settings.topic_prefix}{name}"

    async def create_form(self, **fields: Any) -> dict[str, Any]:
        body = {"key": f"f-{uuid.uuid4().hex[:10]}", "name": "Test form", "allowed_origins": ["*"], **fields}
        response = await self.client.post("/v1/admin/forms", json=body, headers=ADMIN)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def events(
        self, topic: str, until: Callable[[list[Event[EventData]]], bool], timeout: float = 20.0
    ) -> list[Event[EventData]]:
        """Read ``topic`` from the start until ``until(events)`` holds."""
        return await read_events(self.bootstrap_servers, self.topic(topic), until, timeout)

    async def captured(self, lead_id: str, timeout: float = 20.0) -> Event[EventData]:
        found = await self.events(
            topics.CAPTURED, lambda evs: any(e.subject == lead_id for e in evs), timeout=timeout
        )
        return next(e for e in found if e.subject == lead_id)


def capture_settings(database_url: str, bootstrap_servers: str, prefix: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "rate_limit_ip_per_minute": 0,
        "rate_limit_form_per_minute": 0,
        "rate_limit_activity_ip_per_minute": 0,
        "rate_limit_page_load_ip_per_minute": 0,
        "database_pool_size": 4,
        **overrides,
    }
    return service_settings(Settings, database_url=database_url, bootstrap_servers=bootstrap_servers,
                            topic_prefix=prefix, **values)


@asynccontextmanager
async def running(settings: Settings, base_url: str = "http://capture.test") -> AsyncIterator[Capture]:
    app = create_app(settings)
    async with app_client(app, base_url, client_address=("203.0.113.7", 50000)) as client:
        yield Capture(app, client, settings, settings.kafka_bootstrap_servers)


@dataclass
class Env:
    database_url: str
    bootstrap_servers: str
    prefix: str


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def capture_env(infra: Any) -> Env:
    database_url = await infra.new_database("capture")
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    prefix = infra.new_topic_prefix("capture")
    await infra.create_topics(prefix, partitions=1)
    settings = capture_settings(database_url, infra.bootstrap_servers, prefix)
    db = Database(database_url, pool_size=1)
    try:
        await seed_demo(settings, db)
    finally:
        await db.dispose()
    return Env(database_url, infra.bootstrap_servers, prefix)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def capture(capture_env: Env) -> AsyncIterator[Capture]:
    settings = capture_settings(capture_env.database_url, capture_env.bootstrap_servers, capture_env.prefix)
    async with running(settings) as running_capture:
        yield running_capture


def as_json(response: httpx.Response) -> Any:
    return json.loads(response.text)


StartCapture = Callable[..., Any]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def start_capture(capture_env: Env) -> StartCapture:
    """Another capture on the module's database and topics, with settings overridden."""

    def start(**overrides: Any) -> Any:
        settings = capture_settings(capture_env.database_url, capture_env.bootstrap_servers, capture_env.prefix,
                                    **overrides)
        return running(settings)

    return start


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def admin_headers() -> dict[str, str]:
    return dict(ADMIN)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def read_topic(capture_env: Env) -> Callable[..., Any]:
    """``await read_topic(topics.CAPTURED, until)`` on the module's topic prefix."""

    async def read(name: str, until: Callable[[list[Event[EventData]]], bool],
                   timeout: float = 20.0) -> list[Event[EventData]]:
        return await read_events(capture_env.bootstrap_servers, f"{capture_env.prefix}{name}", until, timeout)

    return read


@asynccontextmanager
async def serving_http(settings: Settings) -> AsyncIterator[str]:
    """Capture under uvicorn on a free port, in this event loop; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="on"))
    async with serving(server, what="capture"):
        yield f"http://127.0.0.1:{port}"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live_capture(capture_env: Env) -> AsyncIterator[str]:
    settings = capture_settings(capture_env.database_url, capture_env.bootstrap_servers, capture_env.prefix)
    async with serving_http(settings) as base_url:
        yield base_url
