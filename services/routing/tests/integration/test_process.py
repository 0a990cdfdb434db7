"""Routing as its own process: `python -m leadflow_routing` migrate, seed-demo (with the demo
webhook), serve — a scored lead ends at the demo CRM receiver, signed with the demo secret."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from routing_harness import Receiver, produce, scored

from leadflow_routing.settings import DEV_DEMO_WEBHOOK_SECRET

pytestmark = pytest.mark.integration

DEV_KEY = {"Authorization": "Bearer dev-admin-key"}


async def test_the_process_migrates_seeds_serves_routes_and_delivers(infra: Any) -> None:
    prefix = infra.new_topic_prefix("routing-proc")
    await infra.create_topics(prefix, partitions=2)
    crm = Receiver(DEV_DEMO_WEBHOOK_SECRET)
    await crm.start()
    try:
        config = await infra.start_service(
            "routing", {"DEMO_WEBHOOK_URL": crm.url, "WEBHOOK_RETRY_BASE_SECONDS": "0.1"},
            topic_prefix=prefix, seed_demo=True,
        )
        try:
            async with httpx.AsyncClient(base_url=config.url, headers=DEV_KEY, timeout=5.0) as client:
                assert (await client.get("/readyz")).json()["status"] == "ready"
                reps = [r["id"] for r in (await client.get("/v1/admin/reps")).json()]
                assert reps == ["rep-ada", "rep-grace", "rep-linus"]
                subscriptions = (await client.get("/v1/admin/webhooks/subscriptions")).json()
                assert [s["url"] for s in subscriptions] == [crm.url]

                lead = scored()
                await produce(infra.bootstrap_servers, prefix, [lead])
                for _ in range(300):
                    if lead.subject in crm.accepted_lead_ids():
                        break
                    await asyncio.sleep(0.1)
                assert lead.subject in crm.accepted_lead_ids() and crm.rejected == 0
                view = (await client.get(f"/v1/leads/{lead.subject}/assignment")).json()
                assert view["owner"]["rep_id"] in reps
                assert "leadflow_routing_decisions_total" in (await client.get("/metrics")).text
                assert "/v1/admin/routing-rules/dry-run" in (await client.get("/openapi.json")).json()["paths"]
        finally:
            await infra.stop_service("routing")
    finally:
        await crm.stop()
