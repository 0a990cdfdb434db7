"""Two sla replicas on one database emit each warning and breach exactly once, among 100,000 open clocks."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from leadflow_contracts import LeadRouted, LeadSla, RoutedOwner, topics
from leadflow_kit.app import app_deps
from leadflow_kit.clock import FrozenClock

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
ROUTED_BY_KAFKA = 60
BULK_OPEN = 100_000
BULK_DUE = 1_000


async def test_two_replicas_emit_each_threshold_once(sla_env: Any, apps: Any) -> None:
    clock = FrozenClock(T0)
    # Small batches so both replicas are busy claiming at the same time.
    first, client = await apps.start(clock, scheduler_interval_seconds=3600, scheduler_batch_size=25)
    second, _ = await apps.start(clock, scheduler_interval_seconds=3600, scheduler_batch_size=25)

    lead_ids = [sla_env.new_lead_id() for _ in range(ROUTED_BY_KAFKA)]
    for n, lead_id in enumerate(lead_ids):
        data = LeadRouted(lead_id=lead_id, assignment_id=f"as-{n}", reason="test", tier="hot",
                          owner=RoutedOwner(rep_id=f"rep-{n % 3}", team_id="team-x"))
        await sla_env.send(sla_env.lead_event(data, lead_id, T0, T0, "routing"))

    async def all_open() -> bool:
        rows = await sla_env.fetch("SELECT count(*) AS n FROM sla_clock WHERE status = 'open'")
        return bool(rows[0]["n"] == ROUTED_BY_KAFKA)

    await sla_env.eventually(all_open, timeout=30)

    # 100,000 more open clocks, of which 1,000 are due: the scheduler must not need to look at the rest.
    await sla_env.fetch(
        """
        INSERT INTO sla_clock (id, lead_id, routed_event_id, tier, team_id, target_seconds, warning_ratio,
                               breach_limit, started_at, warning_at, due_at, status, next_fire_at)
        SELECT 'bulk-' || n, 'bulk-lead-' || n, 'bulk-routed-' || n, 'cold', 'team-bulk', 86400, 0.8, 2,
               $1::timestamptz, $1::timestamptz + interval '19 hours 12 minutes', $1::timestamptz + interval '1 day',
               'open', $1::timestamptz + interval '19 hours 12 minutes'
        FROM generate_series(1, $2::int) AS n
        """,
        T0, BULK_OPEN,
    )
    await sla_env.fetch(
        "UPDATE sla_clock SET started_at = started_at - interval '1 day', warning_at = warning_at - interval '1 day',"
        " due_at = due_at - interval '1 day', next_fire_at = next_fire_at - interval '1 day'"
        " WHERE id IN (SELECT 'bulk-' || n FROM generate_series(1, $1::int) AS n)",
        BULK_DUE,
    )
    await sla_env.fetch("ANALYZE sla_clock")
    plan = "\n".join(
        r[0] for r in await sla_env.fetch(
            "EXPLAIN SELECT * FROM sla_clock WHERE next_fire_at <= $1 ORDER BY next_fire_at LIMIT 25 "
            "FOR UPDATE SKIP LOCKED", T0 + timedelta(minutes=10))
    )
    assert "ix_sla_clock_next_fire_at" in plan, plan

    clock.set(T0 + timedelta(minutes=10))
    fired_first, fired_second = await asyncio.gather(
        app_deps(first).scheduler.fire_due(), app_deps(second).scheduler.fire_due()
    )
    both = [(f.clock_id, f.kind) for f in [*fired_first, *fired_second]]
    expected = 2 * (ROUTED_BY_KAFKA + BULK_DUE)
    assert len(both) == expected and len(set(both)) == expected
    # Once all is fired, further ticks of either replica find nothing.
    assert await app_deps(first).scheduler.fire_due() == [] and await app_deps(second).scheduler.fire_due() == []

    notices = await sla_env.fetch("SELECT count(*) AS n FROM sla_notice")
    assert notices[0]["n"] == expected
    # Every threshold leaves as exactly one event: the 60 routed through Kafka and the 1,000 due bulk clocks.
    wanted = {*lead_ids, *(f"bulk-lead-{n}" for n in range(1, BULK_DUE + 1))}
    events = await sla_env.collect(topics.SLA, lambda e: e.subject in wanted and e.type == LeadSla.EVENT_TYPE,
                                   expected, timeout=60, settle=1.0)
    per_threshold = Counter((e.data.clock_id, e.data.kind) for e in events)
    assert len(per_threshold) == expected
    assert set(per_threshold.values()) == {1}

    # Breached clocks stay open until someone touches the lead; the gauge counts them from the database.
    open_counts = await app_deps(first).scheduler.refresh_open_clocks()
    assert open_counts == {"hot": ROUTED_BY_KAFKA, "warm": 0, "cold": BULK_OPEN}
    metrics = (await client.get("/metrics")).text
    assert sla_env.sample(metrics, "leadflow_sla_open_clocks", tier="cold") == BULK_OPEN
    assert sla_env.sample(metrics, "leadflow_sla_breaches_total", tier="cold", team="team-bulk") is not None
