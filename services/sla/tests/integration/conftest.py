"""sla in-process against the suite's real Kafka and PostgreSQL: fresh database and topic prefix per module."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from leadflow_contracts import Event, EventData, decode, encode_body, encode_headers, new_event
from leadflow_kit.app import app_runtime
from leadflow_kit.clock import Clock
from leadflow_kit.db import Database
from leadflow_kit.migrations import upgrade
from leadflow_sla.app import create_app
from leadflow_sla.settings import Settings
from leadflow_stack.services import LOCAL_RECEIVER_NETWORKS

MIGRATIONS = Path(__file__).resolve().parents[2] / "src" / "leadflow_sla" / "migrations"
ADMIN_KEY = "sla-test-admin-key-0123456789"


@dataclass
class SlaEnv:
    infra: Any
    database_url: str
    topic_prefix: str
    producer: AIOKafkaProducer

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "kafka_bootstrap_servers": self.infra.bootstrap_servers,
            "topic_prefix": self.topic_prefix,
            "admin_api_key": ADMIN_KEY,
            "environment": "test",
            "scheduler_interval_seconds": 0.1,
            "open_clocks_refresh_seconds": 0.2,
            "kafka_session_timeout_ms": 6000,
            # The notification receivers of these tests listen on loopback, over http.
            "webhook_allow_http": True,
            "webhook_allowed_networks": LOCAL_RECEIVER_NETWORKS,
        }
        values.update(overrides)
        return Settings(**values)

    async def send(self, event: Event[Any]) -> None:
        typed: Event[EventData] = event
        await self.producer.send_and_wait(
            f"{self.topic_prefix}{typed.topic}", value=encode_body(typed), key=typed.subject.encode(),
            headers=encode_headers(typed),
        )

    @staticmethod
    def lead_event(data: EventData, lead_id: str, at: datetime, captured_at: datetime, source: str,
                   correlation_id: str | None = None) -> Event[Any]:
        return new_event(data, source=source, subject=lead_id, time=at, lead_captured_at=captured_at,
                         correlation_id=correlation_id or f"corr-{lead_id}")

    @staticmethod
    async def eventually(probe: Callable[[], Awaitable[Any]], timeout: float = 45.0, interval: float = 0.05) -> Any:
        """Poll ``probe`` until it returns something truthy; fail with the last value after ``timeout``."""
        deadline = asyncio.get_running_loop().time() + timeout
        last: Any = None
        while asyncio.get_running_loop().time() < deadline:
            last = await probe()
            if last:
                return last
            await asyncio.sleep(interval)
        raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")

    async def collect(self, topic: str, match: Callable[[Event[Any]], bool], count: int,
                      timeout: float = 20.0, settle: float = 0.5) -> list[Event[Any]]:
        """Read ``topic`` from the beginning until ``count`` matching events arrived, then a little longer,
        so a duplicate would show up too."""
        consumer = AIOKafkaConsumer(f"{self.topic_prefix}{topic}", bootstrap_servers=self.infra.bootstrap_servers,
                                    group_id=f"reader-{uuid.uuid4().hex}", auto_offset_reset="earliest",
                                    enable_auto_commit=False, fetch_max_wait_ms=20)
        await consumer.start()
        try:
            found: list[Event[Any]] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            settle_until: float | None = None
            while loop.time() < (settle_until or deadline):
                batches = await consumer.getmany(timeout_ms=100)
                for records in batches.values():
                    for record in records:
                        event = decode(record.value, list(record.headers))
                        if match(event):
                            found.append(event)
                if len(found) >= count and settle_until is None:
                    settle_until = loop.time() + settle
            return found
        finally:
            await consumer.stop()

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        conn = await asyncpg.connect(self.infra.asyncpg_dsn(self.database_url))
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    @staticmethod
    def sample(metrics_text: str, name: str, **labels: str) -> float | None:
        """The value of one sample in a /metrics page, or None when it is absent."""
        for family in text_string_to_metric_families(metrics_text):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return float(s.value)
        return None

    @staticmethod
    def new_lead_id() -> str:
        return str(uuid.uuid4())


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sla_env(infra: Any) -> AsyncIterator[SlaEnv]:
    database_url = await infra.new_database("sla")
    prefix = infra.new_topic_prefix("sla")
    await infra.create_topics(prefix)
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, linger_ms=0)
    await producer.start()
    try:
        yield SlaEnv(infra, database_url, prefix, producer)
    finally:
        await producer.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def db(sla_env: SlaEnv) -> AsyncIterator[Database]:
    """The module's database, for calling the store directly."""
    database = Database(sla_env.database_url, pool_size=2)
    try:
        yield database
    finally:
        await database.dispose()


RunningApp = Callable[..., Awaitable[tuple[FastAPI, httpx.AsyncClient]]]


class AppRunner:
    """Starts sla apps (with their lifespans) and stops them all at the end of a test."""

    def __init__(self, env: SlaEnv) -> None:
        self.env = env
        self._stack: list[tuple[Any, httpx.AsyncClient]] = []

    async def start(self, clock: Clock | None = None, *, wait_assigned: bool = True,
                    **overrides: Any) -> tuple[FastAPI, httpx.AsyncClient]:
        app = create_app(self.env.settings(**overrides), clock=clock)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sla",
                                   headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        self._stack.append((lifespan, client))
        if wait_assigned:
            await asyncio.wait_for(app_runtime(app).runner.assigned.wait(), 30)
        return app, client

    async def stop_all(self) -> None:
        while self._stack:
            lifespan, client = self._stack.pop()
            await client.aclose()
            await lifespan.__aexit__(None, None, None)


@pytest_asyncio.fixture(loop_scope="session")
async def apps(sla_env: SlaEnv) -> AsyncIterator[AppRunner]:
    runner = AppRunner(sla_env)
    try:
        yield runner
    finally:
        await runner.stop_all()
