"""Two routing replicas in one consumer group share 1,000 leads: round-robin stays exact and no
lead is assigned twice, because the rotation lives in a row-locked PostgreSQL row."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from routing_harness import Env, collecting, produce, running, scored
from sqlalchemy import func, select

from leadflow_contracts import topics
from leadflow_kit.app import app_deps, app_runtime
from leadflow_kit.db import Database
from leadflow_routing.tables import assignment, lead
from leadflow_stack.testing import eventually

pytestmark = pytest.mark.integration

LEADS = 1000
REPS = [f"rep-{n}" for n in range(5)]


async def test_two_consumers_route_1000_leads_round_robin_exactly(env: Env) -> None:
    settings = env.settings(consumer_retry_backoff_seconds=0.01, database_pool_size=4)
    async with (
        collecting(env.infra.bootstrap_servers, env.topic(topics.ROUTED)) as routed,
        running(settings) as first,
        running(settings) as second,
    ):
        assert (await first.post("/v1/admin/teams", json={"id": "sales", "name": "Sales"})).status_code == 201
        for rep_id in REPS:
            response = await first.post("/v1/admin/reps", json={"id": rep_id, "name": rep_id, "team_id": "sales"})
            assert response.status_code == 201, response.text
        rules = {"rules": [{"id": "all", "team_id": "sales"}]}
        assert (await first.post("/v1/admin/routing-rules", json=rules)).status_code == 201

        async def both_own_partitions() -> bool:
            runners = [app_runtime(svc.app).runner for svc in (first, second)]
            kafkas = [runner._kafka if runner is not None else None for runner in runners]
            return all(k is not None and k.assignment() for k in kafkas)

        await eventually(both_own_partitions, timeout=60, interval=0.1, what="replicas splitting the partitions")

        await produce(env.infra.bootstrap_servers, env.prefix, [scored() for _ in range(LEADS)])
        await routed.wait(lambda: len(routed.events) >= LEADS, timeout=120, what=f"{LEADS} lead.routed")
        await asyncio.sleep(0.5)  # anything extra would show up now

        per_replica = [
            _consumed(svc.app, env.topic(topics.SCORED)) for svc in (first, second)
        ]

    assert len(routed.events) == LEADS
    assert len({e.subject for e in routed.events}) == LEADS
    counts: dict[str, int] = {}
    for event in routed.events:
        counts[event.data.owner.rep_id] = counts.get(event.data.owner.rep_id, 0) + 1
    assert sorted(counts) == REPS
    assert all(abs(n - LEADS // len(REPS)) <= 1 for n in counts.values()), counts
    assert all(n > 0 for n in per_replica), f"one replica did all the work: {per_replica}"

    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            per_lead = (
                await session.execute(select(func.count()).select_from(assignment).group_by(assignment.c.lead_id))
            ).scalars().all()
            stored = dict(
                (await session.execute(select(lead.c.owner_rep_id, func.count()).group_by(lead.c.owner_rep_id))).all()
            )
    finally:
        await db.dispose()
    assert len(per_lead) == LEADS and set(per_lead) == {1}
    assert stored == counts


def _consumed(app: Any, topic: str) -> float:
    total = 0.0
    for metric in app_deps(app).platform.metrics.events_consumed.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("topic") == topic \
                    and sample.labels.get("outcome") == "processed":
                total += sample.value
    return total
