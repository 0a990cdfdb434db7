"""Behavior through the real broker: activity re-scores known leads, waits for anonymous ones, counts once."""

from __future__ import annotations

import asyncio

import pytest

from leadflow_contracts import LeadActivity, new_event

from .conftest import Harness, activity, enriched, good_fit, new_id

pytestmark = pytest.mark.integration

FR_RETAIL = {"industry": "Retail", "employee_count": 60, "seniority": "manager", "country": "FR"}  # fit 35, B


async def test_activity_by_lead_id_rescores_at_once(scoring: Harness) -> None:
    now = scoring.clock.now()
    lead_id = new_id()
    await scoring.send(enriched(lead_id, at=now, form_key="newsletter", **good_fit()))
    [first] = await scoring.scored.wait_for_count(lead_id, 1)

    await scoring.send(activity("pricing_page_view", at=now, lead_id=lead_id))
    _, second = await scoring.scored.wait_for_count(lead_id, 2)
    assert second.data.trigger == "activity"
    assert second.data.score == first.data.score + 10
    assert "pricing_page" in {line.rule_id for line in second.data.breakdown}
    assert second.correlation_id == first.correlation_id


async def test_activity_by_email_finds_the_known_lead(scoring: Harness) -> None:
    now = scoring.clock.now()
    lead_id = new_id()
    await scoring.send(enriched(lead_id, at=now, form_key="newsletter", email=f"Pat.{lead_id}@Acme.example"))
    await scoring.scored.wait_for_count(lead_id, 1)

    await scoring.send(activity("content_download", at=now, email=f"pat.{lead_id}@acme.example"))
    _, second = await scoring.scored.wait_for_count(lead_id, 2)
    assert {line.rule_id: line.points for line in second.data.breakdown}["content_download"] == 8


async def test_anonymous_activity_is_kept_and_credited_when_the_visitor_fills_a_form(scoring: Harness) -> None:
    now = scoring.clock.now()
    visitor = new_id("visitor")
    await scoring.send(
        activity("pricing_page_view", at=now, visitor_id=visitor),
        activity("pricing_page_view", at=now, visitor_id=visitor),
        activity("webinar_registered", at=now, visitor_id=visitor),
    )
    # Nothing to publish for an anonymous visitor; give the consumer time to store all three.
    await _until_stored(scoring, 3, visitor)
    assert not scoring.scored.scored(visitor)

    lead_id = new_id()
    await scoring.send(enriched(lead_id, at=now, form_key="newsletter", visitor_id=visitor, **FR_RETAIL))
    [scored] = await scoring.scored.wait_for_count(lead_id, 1)
    lines = {line.rule_id: line.points for line in scored.data.breakdown}
    assert lines["pricing_page"] == 20 and lines["webinar_registered"] == 8

    # Later anonymous activity of the same visitor goes straight to the lead.
    await scoring.send(activity("trial_started", at=now, visitor_id=visitor))
    _, later = await scoring.scored.wait_for_count(lead_id, 2)
    assert later.data.trigger == "activity"
    assert later.data.is_mql and later.data.lifecycle_stage == "mql" and later.data.previous_stage == "lead"


async def test_activity_for_a_lead_id_scoring_has_not_seen_yet_waits_for_it(scoring: Harness) -> None:
    now = scoring.clock.now()
    lead_id = new_id()
    await scoring.send(activity("content_download", at=now, lead_id=lead_id))
    await _until_stored(scoring, 1, lead_id)
    await scoring.send(enriched(lead_id, at=now, form_key="newsletter"))
    [scored] = await scoring.scored.wait_for_count(lead_id, 1)
    assert "content_download" in {line.rule_id for line in scored.data.breakdown}


async def test_mql_crossing_on_an_activity_delivered_twice_emits_one_transition(scoring: Harness) -> None:
    now = scoring.clock.now()
    lead_id = new_id()
    await scoring.send(enriched(lead_id, at=now, form_key="newsletter", **FR_RETAIL))
    [first] = await scoring.scored.wait_for_count(lead_id, 1)
    assert first.data.lifecycle_stage == "lead" and not first.data.is_mql

    hand_raise = activity("demo_requested", at=now, lead_id=lead_id)
    # The same event twice (a redelivery), then the same activity again under a new event id (a resubmission).
    resent = new_event(LeadActivity.model_validate(hand_raise.data.model_dump()), source="capture", subject=lead_id)
    await scoring.send(hand_raise, hand_raise, resent)
    _, crossing = await scoring.scored.wait_for_count(lead_id, 2)
    assert (crossing.data.lifecycle_stage, crossing.data.previous_stage) == ("mql", "lead")
    assert crossing.data.stage_changed_at == now

    # A later, different activity proves the repeats were consumed (same partition, in order) and ignored.
    await scoring.send(activity("email_click", at=now, lead_id=lead_id))
    events = await scoring.scored.wait_for_count(lead_id, 3)
    await asyncio.sleep(0.3)
    events = scoring.scored.scored(lead_id)
    assert len(events) == 3
    transitions = [e for e in events if e.data.previous_stage is not None]
    assert [(e.data.previous_stage, e.data.lifecycle_stage) for e in transitions] == [("lead", "mql")]
    assert events[2].data.previous_stage is None and events[2].data.lifecycle_stage == "mql"
    assert {line.rule_id: line.reason for line in events[2].data.breakdown}["demo_request"] == (
        "Requested a demo (1 x demo_requested)"
    )

    metrics = (await scoring.client.get("/metrics")).text
    assert 'leadflow_mql_total{service="scoring",tier="hot"}' in metrics


async def _until_stored(scoring: Harness, count: int, identity: str, timeout: float = 20.0) -> None:
    from sqlalchemy import func, or_, select

    from leadflow_kit.app import app_deps
    from leadflow_scoring.tables import activity as activity_table

    async def stored() -> int:
        async with app_deps(scoring.app).platform.db.transaction() as session:
            query = select(func.count()).select_from(activity_table).where(or_(
                activity_table.c.visitor_id == identity, activity_table.c.wanted_lead_id == identity))
            return int((await session.execute(query)).scalar_one())

    deadline = asyncio.get_running_loop().time() + timeout
    while await stored() < count:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{count} activities for {identity} not stored in time")
        await asyncio.sleep(0.05)


async def test_anonymous_activity_racing_the_form_fill_is_never_lost(scoring: Harness) -> None:
    # Activity is keyed by visitor id, the fill by lead id: different partitions, handled side by side.
    now = scoring.clock.now()
    pairs = [(new_id("visitor"), new_id()) for _ in range(8)]
    events = []
    for visitor, lead_id in pairs:
        events += [activity("pricing_page_view", at=now, visitor_id=visitor) for _ in range(3)]
        events.append(enriched(lead_id, at=now, form_key="newsletter", visitor_id=visitor))
    await asyncio.gather(*(scoring.send(e) for e in events))

    for _, lead_id in pairs:
        await scoring.scored.wait_for_count(lead_id, 1)

    async def all_credited() -> bool:
        for _, lead_id in pairs:
            view = (await scoring.get(f"/v1/leads/{lead_id}/score")).json()
            lines = {line["rule_id"]: line["points"] for line in view["current"]["breakdown"]}
            if lines.get("pricing_page") != 30:
                return False
        return True

    deadline = asyncio.get_running_loop().time() + 20
    while not await all_credited():
        assert asyncio.get_running_loop().time() < deadline, "some anonymous activity was never credited"
        await asyncio.sleep(0.1)
