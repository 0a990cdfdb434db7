"""sla as its own process (`python -m leadflow_sla` migrate, seed-demo, serve): killed with SIGKILL while
a clock runs, restarted after its deadline, it still emits the breach, once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx

from leadflow_contracts import LeadRouted, LeadSla, RoutedOwner, topics

DEV_KEY = {"Authorization": "Bearer dev-admin-key"}


async def test_a_killed_process_keeps_its_clocks(sla_env: Any) -> None:
    infra = sla_env.infra
    config = await infra.start_service("sla", topic_prefix=sla_env.topic_prefix, seed_demo=True,
                                       env_overrides={"SCHEDULER_INTERVAL_SECONDS": "0.2"})
    try:
        async with httpx.AsyncClient(base_url=config.url, headers=DEV_KEY, timeout=5.0) as client:
            policies = (await client.get("/v1/admin/sla-policies")).json()
            assert {p["id"] for p in policies} >= {"default-hot", "default-warm", "default-cold"}
            patched = await client.patch("/v1/admin/sla-policies/default-hot", json={"target_seconds": 4})
            assert patched.status_code == 200

            lead_id = sla_env.new_lead_id()
            now = datetime.now(UTC)
            data = LeadRouted(lead_id=lead_id, assignment_id="as-kill", reason="test", tier="hot",
                              owner=RoutedOwner(rep_id="rep-k", team_id="team-k"))
            await sla_env.send(sla_env.lead_event(data, lead_id, now, now, "routing"))

            async def clock_open() -> Any:
                response = await client.get(f"/v1/leads/{lead_id}/timeline")
                return response.status_code == 200 and response.json()["sla"]["state"] == "open"

            await sla_env.eventually(clock_open)

        await infra.kill_service("sla")
        await asyncio.sleep(5)  # the deadline passes while nothing runs
        await infra.restart_service("sla")

        events = await sla_env.collect(topics.SLA, lambda e: e.subject == lead_id and e.type == LeadSla.EVENT_TYPE,
                                       2, timeout=30, settle=1.0)
        assert [e.data.kind for e in events] == ["warning", "breach"]
        async with httpx.AsyncClient(base_url=config.url, headers=DEV_KEY, timeout=5.0) as client:
            async def on_timeline() -> Any:
                body = (await client.get(f"/v1/leads/{lead_id}/timeline")).json()
                return body if "sla_breach" in [s["stage"] for s in body["stages"]] else None

            body = await sla_env.eventually(on_timeline)
            assert body["sla"]["current"]["breached_at"] is not None
    finally:
        await infra.stop_service("sla")
