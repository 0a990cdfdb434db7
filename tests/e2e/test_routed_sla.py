"""Issue 18 item 4's last gap across sla and routing: the ``lead.routed`` webhook carries the SLA due time.

sla publishes its policies on the compacted ``sla.policies`` topic, routing replicates them and computes
the clock with the same code sla opens it with. An admin changes sla's hot policy (a 120 s target, then
counted in business hours, then deleted): each time, a new hot lead's ``lead.routed`` webhook carries the
same due time as sla's own ``lead.sla.started`` webhook, both verified with ``standardwebhooks``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from e2e_support import ADMIN_KEY, WebhookReceiver, eventually, records_on
from starlette.applications import Starlette
from starlette.routing import Route

from leadflow_contracts import LeadProfile, LeadScored, SlaPolicyChanged, new_event
from leadflow_stack.testing import produce

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
# Until the subscription answers with the real secret.
PLACEHOLDER = "whsec_" + "A" * 43 + "="


@dataclass
class SlaAndRouting:
    infra: Any
    topic_prefix: str
    client: httpx.AsyncClient
    sla: str
    routing: str
    routing_dsn: str
    crm: WebhookReceiver


@asynccontextmanager
async def sla_and_routing(infra: Any) -> AsyncIterator[SlaAndRouting]:
    """sla and routing (seeded: team sales, every lead to it at its first fill) as processes on fresh topics,
    and a CRM subscribed at routing to lead.routed and lead.sla.started."""
    crm = WebhookReceiver(PLACEHOLDER)
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/crm/leads", crm.receive, methods=["POST"])]),
                                           host="127.0.0.1", port=crm.port, log_level="warning", lifespan="off"))
    server_task = asyncio.create_task(server.serve())
    prefix = infra.new_topic_prefix("routed-sla")
    await infra.create_topics(prefix, partitions=1)
    started: list[str] = []
    try:
        sla = await infra.start_service("sla", topic_prefix=prefix, seed_demo=True, timeout=90)
        started.append("sla")
        routing = await infra.start_service("routing", {"DEMO_HANDOFF": "first_fill"}, topic_prefix=prefix,
                                            seed_demo=True, timeout=90)
        started.append("routing")
        async with httpx.AsyncClient(timeout=10) as client:
            subscribed = await client.post(f"{routing.url}/v1/admin/webhooks/subscriptions", headers=ADMIN, json={
                "url": crm.url, "event_types": ["lead.routed", "lead.sla.started"]})
            assert subscribed.status_code == 201, subscribed.text
            crm.secret = subscribed.json()["secret"]
            yield SlaAndRouting(infra, prefix, client, sla.url, routing.url,
                                infra.asyncpg_dsn(routing.database_url), crm)
    finally:
        for name in reversed(started):
            await infra.stop_service(name)
        server.should_exit = True
        await server_task


async def replicated_target(env: SlaAndRouting, policy_id: str) -> int | None:
    """The target routing's replica holds for the policy; None while unknown or once deleted."""
    conn = await asyncpg.connect(env.routing_dsn)
    try:
        terms = await conn.fetchval("SELECT terms FROM sla_policy_replica WHERE policy_id = $1", policy_id)
    finally:
        await conn.close()
    return json.loads(terms)["target_seconds"] if terms is not None else None


async def hand_off_a_hot_lead(env: SlaAndRouting) -> tuple[dict[str, Any], dict[str, Any]]:
    """A hot MQL scored now: its lead.routed and lead.sla.started webhooks' data."""
    lead_id = f"lead-{uuid.uuid4().hex[:12]}"
    scored = LeadScored(lead_id=lead_id, score=85.0, fit_grade="A", engagement_level=3, tier="hot", is_mql=True,
                        model_version="v1", lifecycle_stage="mql", form_key="demo",
                        profile=LeadProfile(email=f"{lead_id}@acme.com", company="Acme", country="US"))
    await produce(env.infra.bootstrap_servers, env.topic_prefix,
                  [new_event(scored, source="scoring", subject=lead_id, lead_captured_at=datetime.now(UTC))])

    async def both() -> tuple[dict[str, Any], dict[str, Any]] | None:
        by_type = {d["payload"]["type"]: d["payload"]["data"] for d in env.crm.deliveries
                   if d["payload"]["data"].get("lead_id") == lead_id}
        if "lead.routed" in by_type and "lead.sla.started" in by_type:
            return by_type["lead.routed"], by_type["lead.sla.started"]
        return None

    found: tuple[dict[str, Any], dict[str, Any]] = await eventually(both)
    return found


