"""The whole pipeline as separate processes on the suite's real Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
import uvicorn
from e2e_support import SERVICES, WEBHOOK_SECRET, Pipeline, WebhookReceiver
from starlette.applications import Starlette
from starlette.routing import Route

from leadflow_stack.procs import free_port


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pipeline(infra: Any) -> AsyncIterator[Pipeline]:
    receiver = WebhookReceiver(WEBHOOK_SECRET)
    server = uvicorn.Server(
        uvicorn.Config(Starlette(routes=[Route("/crm/leads", receiver.receive, methods=["POST"])]),
                       host="127.0.0.1", port=receiver.port, log_level="warning", lifespan="off")
    )
    server_task = asyncio.create_task(server.serve())
    prefix = infra.new_topic_prefix("e2e")
    await infra.create_topics(prefix, partitions=3)
    # Ports known in advance, so capture's data-subject export can ask the other four.
    ports = {name: free_port() for name in SERVICES}
    peers = {name: f"http://127.0.0.1:{port}" for name, port in ports.items() if name != "capture"}
    overrides = {
        "capture": {"PRIVACY_EXPORT_URLS": json.dumps(peers)},
        "routing": {"DEMO_WEBHOOK_URL": receiver.url, "DEMO_WEBHOOK_SECRET": WEBHOOK_SECRET,
                    "WEBHOOK_RETRY_BASE_SECONDS": "0.2"},
    }
    urls = {}
    try:
        for name in SERVICES:
            config = await infra.start_service(
                name, overrides.get(name, {}), topic_prefix=prefix, port=ports[name], seed_demo=True, timeout=90
            )
            urls[name] = config.url
        async with httpx.AsyncClient(timeout=10) as client:
            yield Pipeline(infra, prefix, receiver, urls, client)
    finally:
        for name in reversed(SERVICES):
            if name in urls:
                await infra.stop_service(name)
        server.should_exit = True
        await server_task
