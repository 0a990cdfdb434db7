"""Helpers for the end-to-end tests: the pipeline handle, a verifying CRM receiver, polling."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from leadflow_contracts import Event, EventData, decode
from leadflow_contracts.topics import LEAD_TOPICS, dead_letter_topic
from leadflow_stack import testing
from leadflow_stack.procs import free_port

SERVICES = ("capture", "enrichment", "scoring", "routing", "sla")
ADMIN_KEY = "dev-admin-key"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"leadflow-e2e-webhook-secret-0123").decode()


@dataclass
class WebhookReceiver:
    """A CRM stand-in that verifies each delivery's Standard Webhooks signature."""

    secret: str
    port: int = field(default_factory=free_port)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/crm/leads"

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        try:
            payload = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.rejected += 1
            return Response(status_code=401)
        self.deliveries.append(
            {"webhook_id": request.headers["webhook-id"], "payload": payload, "received_at": time.time()}
        )
        return Response(status_code=204)

    def lead_ids(self) -> list[str]:
        found = []
        for delivery in self.deliveries:
            data = delivery["payload"].get("data", {})
            lead_id = data.get("lead_id") or data.get("lead", {}).get("lead_id") or data.get("lead", {}).get("id")
            found.append(lead_id)
        return found


class OnTopics(Protocol):
    """What reading a run's topics takes: the infrastructure (its brokers) and the run's topic prefix;
    a ``Pipeline`` or the smaller set-ups some tests start on their own topics."""

    @property
    def infra(self) -> Any: ...

    @property
    def topic_prefix(self) -> str: ...


@dataclass
class Pipeline:
    infra: Any
    topic_prefix: str
    receiver: WebhookReceiver
    urls: dict[str, str]
    client: httpx.AsyncClient

    async def submit(self, **fields: str) -> str:
        response = await self.client.post(f"{self.urls['capture']}/v1/forms/demo/submissions", json=fields)
        assert response.status_code == 202, response.text
        lead_id: str = response.json()["lead_id"]
        return lead_id

    async def timeline(self, lead_id: str) -> dict[str, Any]:
        response = await self.client.get(
            f"{self.urls['sla']}/v1/leads/{lead_id}/timeline", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        return response.json() if response.status_code == 200 else {"stages": []}

    async def stages(self, lead_id: str) -> list[str]:
        return [stage["stage"] for stage in (await self.timeline(lead_id)).get("stages", [])]

    async def assignment(self, lead_id: str) -> dict[str, Any] | None:
        response = await self.client.get(
            f"{self.urls['routing']}/v1/leads/{lead_id}/assignment", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        return response.json() if response.status_code == 200 else None


@asynccontextmanager
async def running_pipeline(
    infra: Any, overrides: Mapping[str, Mapping[str, str]] | None = None, *, partitions: int = 3
) -> AsyncIterator[Pipeline]:
    """The five services, seeded with the demo data, on fresh topics with ``partitions`` partitions, and a
    verifying CRM receiver; ``overrides`` adds settings per service."""
    receiver = WebhookReceiver(WEBHOOK_SECRET)
    server = uvicorn.Server(
        uvicorn.Config(Starlette(routes=[Route("/crm/leads", receiver.receive, methods=["POST"])]),
                       host="127.0.0.1", port=receiver.port, log_level="warning", lifespan="off")
    )
    server_task = asyncio.create_task(server.serve())
    prefix = infra.new_topic_prefix("e2e")
    await infra.create_topics(prefix, partitions=partitions)
    # Ports known in advance, so capture's data-subject export can ask the other four.
    ports = {name: free_port() for name in SERVICES}
    peers = {name: f"http://127.0.0.1:{port}" for name, port in ports.items() if name != "capture"}
    settings: dict[str, dict[str, str]] = {
        "capture": {"PRIVACY_EXPORT_URLS": json.dumps(peers)},
        # Every lead to sales at its first fill: these tests follow each lead to its CRM webhook.
        "routing": {"DEMO_WEBHOOK_URL": receiver.url, "DEMO_WEBHOOK_SECRET": WEBHOOK_SECRET,
                    "WEBHOOK_RETRY_BASE_SECONDS": "0.2", "DEMO_HANDOFF": "first_fill"},
    }
    for name, extra in (overrides or {}).items():
        settings[name] = {**settings.get(name, {}), **extra}
    urls = {}
    try:
        for name in SERVICES:
            config = await infra.start_service(
                name, settings.get(name, {}), topic_prefix=prefix, port=ports[name], seed_demo=True, timeout=90
            )
            urls[name] = config.url
        # Idle connections are dropped before the services' own keep-alive (uvicorn's 5 s) closes them: a
        # request on a connection the server is closing at that moment fails with ReadError.
        async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(keepalive_expiry=2)) as client:
            yield Pipeline(infra, prefix, receiver, urls, client)
    finally:
        for name in reversed(SERVICES):
            if name in urls:
                await infra.stop_service(name)
        server.should_exit = True
        await server_task


async def eventually(check: Any, timeout: float = 60.0, interval: float = 0.1) -> Any:
    # Across processes each stage takes longer than in-process, so the wait is longer and the poll slower.
    return await testing.eventually(check, timeout, interval)




async def records_on(pipeline: OnTopics, topic: str) -> list[tuple[str, Event[EventData] | None]]:
    """Every record on ``topic`` (without the prefix) as (key, decoded event, or None for a tombstone),
    read from the start by a fresh consumer group."""
    consumer = AIOKafkaConsumer(
        f"{pipeline.topic_prefix}{topic}", bootstrap_servers=pipeline.infra.bootstrap_servers,
        group_id=f"e2e-audit-{uuid.uuid4()}", auto_offset_reset="earliest", enable_auto_commit=False,
    )
    await consumer.start()
    found: list[tuple[str, Event[EventData] | None]] = []
    try:
        while batch := await consumer.getmany(timeout_ms=2000):
            for records in batch.values():
                found += [(record.key.decode() if record.key else "",
                           decode(record.value, list(record.headers)) if record.value is not None else None)
                          for record in records]
    finally:
        await consumer.stop()
    return found


async def events_on(pipeline: Pipeline, topic: str) -> list[Event[EventData]]:
    """Every event on ``topic`` (without the prefix); tombstones left out."""
    return [event for _key, event in await records_on(pipeline, topic) if event is not None]


async def events_by_lead(pipeline: Pipeline, topic: str) -> Counter[str]:
    """How many records ``topic`` holds for each lead."""
    return Counter(event.subject for event in await events_on(pipeline, topic))


async def dead_letter_counts(pipeline: Pipeline) -> dict[str, int]:
    """How many records each of the pipeline's dead-letter topics holds."""
    names = [f"{pipeline.topic_prefix}{dead_letter_topic(topic)}" for topic in LEAD_TOPICS]
    admin = AIOKafkaAdminClient(bootstrap_servers=pipeline.infra.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    partitions = [TopicPartition(topic["topic"], p["partition"]) for topic in described for p in topic["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=pipeline.infra.bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
    finally:
        await consumer.stop()
    counts = dict.fromkeys(names, 0)
    for tp in partitions:
        counts[tp.topic] += ends[tp] - starts[tp]
    return counts