def assert_same_clock(routed: dict[str, Any], started: dict[str, Any]) -> dict[str, Any]:
    clock: dict[str, Any] = routed["sla"]
    assert clock is not None, routed
    for moment in ("started_at", "warning_at", "due_at"):
        assert datetime.fromisoformat(clock[moment]) == datetime.fromisoformat(started[moment]), (clock, started)
    assert (clock["tier"], clock["target_seconds"]) == (started["tier"], started["target_seconds"])
    return clock


def hours_away_from(now: datetime) -> dict[str, Any]:
    """A working hour every day that does not hold ``now`` (nor the next minutes): the clock waits for it."""
    start, end = ("13:00", "14:00") if now.hour < 11 else ("01:00", "02:00")
    return {"timezone": "UTC", "days": [0, 1, 2, 3, 4, 5, 6], "start": start, "end": end}


async def test_the_routed_webhook_carries_the_due_time_sla_opens_its_clock_with(infra: Any) -> None:
    async with sla_and_routing(infra) as env:
        # sla's start-up republished the policies nobody changed since: routing learned them all.
        assert await eventually(lambda: replicated_target(env, "default-warm")) == 3600
        policy_url = f"{env.sla}/v1/admin/sla-policies/default-hot"
        changed = await env.client.patch(policy_url, headers=ADMIN, json={"target_seconds": 120})
        assert changed.status_code == 200, changed.text
        await eventually(lambda: _is(replicated_target(env, "default-hot"), 120))

        routed, started = await hand_off_a_hot_lead(env)
        clock = assert_same_clock(routed, started)
        assert (clock["policy_id"], clock["target_seconds"], clock["business_hours"]) == ("default-hot", 120, False)

        # Counted in business hours: the due time is in the next working hour, the same in both services.
        hours = hours_away_from(datetime.now(UTC))
        changed = await env.client.patch(policy_url, headers=ADMIN,
                                         json={"target_seconds": 90, "business_hours": hours})
        assert changed.status_code == 200, changed.text
        await eventually(lambda: _is(replicated_target(env, "default-hot"), 90))

        routed, started = await hand_off_a_hot_lead(env)
        clock = assert_same_clock(routed, started)
        due = datetime.fromisoformat(clock["due_at"])
        assert clock["business_hours"] is True and due.strftime("%H:%M") == hours["start"].replace(":00", ":01")

        # Deleted: sla falls back to its built-in hot default (5 minutes), and routing follows.
        deleted = await env.client.delete(policy_url, headers=ADMIN)
        assert deleted.status_code == 204, deleted.text
        await eventually(lambda: _is(replicated_target(env, "default-hot"), None))

        routed, started = await hand_off_a_hot_lead(env)
        clock = assert_same_clock(routed, started)
        assert (clock["policy_id"], clock["target_seconds"], clock["business_hours"]) == (None, 300, False)

        # On the compacted topic the deletion is a record without terms, then a tombstone for the key.
        records = [event for key, event in await records_on(env, "sla.policies") if key == "default-hot"]
        deletion, tombstone = records[-2:]
        assert tombstone is None and deletion is not None
        assert isinstance(deletion.data, SlaPolicyChanged) and deletion.data.policy is None


async def _is(value: Any, expected: Any) -> bool:
    return bool(await value == expected)
