"""Retention through a running sla: the sweeper deletes expired rows in batches and keeps the rest."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=120)  # past every default retention (inbox 30 days, closed leads 90)
RECENT = NOW - timedelta(days=2)


async def seed(sla_env: Any) -> dict[str, Any]:
    ids: dict[str, Any] = {
        "old_event": f"ev-{uuid.uuid4()}", "recent_event": f"ev-{uuid.uuid4()}",
        "subscription": f"sub-{uuid.uuid4()}",
        "closed_long_ago": str(uuid.uuid4()), "closed_lately": str(uuid.uuid4()), "open": str(uuid.uuid4()),
        "lost_long_ago": str(uuid.uuid4()),
    }
    statements: list[tuple[str, tuple[Any, ...]]] = [
        ("INSERT INTO processed_event (consumer, event_id, processed_at) VALUES ('sla', $1, $2), ('sla', $3, $4)",
         (ids["old_event"], OLD, ids["recent_event"], RECENT)),
        ("INSERT INTO webhook_subscription (id, url, event_types, secret_ciphertext) "
         "VALUES ($1, 'https://crm.example', ARRAY['*'], 'whsec_x')", (ids["subscription"],)),
    ]
    # Deliveries: (name, status, delivered_at, created_at); each has one attempt at created_at.
    deliveries = [("delivered_old", "delivered", OLD, OLD), ("delivered_recent", "delivered", RECENT, RECENT),
                  ("dead_old", "dead", None, OLD), ("pending_old", "pending", None, OLD)]
    for name, status, delivered_at, created_at in deliveries:
        ids[name] = f"wh-{uuid.uuid4()}"
        statements.append((
            "WITH d AS (INSERT INTO webhook_delivery (webhook_id, subscription_id, event_type, lead_id, payload, "
            "status, delivered_at, created_at, next_attempt_at) "
            # Not due for a day: the running dispatcher must not add an attempt of its own.
            "VALUES ($1, $2, 'lead.routed.v1', 'L', '{}', $3, $4, $5, now() + interval '1 day') "
            "RETURNING id) INSERT INTO webhook_attempt (delivery_id, attempt, attempted_at, duration_ms, outcome) "
            "SELECT id, 1, $5, 1.0, 'failed' FROM d",
            (ids[name], ids["subscription"], status, delivered_at, created_at)))
    for lead, converted_at, updated_at in ((ids["closed_long_ago"], OLD, OLD), (ids["closed_lately"], RECENT, RECENT),
                                           (ids["open"], None, OLD), (ids["lost_long_ago"], None, OLD)):
        lost_at = OLD if lead == ids["lost_long_ago"] else None
        statements += [
            ("INSERT INTO lead (lead_id, captured_at, converted_at, lost_at, updated_at) VALUES ($1, $2, $3, $4, $5)",
             (lead, updated_at, converted_at, lost_at, updated_at)),
            ("INSERT INTO lead_event (lead_id, event_id, event_type, stage, source, at) "
             "SELECT $1, 'e' || n, 'lead.touched.v1', 'touched', 'routing', $2 FROM generate_series(1, 5) AS n",
             (lead, updated_at)),
            ("INSERT INTO sla_clock (id, lead_id, routed_event_id, tier, target_seconds, warning_ratio, breach_limit, "
             "started_at, warning_at, due_at, status) VALUES ($1, $2, $1, 'A', 60, 0.8, 2, $3, $3, $3, 'stopped')",
             (f"clock-{lead}", lead, updated_at)),
            ("INSERT INTO sla_notice (clock_id, kind, event_id, lead_id, threshold_at, emitted_at) "
             "VALUES ($1, 'breach', $1, $2, $3, $3)", (f"clock-{lead}", lead, updated_at)),
        ]
    for query, args in statements:
        await sla_env.fetch(query, *args)
    return ids


async def test_the_sweeper_deletes_expired_rows_and_keeps_recent_ones(sla_env: Any, apps: Any) -> None:
    ids = await seed(sla_env)
    # Batches of two: every table here needs several rounds.
    _, client = await apps.start(retention_sweep_interval_seconds=0.2, retention_batch_size=2)

    async def events() -> set[str]:
        return {r["event_id"] for r in await sla_env.fetch("SELECT event_id FROM processed_event")}

    async def old_inbox_row_gone() -> bool:
        return ids["old_event"] not in await events()

    await sla_env.eventually(old_inbox_row_gone, timeout=30)

    async def swept() -> bool:
        rows = await sla_env.fetch("SELECT count(*) AS n FROM lead_event WHERE lead_id = ANY($1)",
                                   [ids["closed_long_ago"], ids["lost_long_ago"]])
        return rows[0]["n"] == 0

    await sla_env.eventually(swept, timeout=30)
    assert ids["recent_event"] in await events()

    deliveries = {r["webhook_id"]: r["attempts"] for r in await sla_env.fetch(
        "SELECT d.webhook_id, count(a.id) AS attempts FROM webhook_delivery d "
        "LEFT JOIN webhook_attempt a ON a.delivery_id = d.id WHERE d.subscription_id = $1 GROUP BY d.webhook_id",
        ids["subscription"])}
    # Delivered long ago: gone. Dead or pending: kept for a replay or a retry, their old attempts gone.
    assert deliveries == {ids["delivered_recent"]: 1, ids["dead_old"]: 0, ids["pending_old"]: 0}

    for table in ("lead_event", "sla_clock", "sla_notice"):
        left = {r["lead_id"] for r in await sla_env.fetch(f"SELECT DISTINCT lead_id FROM {table}")}
        assert ids["closed_long_ago"] not in left and ids["lost_long_ago"] not in left, table
        assert {ids["closed_lately"], ids["open"]} <= left, table
    # The funnel keeps counting the closed lead: its row holds no personal data.
    assert await sla_env.fetch("SELECT 1 FROM lead WHERE lead_id = $1", ids["closed_long_ago"])

    metrics = (await client.get("/metrics")).text
    assert sla_env.sample(metrics, "leadflow_retention_deleted_rows_total", rule="lead_event_of_closed_leads") == 10
    assert sla_env.sample(metrics, "leadflow_retention_deleted_rows_total", rule="processed_event") >= 1
