"""Scoring as its own process: `python -m leadflow_scoring` migrate, seed-demo, serve."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from leadflow_contracts import decode, encode_body, encode_headers, topics

from .conftest import enriched, good_fit, new_id

pytestmark = pytest.mark.integration

DEV_KEY = {"Authorization": "Bearer dev-admin-key"}


async def test_the_process_migrates_seeds_serves_and_scores(infra: Any) -> None:
    prefix = infra.new_topic_prefix("scoring-proc")
    await infra.create_topics(prefix, partitions=2)
    config = await infra.start_service("scoring", topic_prefix=prefix, seed_demo=True)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    reader = AIOKafkaConsumer(f"{prefix}{topics.SCORED}", bootstrap_servers=infra.bootstrap_servers,
                              auto_offset_reset="earliest", group_id=None, fetch_max_wait_ms=20)
    await producer.start()
    await reader.start()
    try:
        async with httpx.AsyncClient(base_url=config.url, headers=DEV_KEY, timeout=5.0) as client:
            assert (await client.get("/readyz")).json()["status"] == "ready"
            models = (await client.get("/v1/admin/scoring-models")).json()
            assert [m["id"] for m in models] == ["b2b-saas-default.v1"]

            lead_id = new_id()
            event = enriched(lead_id, at=datetime.now(UTC), **good_fit())
            await producer.send_and_wait(f"{prefix}{event.topic}", encode_body(event), key=lead_id.encode(),
                                         headers=encode_headers(event))
            record = await asyncio.wait_for(reader.getone(), 30)
            scored = decode(record.value, record.headers)
            assert scored.subject == lead_id and scored.type == "lead.scored.v1"

            view = (await client.get(f"/v1/leads/{lead_id}/score")).json()
            assert view["current"]["tier"] == "hot" and view["lifecycle_stage"] == "mql"
            assert "leadflow_leads_scored_total" in (await client.get("/metrics")).text
    finally:
        await reader.stop()
        await producer.stop()
        await infra.stop_service("scoring")
