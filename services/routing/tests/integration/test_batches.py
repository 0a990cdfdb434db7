"""A poll's batch of ``lead.scored`` events, decided in one transaction, writes what the same events handled
one by one write (owners, round-robin cursors, capacity, credits, audit rows, webhooks in order, events), in a
fixed number of statements for the whole batch (counted on the transaction's connection)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from routing_harness import new_env, scored

from leadflow_contracts import Event, LeadScored, decode
from leadflow_kit.clock import FrozenClock
from leadflow_kit.db import driver_connection
from leadflow_kit.uow import unit_of_work
from leadflow_routing.bootstrap import Deps, bootstrap
from leadflow_routing.handlers import route_scored_leads
from leadflow_routing.store import RoutingStore
from leadflow_stack.testing import counting_statements

pytestmark = pytest.mark.integration

LEADS = 64
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
RULES = [
    {"id": "germany", "name": "Germany to the capped team", "match": "all",
     "conditions": [{"field": "country", "op": "eq", "value": "DE"}], "team_id": "capped", "rep_id": None},
    {"id": "everyone", "name": "Everyone else to sales", "match": "all", "conditions": [], "team_id": "sales",
     "rep_id": None},
]


async def arrange(deps: Deps) -> None:
    """Sales (round robin over three reps), a weighted team of two reps that take two leads a day each, an
    account owner outside both, and subscriptions to every type a scored lead may send."""
    store = RoutingStore()
    async with deps.platform.db.transaction() as session:
        await store.ensure_team(session, "sales", "Sales", "round_robin")
        await store.ensure_team(session, "capped", "Capped", "weighted")
        await store.ensure_team(session, "owners", "Owners", "round_robin")
        for rep_id, team_id in (("rep-a", "sales"), ("rep-b", "sales"), ("rep-c", "sales"), ("rep-x", "capped"),
                                ("rep-y", "capped"), ("rep-owner", "owners")):
            await store.ensure_rep(session, rep_id, rep_id, f"{rep_id}@example.com", team_id)
        conn = await driver_connection(session)
        await conn.execute("UPDATE rep SET daily_capacity = 2, weight = CASE WHEN id = 'rep-x' THEN 2 ELSE 1 END "
                           "WHERE team_id = 'capped'")
        await store.seed_first_ruleset(session, RULES, "overflow", "batch test", "first_fill")
        for types in (["lead.routed", "lead.updated"], ["lead.mql", "lead.stage_changed"]):
            await store.put_webhook_subscription(session, f"sub-{types[0]}", url="http://127.0.0.1:9/crm",
                                                 event_types=types, secret_ciphertext="unused", description="")


def batch() -> tuple[list[Event[LeadScored]], list[Event[LeadScored]]]:
    """A lead routed before the batch, re-scored in it; then 64 new leads: every fourth from Germany (four
    fit the capped team's capacity, the rest wait in its queue), every tenth owned by an account owner, one
    re-scored later in the batch with a stage change, one duplicated after it, one duplicated before it."""
    before = [scored("old-1")]
    leads = [scored(f"lead-{n:02d}", country="DE" if n % 4 == 0 else "US",
                    owner_rep_id="rep-owner" if n % 10 == 3 else None, score=40.0 if n % 7 == 0 else 60.0)
             for n in range(LEADS)]
    rescored = leads[5].data.model_copy(update={"trigger": "activity", "previous_stage": "lead", "score": 75.0})
    again = [scored("old-1"), leads[5].model_copy(update={"id": "evt-rescore", "data": rescored}),
             scored("dup-07", duplicate_of="lead-07"), scored("dup-60", duplicate_of="lead-60")]
    events = [*leads[:2], again[0], *leads[2:10], again[1], again[2], *leads[10:40], again[3], *leads[40:]]
    return before, events


@asynccontextmanager
async def routing_deps(infra: Any) -> AsyncIterator[Deps]:
    env = await new_env(infra, "routing-batch")
    deps = bootstrap(env.settings(), FrozenClock(NOW))
    try:
        await arrange(deps)
        yield deps
    finally:
        await deps.platform.db.dispose()


async def handle(deps: Deps, events: list[Event[LeadScored]]) -> int:
    """Handle ``events`` as one batch in one transaction; returns how many statements the handler ran."""
    async with unit_of_work(deps.platform, deps) as uow:
        with counting_statements(await driver_connection(uow.session)) as statements:
            await route_scored_leads(events, uow)
    return len(statements)


async def stored(deps: Deps) -> dict[str, Any]:
    """What the decisions left, without the ids minted per decision (assignment and event ids)."""
    async with deps.platform.db.transaction() as session:
        conn = await driver_connection(session)
        leads = await conn.fetch(
            "SELECT id, data, correlation_id, status, owner_rep_id, team_id, queue, mql_notified_at, handoff_after,"
            " routed_at FROM lead ORDER BY id")
        reps = await conn.fetch("SELECT id, open_leads, assigned_today, assigned_day, rr_credit, last_assigned_at"
                                " FROM rep ORDER BY id")
        teams = await conn.fetch("SELECT id, assignments, rr_last_rep_id FROM team ORDER BY id")
        assignments = await conn.fetch(
            "SELECT lead_id, outcome, rep_id, team_id, queue, reason, rule_id, strategy, reroute, audit"
            " FROM assignment ORDER BY lead_id, outcome, rep_id")
        webhooks = await conn.fetch("SELECT subscription_id, event_type, lead_id FROM webhook_delivery ORDER BY id")
        outbox = await conn.fetch("SELECT key, headers, body FROM outbox ORDER BY id")
    published = []
    for row in outbox:
        event = decode(row["body"].encode(), [(name, value.encode()) for name, value in row["headers"]])
        published.append((row["key"], event.data.model_dump(mode="json", exclude={"assignment_id"})))
    return {"leads": [dict(r) for r in leads], "reps": [dict(r) for r in reps], "teams": [dict(r) for r in teams],
            "assignments": [dict(r) for r in assignments], "webhooks": [tuple(r) for r in webhooks],
            "published": published}


async def test_a_batch_of_scored_leads_decides_what_one_by_one_decides_in_a_few_statements(infra: Any) -> None:
    before, events = batch()
    async with routing_deps(infra) as alone, routing_deps(infra) as together:
        for deps in (alone, together):
            await handle(deps, before)
        one_by_one = [await handle(alone, [event]) for event in events]
        batched = await handle(together, events)
        state = await stored(together)
        assert state == await stored(alone)

    leads = {lead["id"]: lead for lead in state["leads"]}
    assert {leads[f"lead-{n:02d}"]["owner_rep_id"] for n in range(0, LEADS, 4)} == {"rep-x", "rep-y", None}
    assert sum(1 for n in range(0, LEADS, 4) if leads[f"lead-{n:02d}"]["status"] == "queued") == LEADS // 4 - 4
    assert leads["dup-07"]["owner_rep_id"] == leads["lead-07"]["owner_rep_id"] is not None
    # Its original came after it (and waits in the capped team's queue): a decision of its own.
    assert leads["lead-60"]["status"] == "queued" and leads["dup-60"]["team_id"] == "sales"
    assert leads["lead-13"]["owner_rep_id"] == "rep-owner"
    counted = {row["id"]: row["assigned_today"] for row in state["reps"]}
    assert counted["rep-x"] == counted["rep-y"] == 2
    assert ("sub-lead.mql", "lead.stage_changed", "lead-05") in state["webhooks"]
    assert ("sub-lead.routed", "lead.updated", "old-1") in state["webhooks"]
    # One at a time, every event pays a whole batch's statements (587 for these 68 events); as one batch
    # before the batch statements, each event still ran its own (lead stored, team and reps read, decision
    # written, each webhook queued, the owner's channels read): 449.
    assert sum(one_by_one) >= 5 * len(events), one_by_one
    # The claim (leads locked with the active rule set's key, the savepoint its teams and reps may be let
    # go back to, teams and reps in one with the reps' channels), the leads stored with their MQL moments,
    # the decisions, sla's replicated policies for the routed webhooks' clocks, the webhooks (124 here):
    # seven, whatever the batch's size.
    assert batched == 7, batched
