"""Decay with an injected clock (on read and by the background sweep) and sales-driven lifecycle stages."""

from __future__ import annotations

import asyncio

import pytest

from .conftest import ADMIN, Harness, activity, enriched, later, new_id, touched

pytestmark = pytest.mark.integration

FR_RETAIL = {"industry": "Retail", "employee_count": 60, "seniority": "manager", "country": "FR"}  # fit 35, B


async def test_sales_touches_move_the_stage_and_each_transition_is_emitted_once(scoring: Harness) -> None:
    now = scoring.clock.now()
    lead_id = new_id()
    await scoring.send(enriched(lead_id, at=now, form_key="demo", **FR_RETAIL))
    [first] = await scoring.scored.wait_for_count(lead_id, 1)
    assert (first.data.previous_stage, first.data.lifecycle_stage) == ("lead", "mql")

    accepted = touched(lead_id, "accepted", at=now)
    await scoring.send(accepted, accepted, touched(lead_id, "contacted", at=now))
    await scoring.send(touched(lead_id, "meeting_booked", at=now), touched(lead_id, "accepted", at=now))
    await scoring.send(touched(lead_id, "converted", at=now))
    events = await scoring.scored.wait_for_count(lead_id, 4)
    await scoring.send(activity("pricing_page_view", at=now, lead_id=lead_id))  # a fence: same partition
    events = await scoring.scored.wait_for_count(lead_id, 5)

    stages = [(e.data.trigger, e.data.previous_stage, e.data.lifecycle_stage) for e in events]
    assert stages == [
        ("enriched", "lead", "mql"),
        ("touched", "mql", "sal"),
        ("touched", "sal", "sql"),
        ("touched", "sql", "customer"),
        ("activity", None, "customer"),
    ]

    view = (await scoring.client.get(f"/v1/leads/{lead_id}/score", headers=ADMIN)).json()
    assert view["lifecycle_stage"] == "customer"
    assert [h["lifecycle_stage"] for h in view["history"]] == ["customer", "customer", "sql", "sal", "mql"]


async def test_decay_applies_on_read_and_the_sweep_recycles_a_stale_mql(scoring: Harness) -> None:
    start = scoring.clock.now()
    stale, fresh, accepted = new_id("stale"), new_id("fresh"), new_id("accepted")
    for lead_id in (stale, fresh, accepted):
        await scoring.send(enriched(lead_id, at=start, form_key="demo", quality=70, **FR_RETAIL))
    for lead_id in (stale, fresh, accepted):
        [scored] = await scoring.scored.wait_for_count(lead_id, 1)
        assert (scored.data.score, scored.data.lifecycle_stage, scored.data.tier) == (75, "mql", "hot")
    await scoring.send(touched(accepted, "accepted", at=start))
    await scoring.scored.wait_for_count(accepted, 2)

    # 40 days on: the demo request is past the fast-track window and has lost 60% of its points.
    scoring.clock.advance(later(40))
    await scoring.send(activity("trial_started", at=scoring.clock.now(), lead_id=fresh))
    view = (await scoring.client.get(f"/v1/leads/{stale}/score", headers=ADMIN)).json()
    assert view["current"]["score"] == 50.9
    assert view["current"]["is_mql"] is False
    assert {line["rule_id"]: line["points"] for line in view["current"]["breakdown"]}["decay"] == -24.1

    # The sweep (every 0.2 s here) re-scores the stale lead and recycles it, once.
    events = await scoring.scored.wait_for_count(stale, 2)
    assert (events[1].data.trigger, events[1].data.previous_stage, events[1].data.lifecycle_stage) == (
        "decay", "mql", "recycled")
    assert (events[1].data.score, events[1].data.tier, events[1].data.is_mql) == (50.9, "warm", False)
    assert events[1].data.stage_changed_at == scoring.clock.now()

    # The fresh lead's new activity keeps it an MQL; the accepted lead belongs to sales now. A sweep
    # may reach the fresh lead before its activity does (they race on a loaded machine): it is then
    # recycled first, and the activity makes it an MQL again.
    fresh_events = await scoring.scored.wait_for_count(fresh, 2)
    if fresh_events[1].data.trigger == "decay":
        fresh_events = await scoring.scored.wait_for_count(fresh, 3)
    assert fresh_events[-1].data.trigger == "activity" and fresh_events[-1].data.lifecycle_stage == "mql"
    await asyncio.sleep(1.0)  # several sweeps
    assert len(scoring.scored.scored(stale)) == 2
    assert len(scoring.scored.scored(accepted)) == 2
    assert len(scoring.scored.scored(fresh)) == len(fresh_events)  # no sweep decays it after the activity

    # A recycled lead that raises its hand again is an MQL again.
    await scoring.send(activity("demo_requested", at=scoring.clock.now(), lead_id=stale))
    events = await scoring.scored.wait_for_count(stale, 3)
    assert (events[2].data.previous_stage, events[2].data.lifecycle_stage) == ("recycled", "mql")

    metrics = (await scoring.client.get("/metrics")).text
    assert 'leadflow_leads_scored_total{service="scoring",trigger="decay"}' in metrics
    assert 'leadflow_scoring_model_version{model="b2b-saas-default",service="scoring"} 1.0' in metrics
    assert "leadflow_lead_score_bucket" in metrics
