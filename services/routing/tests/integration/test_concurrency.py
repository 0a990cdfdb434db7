"""Two routing replicas in one consumer group share 1,000 leads: round-robin stays exact and no
lead is assigned twice, because the rotation lives in a row-locked PostgreSQL row. No lock is shared
by every decision, yet batches that cross teams (a lead whose account owner sits in the other team)
never deadlock."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from routing_harness import Env, Running, collecting, produce, running, scored
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


async def test_two_replicas_route_crossing_teams_without_deadlock_or_dead_letters(fresh: Env) -> None:
    env = fresh
    teams = {"east": ["east-0", "east-1", "east-2"], "west": ["west-0", "west-1", "west-2"]}
    settings = env.settings(consumer_retry_backoff_seconds=0.01, database_pool_size=4)
    # Every fifth lead belongs to an account whose owner sits in the other team, so one batch locks a
    # team and a rep of the other one while a concurrent batch may do the reverse.
    leads = [scored(country="DE" if n % 2 else "US",
                    owner_rep_id=(("east-0" if n % 2 else "west-0") if n % 5 == 0 else None))
             for n in range(600)]
    async with (
        collecting(env.infra.bootstrap_servers, env.topic(topics.ROUTED)) as routed,
        running(settings) as first,
        running(settings) as second,
    ):
        await arrange_teams(first, teams, germany="west", everyone="east")
        await produce(env.infra.bootstrap_servers, env.prefix, leads)
        await routed.wait(lambda: len(routed.events) >= len(leads), timeout=120, what="600 lead.routed")
        await asyncio.sleep(0.5)
        dead = [_consumed(svc.app, env.topic(topics.SCORED), "dead_lettered") for svc in (first, second)]

    assert sorted(e.subject for e in routed.events) == sorted(e.data.lead_id for e in leads)
    assert dead == [0, 0]
    by_owner = {e.data.lead_id: e.data.account.owner_rep_id for e in leads if e.data.account}
    counts: dict[str, int] = {}
    for event in routed.events:
        rep_id = event.data.owner.rep_id
        if event.subject in by_owner:
            assert rep_id == by_owner[event.subject]
        else:
            counts[rep_id] = counts.get(rep_id, 0) + 1
    for reps in teams.values():
        assert max(counts[r] for r in reps) - min(counts[r] for r in reps) <= 1, counts


async def test_a_team_held_by_a_slow_transaction_delays_only_its_own_leads(fresh: Env) -> None:
    """Another transaction holds the "slow" team's row for seconds (as a slow handling of that team, or an
    admin's long transaction, would): both replicas route the "fast" team's leads meanwhile, park the slow
    team's, and route those, in order and exactly once, as soon as the row is free."""
    env = fresh
    teams = {"fast": ["fast-0", "fast-1", "fast-2"], "slow": ["slow-0", "slow-1", "slow-2"]}
    settings = env.settings(consumer_retry_backoff_seconds=0.01, database_pool_size=4, busy_row_grace_seconds=0.2)
    leads = [scored(country="DE" if n % 2 else "US") for n in range(300)]
    slow_ids = {e.data.lead_id for e in leads if e.data.profile.country == "DE"}
    async with (
        collecting(env.infra.bootstrap_servers, env.topic(topics.ROUTED)) as routed,
        running(settings) as first,
        running(settings) as second,
    ):
        await arrange_teams(first, teams, germany="slow", everyone="fast")

        holder = await asyncpg.connect(settings.database_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            holding = holder.transaction()
            await holding.start()
            await holder.execute("SELECT id FROM team WHERE id = 'slow' FOR UPDATE")
            await produce(env.infra.bootstrap_servers, env.prefix, leads)
            await routed.wait(lambda: len(routed.events) >= len(leads) - len(slow_ids), timeout=60,
                              what="the fast team's 150 lead.routed while the slow team is held")
            await asyncio.sleep(1.0)  # a slow team's lead routed now would show up
            routed_while_held = [e.subject for e in routed.events]
            parked = await holder.fetchval("SELECT count(*) FROM parked_lead")
            listed = await first.get("/v1/admin/parked-leads", params={"limit": 1000})
            await holding.rollback()
        finally:
            await holder.close()
        await routed.wait(lambda: len(routed.events) >= len(leads), timeout=60, what="the slow team's leads")
        await asyncio.sleep(0.5)
        dead = [_consumed(svc.app, env.topic(topics.SCORED), "dead_lettered") for svc in (first, second)]
        parked_now = await _parked(settings.database_url)
        listed_after = await first.get("/v1/admin/parked-leads")

    # The admin API shows what the alert is about: each parked lead, oldest first, and what it waits for.
    assert listed.status_code == 200, listed.text
    rows = listed.json()
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows) and len(rows) == parked
    assert {r["lead_id"] for r in rows} <= slow_ids
    assert all(r["waiting_for"][0] in ("team:slow", *(f"lead:{i}" for i in slow_ids)) for r in rows)
    assert any(r["waiting_for"] == ["team:slow"] for r in rows) and all(r["waited_seconds"] >= 0 for r in rows)
    assert listed_after.status_code == 200 and listed_after.json() == []
    assert set(routed_while_held) == {e.data.lead_id for e in leads} - slow_ids, "a slow team's lead was routed"
    assert parked == len(slow_ids)
    assert sorted(e.subject for e in routed.events) == sorted(e.data.lead_id for e in leads)
    assert dead == [0, 0] and parked_now == 0
    counts: dict[str, int] = {}
    for event in routed.events:
        counts[event.data.owner.rep_id] = counts.get(event.data.owner.rep_id, 0) + 1
    for reps in teams.values():
        assert max(counts[r] for r in reps) - min(counts[r] for r in reps) <= 1, counts


async def arrange_teams(svc: Running, teams: dict[str, list[str]], *, germany: str, everyone: str) -> None:
    """The teams with their reps; German leads to team ``germany``, every other to ``everyone``."""
    for team, reps in teams.items():
        assert (await svc.post("/v1/admin/teams", json={"id": team, "name": team})).status_code == 201
        for rep_id in reps:
            response = await svc.post("/v1/admin/reps", json={"id": rep_id, "name": rep_id, "team_id": team})
            assert response.status_code == 201, response.text
    rules = {"rules": [
        {"id": "germany", "conditions": [{"field": "country", "op": "eq", "value": "DE"}], "team_id": germany},
        {"id": "everyone", "team_id": everyone},
    ]}
    assert (await svc.post("/v1/admin/routing-rules", json=rules)).status_code == 201


async def _parked(database_url: str) -> int:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM parked_lead"))
    finally:
        await conn.close()


def _consumed(app: Any, topic: str, outcome: str = "processed") -> float:
    total = 0.0
    for metric in app_deps(app).platform.metrics.events_consumed.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("topic") == topic \
                    and sample.labels.get("outcome") == outcome:
                total += sample.value
    return total
