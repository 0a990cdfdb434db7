"""Scoring in-process (its real lifespan) against the suite's real PostgreSQL and Kafka.

One module = one fresh database and topic prefix, one running scoring app, one reader that collects
everything published on leads.scored, and a frozen clock the tests move.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

import leadflow_scoring
from leadflow_contracts import (
    DataQuality,
    Event,
    LeadActivity,
    LeadContact,
    LeadEnriched,
    LeadProfile,
    LeadScored,
    LeadTouched,
    new_event,
    topics,
)
from leadflow_kit.clock import FrozenClock
from leadflow_kit.migrations import upgrade
from leadflow_scoring.app import create_app
from leadflow_scoring.settings import Settings
from leadflow_stack.testing import EventCollector, app_client, bearer, collecting, send_event, service_settings

MIGRATIONS = Path(leadflow_scoring.__file__).parent / "migrations"
ADMIN = bearer()
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Collector(EventCollector):
    """Everything published on leads.scored since the module started."""

    def scored(self, lead_id: str) -> list[Event[LeadScored]]:
        return self.of(lead_id)

    async def wait_for_count(self, lead_id: str, count: int, timeout: float = 20.0) -> list[Event[LeadScored]]:
        await self.wait(lambda: len(self.scored(lead_id)) >= count, timeout, f"{count} lead.scored for {lead_id}")
        return self.scored(lead_id)


@dataclass
class Harness:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    clock: FrozenClock
    scored: Collector
    producer: AIOKafkaProducer

    async def send(self, *events: Event[Any]) -> None:
        for event in events:
            await send_event(self.producer, event, topic_prefix=self.settings.topic_prefix)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, headers=ADMIN, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.post(path, headers=ADMIN, **kwargs)


def scoring_settings(database_url: str, bootstrap: str, prefix: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_pool_size": 4,
        # A tiny batch makes every sweep drain several batches.
        "decay_sweep_interval_seconds": 0.2, "decay_sweep_batch_size": 2, **overrides,
    }
    return service_settings(Settings, database_url=database_url, bootstrap_servers=bootstrap, topic_prefix=prefix,
                            **values)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def scoring(infra: Any) -> AsyncIterator[Harness]:
    database_url = await infra.new_database("scoring")
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    prefix = infra.new_topic_prefix("scoring")
    await infra.create_topics(prefix, partitions=3)
    settings = scoring_settings(database_url, infra.bootstrap_servers, prefix)
    clock = FrozenClock(START)
    app = create_app(settings, clock=clock)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, linger_ms=0)
    await producer.start()
    try:
        async with (
            collecting(infra.bootstrap_servers, settings.topic(topics.SCORED), Collector()) as collector,
            app_client(app, "http://scoring.test", wait_assigned=30) as client,
        ):
            yield Harness(app, client, settings, clock, collector, producer)
    finally:
        await producer.stop()


def new_id(label: str = "lead") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def enriched(
    lead_id: str | None = None,
    *,
    at: datetime,
    form_key: str = "demo",
    captured_lead_id: str | None = None,
    visitor_id: str | None = None,
    quality: int = 85,
    **profile: Any,
) -> Event[LeadEnriched]:
    lead_id = lead_id or new_id()
    profile.setdefault("email", f"{lead_id}@acme.example")
    profile.setdefault("email_type", "corporate")
    data = LeadEnriched(
        lead_id=lead_id, captured_lead_id=captured_lead_id or lead_id, form_key=form_key,
        profile=LeadProfile(**profile), original=LeadContact(email=profile["email"]),
        quality=DataQuality(score=quality), visitor_id=visitor_id,
    )
    return new_event(data, source="enrichment", subject=lead_id, lead_captured_at=at, time=at)


def activity(
    activity_type: str, *, at: datetime, lead_id: str | None = None, email: str | None = None,
    visitor_id: str | None = None, page_url: str | None = None, activity_id: str | None = None,
) -> Event[LeadActivity]:
    data = LeadActivity(activity_id=activity_id or new_id("act"), activity_type=activity_type, occurred_at=at,
                        lead_id=lead_id, email=email, visitor_id=visitor_id, page_url=page_url)
    subject = lead_id or visitor_id or email or data.activity_id
    return new_event(data, source="capture", subject=subject, time=at)


def touched(lead_id: str, touch_type: str, *, at: datetime) -> Event[LeadTouched]:
    data = LeadTouched(lead_id=lead_id, touch_id=new_id("touch"), touch_type=touch_type,  # type: ignore[arg-type]
                       occurred_at=at)
    return new_event(data, source="routing", subject=lead_id, time=at)


def good_fit() -> dict[str, Any]:
    """A VP of marketing at a 500-person US software company: fit grade A."""
    return {"industry": "Software", "employee_count": 500, "seniority": "vp", "function": "marketing",
            "country": "US", "job_title": "VP Marketing"}


def later(days: float) -> timedelta:
    return timedelta(days=days)
