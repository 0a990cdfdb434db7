"""A backlog of lead events is handled batch by batch: a few statements per batch, not two per event, and each
lead's events still applied in order; clocks that fall due together fire in one round of a few statements
(pg_stat_statements counts the statements)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from leadflow_contracts import LeadRouted, LeadScored, LeadSla, RoutedOwner, topics
from leadflow_kit.app import app_deps
from leadflow_kit.clock import FrozenClock

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


async def test_clocks_that_fall_due_together_fire_in_one_round_of_a_few_statements(sla_env: Any, apps: Any) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0)
    clock = FrozenClock(t0)
    app, client = await apps.start(clock, scheduler_interval_seconds=3600)
    scheduler = app_deps(app).scheduler
    subscribed = await client.post("/v1/admin/webhooks/subscriptions",
                                   json={"url": "http://127.0.0.1:9/sla", "event_types": ["lead.sla.*"],
                                         "filters": {"teams": ["team-batch"]}})
    assert subscribed.status_code == 201, subscribed.text
    # One lead breached once already: its next breach, in the round with the others, is its second.
    again = sla_env.new_lead_id()
    await sla_env.send(sla_env.lead_event(routed(again, "rep-0", "hot"), again, t0 - 600 * SECOND, t0, "routing"))
    await open_clocks(sla_env, [again], t0 - 600 * SECOND, 1)
    assert [f.kind for f in await scheduler.fire_due() if f.lead_id == again] == ["warning", "breach"]
    rerouted = LeadRouted(lead_id=again, assignment_id=f"as-{again}-2", reason="test", tier="hot",
                          owner=RoutedOwner(rep_id="rep-1", team_id="team-batch"), reroute=True,
                          previous_owner_rep_id="rep-0", reroute_reason="sla_breach")
    await sla_env.send(sla_env.lead_event(rerouted, again, t0, t0, "routing"))
    lead_ids = [sla_env.new_lead_id() for _ in range(LEADS)]
    for n, lead_id in enumerate(lead_ids):
        await sla_env.send(sla_env.lead_event(routed(lead_id, f"rep-{n % 3}", "hot"), lead_id, t0, t0, "routing"))
    await open_clocks(sla_env, [again, *lead_ids], t0, LEADS + 1)
    before = {like: await calls(sla_env, like) for like in ROUND_STATEMENTS}

    clock.set(t0 + 300 * SECOND)
    fired = [f for f in await scheduler.fire_due() if f.lead_id in {again, *lead_ids}]

    assert sorted((f.lead_id, f.kind) for f in fired) == sorted(
        (lead_id, kind) for lead_id in [again, *lead_ids] for kind in ("warning", "breach"))
    # The whole round is one transaction: one statement of each kind for its 21 clocks.
    assert {like: await calls(sla_env, like) - before[like] for like in ROUND_STATEMENTS} == dict.fromkeys(
        ROUND_STATEMENTS, 1)
    events = await sla_env.collect(topics.SLA, lambda e: e.type == LeadSla.EVENT_TYPE and e.data.kind == "breach"
                                   and e.subject in {again, *lead_ids}, LEADS + 2)
    numbers = {(e.subject, e.data.breach_count, e.data.escalate) for e in events}
    assert numbers == {(again, 1, False), (again, 2, True)} | {(lead_id, 1, False) for lead_id in lead_ids}
    clocks = await sla_env.fetch(
        "SELECT warned_at, breached_at, breach_number, next_fire_at FROM sla_clock "
        "WHERE lead_id = ANY($1::text[]) AND status = 'open'", [again, *lead_ids])
    assert len(clocks) == LEADS + 1
    assert {(c["warned_at"], c["breached_at"], c["next_fire_at"]) for c in clocks} == {
        (t0 + 300 * SECOND, t0 + 300 * SECOND, None)}
    assert sorted(c["breach_number"] for c in clocks) == [1] * LEADS + [2]
    queued = await sla_env.fetch(
        "SELECT event_type, count(*) AS n FROM webhook_delivery WHERE lead_id = ANY($1::text[]) GROUP BY event_type",
        [again, *lead_ids])
    assert {row["event_type"]: row["n"] for row in queued} == {"lead.sla.warning": LEADS + 2,
                                                               "lead.sla.breach": LEADS + 2}


ROUND_STATEMENTS = ("%INSERT INTO sla_notice%", "%UPDATE sla_clock AS clock%", "%INSERT INTO webhook_delivery%")
SECOND = timedelta(seconds=1)


async def open_clocks(sla_env: Any, lead_ids: list[str], started_at: datetime, count: int) -> None:
    async def opened() -> bool:
        [row] = await sla_env.fetch(
            "SELECT count(*) AS n FROM sla_clock WHERE lead_id = ANY($1::text[]) AND status = 'open' "
            "AND started_at = $2", lead_ids, started_at)
        return int(row["n"]) == count

    await sla_env.eventually(opened)
