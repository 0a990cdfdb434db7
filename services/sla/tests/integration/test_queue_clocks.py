"""A lead waiting in a queue has a clock of its own, on the policy of the team whose fallback queue it is,
and its breach reaches routing like an assigned lead's; a claim and a reassignment restart the clock for
the new owner and show on the timeline as owner changes with their reasons."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from leadflow_contracts import LeadRouted, LeadSla, RoutedOwner, topics
from leadflow_kit.app import app_deps
from leadflow_kit.clock import FrozenClock

SECOND = timedelta(seconds=1)


def routed(env: Any, lead_id: str, at: datetime, number: int, **fields: Any) -> Any:
    data = LeadRouted(lead_id=lead_id, assignment_id=f"asg-{number}", tier="warm", **fields)
    return env.lead_event(data, lead_id, at, at - SECOND, "routing")


async def clock_of(env: Any, lead_id: str, owner: str | None) -> Any:
    async def probe() -> Any:
        rows = await env.fetch("SELECT * FROM sla_clock WHERE lead_id = $1 AND status = 'open'", lead_id)
        return next((r for r in rows if r["owner_rep_id"] == owner), None)

    return await env.eventually(probe)


async def test_a_queued_lead_runs_its_teams_clock_and_a_claim_and_a_reassignment_restart_it(
    sla_env: Any, apps: Any
) -> None:
    t0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    clock = FrozenClock(t0)
    app, client = await apps.start(clock, scheduler_interval_seconds=3600)
    team = f"team-{uuid.uuid4().hex[:8]}"
    policy = await client.post("/v1/admin/sla-policies", json={"tier": "warm", "team_id": team, "target_seconds": 600})
    assert policy.status_code == 201, policy.text
    lead_id = sla_env.new_lead_id()

    await sla_env.send(routed(sla_env, lead_id, t0, 1, queue="desk-queue", team_id=team,
                              reason="rule desk: no rep of team available"))
    queued = await clock_of(sla_env, lead_id, None)
    assert (queued["team_id"], queued["target_seconds"], queued["due_at"]) == (team, 600, t0 + 600 * SECOND)

    clock.set(t0 + 600 * SECOND)
    scheduler = app_deps(app).scheduler
    assert [f.kind for f in await scheduler.fire_due()] == ["warning", "breach"]
    _, breach = await sla_env.collect(topics.SLA, lambda e: e.subject == lead_id and e.type == LeadSla.EVENT_TYPE, 2)
    assert (breach.data.kind, breach.data.owner_rep_id, breach.data.team_id) == ("breach", None, team)
    assert breach.data.started_at == t0 and breach.data.breach_count == 1

    claimed_at = t0 + 620 * SECOND
    await sla_env.send(routed(sla_env, lead_id, claimed_at, 2, owner=RoutedOwner(rep_id="rep-ada", team_id=team),
                              team_id=team, reason="claimed from queue desk-queue by rep rep-ada", reroute=True,
                              reroute_reason="claimed"))
    claimed = await clock_of(sla_env, lead_id, "rep-ada")
    assert claimed["started_at"] == claimed_at and claimed["due_at"] == claimed_at + 600 * SECOND
    reassigned_at = t0 + 700 * SECOND
    await sla_env.send(routed(sla_env, lead_id, reassigned_at, 3, owner=RoutedOwner(rep_id="rep-bob", team_id=team),
                              team_id=team, reason="Ada is on leave", reroute=True, reroute_reason="reassigned",
                              previous_owner_rep_id="rep-ada"))
    reassigned = await clock_of(sla_env, lead_id, "rep-bob")
    assert reassigned["started_at"] == reassigned_at
    statuses = {r["owner_rep_id"]: r["status"] for r in
                await sla_env.fetch("SELECT owner_rep_id, status FROM sla_clock WHERE lead_id = $1", lead_id)}
    assert statuses == {None: "superseded", "rep-ada": "superseded", "rep-bob": "open"}, statuses

    timeline = (await client.get(f"/v1/leads/{lead_id}/timeline")).json()
    changes = [(c["from_rep_id"], c["to_rep_id"], c["queue"], c["reason"]) for c in timeline["owner_changes"]]
    assert changes == [(None, None, "desk-queue", "rule desk: no rep of team available"),
                       (None, "rep-ada", None, "claimed"), ("rep-ada", "rep-bob", None, "reassigned")]
    assert timeline["sla"]["current"]["owner_rep_id"] == "rep-bob"
