"""Helpers for routing's integration tests: routing in-process (its real lifespan) against the
suite's real PostgreSQL and Kafka, plus a local CRM receiver that verifies every webhook with
the ``standardwebhooks`` library."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import leadflow_routing
from leadflow_contracts import (
    AccountMatch,
    Event,
    LeadProfile,
    LeadScored,
    new_event,
)
from leadflow_kit.clock import Clock
from leadflow_kit.migrations import upgrade
from leadflow_routing.app import create_app
from leadflow_routing.settings import Settings
from leadflow_stack.procs import free_port
from leadflow_stack.testing import EventCollector as Collector
from leadflow_stack.testing import app_client, bearer, collecting, produce, service_settings

__all__ = ["ADMIN", "PLACEHOLDER", "Collector", "Env", "Receiver", "Running", "collecting", "deliveries", "new_env",
           "produce", "receiver", "running", "scored", "start_local_server", "stop_local_server", "subscribe"]

MIGRATIONS = Path(leadflow_routing.__file__).parent / "migrations"
ADMIN = bearer()
# A receiver's secret until subscribe() gives it the real one.
PLACEHOLDER = "whsec_" + "A" * 43 + "="


def scored(
    lead_id: str | None = None,
    *,
    tier: str = "warm",
    score: float = 55.0,
    country: str | None = "US",
    state: str | None = None,
    employee_count: int | None = 250,
    industry: str | None = "Software",
    owner_rep_id: str | None = None,
    duplicate_of: str | None = None,
    trigger: str = "enriched",
    form: str = "demo",
) -> Event[LeadScored]:
    lead_id = lead_id or f"lead-{uuid.uuid4().hex[:12]}"
    now = datetime.now(UTC)
    account = (
        AccountMatch(account_id="acc-1", name="Acme", domain="acme.com", method="domain", confidence=1.0,
                     owner_rep_id=owner_rep_id)
        if owner_rep_id else None
    )
    data = LeadScored(
        lead_id=lead_id, score=score, fit_grade="B", engagement_level=2, tier=tier,  # type: ignore[arg-type]
        is_mql=score >= 50, model_version="v1", lifecycle_stage="mql", form_key=form,
        trigger=trigger,  # type: ignore[arg-type]
        duplicate_of=duplicate_of,
        breakdown=[{"rule_id": "title", "category": "fit", "points": 20, "reason": "VP title"}],  # type: ignore[list-item]
        profile=LeadProfile(email=f"{lead_id}@acme.com", company="Acme", country=country, state=state,
                            employee_count=employee_count, industry=industry),
        account=account,
    )
    return new_event(data, source="scoring", subject=lead_id, lead_captured_at=now)


Policy = Callable[[str, int], Response | None]


@dataclass
class Receiver:
    """A CRM stand-in on a free port: verifies each request's signature, then answers by ``policy``
    (webhook-id, how many times that id was seen) — None means 204."""

    secret: str
    port: int = field(default_factory=free_port)
    policy: Policy | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/crm/leads"

    def seen(self, webhook_id: str) -> int:
        return sum(1 for a in self.attempts if a["webhook_id"] == webhook_id)

    def accepted(self) -> list[dict[str, Any]]:
        return [a for a in self.attempts if a["status"] == 204]

    def accepted_lead_ids(self) -> set[str]:
        return {a["payload"]["data"]["lead_id"] for a in self.accepted()}

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        try:
            payload = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.rejected += 1
            return Response(status_code=401)
        webhook_id = request.headers["webhook-id"]
        count = self.seen(webhook_id) + 1
        response = self.policy(webhook_id, count) if self.policy else None
        response = response or Response(status_code=204)
        self.attempts.append({"webhook_id": webhook_id, "payload": payload, "at": time.monotonic(),
                              "status": response.status_code, "signature": request.headers["webhook-signature"]})
        return response

    async def start(self) -> None:
        app = Starlette(routes=[Route("/crm/leads", self.receive, methods=["POST"])])
        self._server, self._task = await start_local_server(app, self.port)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            await stop_local_server(self._server, self._task)
            self._server = None


async def start_local_server(app: Starlette, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    """Serve ``app`` on loopback ``port`` (a receiver standing in for a CRM, Slack, ...) until stopped."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes only a flag
        await asyncio.sleep(0.01)
    return server, task


async def stop_local_server(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    await task


@contextlib.asynccontextmanager
async def receiver(secret: str, policy: Policy | None = None) -> AsyncIterator[Receiver]:
    r = Receiver(secret, policy=policy)
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


@dataclass
class Env:
    """One fresh database (migrated) and topic prefix on the suite's infra."""

    infra: Any
    database_url: str
    prefix: str

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_pool_size": 5, "webhook_retry_base_seconds": 0.05, "webhook_poll_interval_seconds": 0.1,
            "webhook_jitter_ratio": 0.1, "webhook_timeout_seconds": 2.0, **overrides,
        }
        return service_settings(Settings, database_url=self.database_url,
                                bootstrap_servers=self.infra.bootstrap_servers, topic_prefix=self.prefix, **values)

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"


async def new_env(infra: Any, label: str = "routing") -> Env:
    prefix = infra.new_topic_prefix(label)
    await infra.create_topics(prefix, partitions=3)
    url = await infra.new_database(label)
    await asyncio.to_thread(upgrade, MIGRATIONS, url)
    return Env(infra, url, prefix)


@dataclass
class Running:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, headers=ADMIN, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.post(path, headers=ADMIN, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.patch(path, headers=ADMIN, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.delete(path, headers=ADMIN, **kwargs)


@contextlib.asynccontextmanager
async def running(settings: Settings, clock: Clock | None = None, wait_assigned: bool = True
                  ) -> AsyncIterator[Running]:
    app = create_app(settings, clock=clock)
    async with app_client(app, "http://routing", wait_assigned=60 if wait_assigned else None) as client:
        yield Running(app, client, settings)


async def subscribe(svc: Running, crm: Receiver, url: str | None = None) -> str:
    """Subscribe ``crm`` (or ``url``) to lead.routed; the receiver learns the secret, shown only here."""
    response = await svc.post("/v1/admin/webhooks/subscriptions",
                              json={"url": url or crm.url, "event_types": ["lead.routed"]})
    assert response.status_code == 201, response.text
    body = response.json()
    crm.secret = body["secret"]
    listed = await svc.get(f"/v1/admin/webhooks/subscriptions/{body['id']}")
    assert "secret" not in listed.json()  # shown once, at creation
    subscription_id: str = body["id"]
    return subscription_id


async def deliveries(svc: Running, **params: str) -> list[dict[str, Any]]:
    response = await svc.get("/v1/admin/webhooks/deliveries", params=params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found
