"""A backlog of lead events is handled batch by batch: a few statements per batch, not two per event, and each
lead's events still applied in order (pg_stat_statements counts the statements)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from leadflow_contracts import LeadRouted, LeadScored, RoutedOwner

LEADS = 20


def scored(lead_id: str, score: float, tier: str) -> LeadScored:
    return LeadScored(lead_id=lead_id, score=score, fit_grade="B", engagement_level=1, tier=tier, is_mql=False,
                      model_version="v1", lifecycle_stage="lead")


async def calls(sla_env: Any, like: str) -> int:
    """How often sla's database ran statements whose text is ``like``; pg_stat_statements lives in the
    cluster's maintenance database."""
    dsn = urlsplit(sla_env.infra.asyncpg_dsn(sla_env.database_url))
    database = dsn.path.lstrip("/")
    conn = await asyncpg.connect(urlunsplit(dsn._replace(path="/postgres")))
    try:
        found = await conn.fetchval(
            "SELECT coalesce(sum(calls), 0)::int FROM pg_stat_statements AS s "
            "JOIN pg_database AS d ON d.oid = s.dbid WHERE d.datname = $1 AND s.query LIKE $2", database, like)
    finally:
        await conn.close()
    return int(found)


async def test_a_backlog_is_handled_in_batches_with_each_leads_events_in_order(sla_env: Any, apps: Any) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0)
    ms = timedelta(milliseconds=1)
    lead_ids = [sla_env.new_lead_id() for _ in range(LEADS)]
    # Each lead is scored hot, then warm: in order, the lead ends warm with the second score.
    for lead_id in lead_ids:
        await sla_env.send(sla_env.lead_event(scored(lead_id, 90, "hot"), lead_id, t0 + ms, t0, "scoring"))
        await sla_env.send(sla_env.lead_event(scored(lead_id, 40, "warm"), lead_id, t0 + 2 * ms, t0, "scoring"))
    timeline_before = await calls(sla_env, "%INSERT INTO lead_event%")
    updates_before = await calls(sla_env, "%UPDATE lead SET%")

    await apps.start()

    async def recorded() -> bool:
        [row] = await sla_env.fetch("SELECT count(*) AS n FROM lead_event WHERE lead_id = ANY($1::text[])", lead_ids)
        return int(row["n"]) == 2 * LEADS

    await sla_env.eventually(recorded)
    facts = await sla_env.fetch("SELECT lead_id, tier, score FROM lead WHERE lead_id = ANY($1::text[])", lead_ids)
    assert sorted((row["tier"], row["score"]) for row in facts) == [("warm", 40.0)] * LEADS

    timeline_writes = await calls(sla_env, "%INSERT INTO lead_event%") - timeline_before
    lead_updates = await calls(sla_env, "%UPDATE lead SET%") - updates_before
    # 40 events on three partitions: one write of each kind per partition's batch, not one per event.
    assert 1 <= timeline_writes <= LEADS, timeline_writes
    assert 1 <= lead_updates <= LEADS, lead_updates


def routed(lead_id: str, rep_id: str, tier: str) -> LeadRouted:
    return LeadRouted(lead_id=lead_id, assignment_id=f"as-{lead_id}", reason="test", tier=tier,
                      owner=RoutedOwner(rep_id=rep_id, team_id="team-batch"))


async def test_a_backlog_of_routed_leads_opens_its_clocks_a_batch_at_a_time(sla_env: Any, apps: Any) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0)
    lead_ids = [sla_env.new_lead_id() for _ in range(LEADS)]
    tiers = ["hot", "warm", "cold"]
    for n, lead_id in enumerate(lead_ids):
        await sla_env.send(sla_env.lead_event(routed(lead_id, f"rep-{n % 3}", tiers[n % 3]), lead_id, t0, t0,
                                              "routing"))
    reads_before = await calls(sla_env, "%FROM sla_policy%WHERE active%")
    inserts_before = await calls(sla_env, "%INSERT INTO sla_clock%")

    await apps.start()

    async def opened() -> list[Any]:
        rows = await sla_env.fetch(
            "SELECT lead_id, tier, owner_rep_id, status, started_at, due_at FROM sla_clock "
            "WHERE lead_id = ANY($1::text[])", lead_ids)
        return rows if len(rows) == LEADS else []

    clocks = {row["lead_id"]: row for row in await sla_env.eventually(opened)}
    # Every lead has the clock it would have had alone: its tier's default target from its routing time.
    targets = {"hot": timedelta(minutes=5), "warm": timedelta(hours=1), "cold": timedelta(hours=24)}
    for n, lead_id in enumerate(lead_ids):
        clock = clocks[lead_id]
        assert (clock["tier"], clock["owner_rep_id"], clock["status"]) == (tiers[n % 3], f"rep-{n % 3}", "open")
        assert clock["due_at"] - clock["started_at"] == targets[tiers[n % 3]]

    policy_reads = await calls(sla_env, "%FROM sla_policy%WHERE active%") - reads_before
    clock_inserts = await calls(sla_env, "%INSERT INTO sla_clock%") - inserts_before
    # 20 routed leads on three partitions: one policy read and one clock insert per batch, not one per lead.
    assert 1 <= policy_reads < LEADS, policy_reads
    assert 1 <= clock_inserts < LEADS, clock_inserts
