"""Enrichment in-process (its real lifespan) against the suite's real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

import leadflow_enrichment
from leadflow_contracts import (
    Event,
    EventData,
    LeadCaptured,
    LeadContact,
    LeadEnriched,
    new_event,
    topics,
)
from leadflow_enrichment.app import create_app
from leadflow_enrichment.seed import seed_demo
from leadflow_enrichment.settings import Settings
from leadflow_kit.db import Database
from leadflow_kit.migrations import upgrade
from leadflow_stack.procs import free_port
from leadflow_stack.testing import app_client, bearer, read_events, send_event, service_settings, serving

MIGRATIONS = Path(leadflow_enrichment.__file__).parent / "migrations"
ADMIN = bearer()


@dataclass
class Env:
    database_url: str
    bootstrap_servers: str
    prefix: str


def enrichment_settings(env: Env, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"database_pool_size": 4, **overrides}
    return service_settings(Settings, database_url=env.database_url, bootstrap_servers=env.bootstrap_servers,
                            topic_prefix=env.prefix, **values)


@dataclass
class Enrichment:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    producer: AIOKafkaProducer

    async def capture(self, form_key: str = "demo", lead_id: str | None = None, key: str | None = None,
                      custom_fields: dict[str, str] | None = None, **contact: Any) -> str:
        """Publish a lead.captured as capture would (``key`` overrides the Kafka key); returns its lead id."""
        lead_id = lead_id or str(uuid.uuid4())
        now = datetime.now(UTC)
        data = LeadCaptured(lead_id=lead_id, form_key=form_key, submitted_at=now,
                            contact=LeadContact(**contact), custom_fields=custom_fields or {})
        event = new_event(data, source="capture", subject=lead_id, lead_captured_at=now)
        await send_event(self.producer, event, topic_prefix=self.settings.topic_prefix, key=key)
        return lead_id

    async def read(self, until: Callable[[list[Event[EventData]]], bool],
                   timeout: float = 20.0) -> list[Event[EventData]]:
        return await read_events(self.settings.kafka_bootstrap_servers,
                                 f"{self.settings.topic_prefix}{topics.ENRICHED}", until, timeout)

    async def enriched(self, captured_lead_id: str, timeout: float = 20.0) -> Event[LeadEnriched]:
        found = await read_events(
            self.settings.kafka_bootstrap_servers, f"{self.settings.topic_prefix}{topics.ENRICHED}",
            lambda evs: any(_captured_id(e) == captured_lead_id for e in evs), timeout,
        )
        event = next(e for e in found if _captured_id(e) == captured_lead_id)
        return event  # type: ignore[return-value]


def _captured_id(event: Event[EventData]) -> str | None:
    return event.data.captured_lead_id if isinstance(event.data, LeadEnriched) else None


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Enrichment]:
    app = create_app(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=0)
    await producer.start()
    try:
        async with app_client(app, "http://enrichment.test", wait_assigned=30) as client:
            yield Enrichment(app, client, settings, producer)
    finally:
        await producer.stop()


async def new_env(infra: Any, seed: bool = True) -> Env:
    database_url = await infra.new_database("enrichment")
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    prefix = infra.new_topic_prefix("enrichment")
    await infra.create_topics(prefix, partitions=2)
    env = Env(database_url, infra.bootstrap_servers, prefix)
    if seed:
        db = Database(database_url, pool_size=1)
        try:
            await seed_demo(enrichment_settings(env), db)
        finally:
            await db.dispose()
    return env


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def enrichment_env(infra: Any) -> Env:
    return await new_env(infra)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def enrichment(enrichment_env: Env) -> AsyncIterator[Enrichment]:
    async with running(enrichment_settings(enrichment_env)) as service:
        yield service


@dataclass
class FakeProvider:
    """A firmographics provider on a free local port whose behaviour the test switches:
    ``ok`` answers, ``hang`` sleeps past any timeout, ``fail`` answers 500."""

    url: str
    mode: str = "ok"
    hits: int = 0
    auth_seen: list[str | None] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)


@asynccontextmanager
async def fake_provider() -> AsyncIterator[FakeProvider]:
    port = free_port()
    provider = FakeProvider(url=f"http://127.0.0.1:{port}/v1/companies")
    app = FastAPI()

    @app.get("/v1/companies")
    async def company(request: Request, domain: str) -> JSONResponse:
        provider.hits += 1
        provider.auth_seen.append(request.headers.get("x-provider-key"))
        if provider.mode == "hang":
            await asyncio.wait_for(provider.released.wait(), 30)
        if provider.mode == "fail":
            return JSONResponse({"error": "down"}, status_code=500)
        if domain.startswith("unknown"):
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse({"name": domain.split(".")[0].title(), "industry": "Software",
                             "employee_count": 250, "annual_revenue": "30M", "country": "Canada"})

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                                           lifespan="off", timeout_graceful_shutdown=0))
    async with serving(server, what="fake provider"):
        try:
            yield provider
        finally:
            # A hung request holds the server's graceful shutdown until it is let go.
            provider.released.set()
