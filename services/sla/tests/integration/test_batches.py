"""A backlog of lead events is handled batch by batch: a few statements per batch, not two per event, and each
lead's events still applied in order (pg_stat_statements counts the statements)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from leadflow_contracts import LeadScored

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
