"""Nothing accepted is lost: not while Kafka is down, not when a service is killed mid-stream."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from e2e_support import Pipeline, events_by_lead, eventually

from leadflow_contracts.topics import ROUTED

pytestmark = pytest.mark.e2e


async def routed_events_by_lead(pipeline: Pipeline) -> Counter[str]:
    """Every lead.routed event on the topic, read from the start by a fresh consumer group."""
    return await events_by_lead(pipeline, ROUTED)


async def test_a_lead_captured_while_kafka_is_down_is_routed_once_it_is_back(pipeline: Pipeline) -> None:
    await pipeline.infra.stop_kafka()
    try:
        lead_id = await pipeline.submit(email="offline@acme.com", first_name="Off", company="Acme")
    finally:
        await pipeline.infra.start_kafka()

    async def routed() -> dict[str, Any] | None:
        return await pipeline.assignment(lead_id)

    await eventually(routed, timeout=120, interval=0.5)

    async def delivered() -> bool:
        return lead_id in pipeline.receiver.lead_ids()

    await eventually(delivered, timeout=60)


async def test_a_service_killed_mid_stream_resumes_without_losing_or_duplicating(pipeline: Pipeline) -> None:
    lead_ids = [await pipeline.submit(email=f"burst{i}@acme.com", first_name="Burst") for i in range(10)]
    await pipeline.infra.kill_service("enrichment")
    lead_ids += [await pipeline.submit(email=f"burst{i}@acme.com", first_name="Burst") for i in range(10, 30)]
    await asyncio.sleep(0.5)
    await pipeline.infra.restart_service("enrichment")
    lead_ids += [await pipeline.submit(email=f"burst{i}@acme.com", first_name="Burst") for i in range(30, 40)]

    async def all_routed() -> bool:
        assignments = await asyncio.gather(*(pipeline.assignment(lead_id) for lead_id in lead_ids))
        return all(assignments)

    await eventually(all_routed, timeout=120, interval=0.5)
    counts = await routed_events_by_lead(pipeline)
    assert {lead_id: counts[lead_id] for lead_id in lead_ids} == dict.fromkeys(lead_ids, 1)
