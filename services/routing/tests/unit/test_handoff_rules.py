"""The hand-off policy over the fake store: nurture for a non-MQL under the `mql` hand-off, the hand-off
at the MQL moment, and the CRM's way back to nurture with its cool-down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from leadflow_contracts import Event, LeadProfile, LeadScored, new_event
from leadflow_kit.fakes import fake_unit_of_work
from leadflow_routing import handlers
from leadflow_routing.domain import Handoff, Rep, Rule, Team

from .fakes import FakeRoutingStore, fake_deps

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def scored(*, is_mql: bool, tier: str = "warm", trigger: str = "enriched") -> Event[LeadScored]:
    data = LeadScored(lead_id="lead-1", score=90.0 if is_mql else 30.0, fit_grade="B", engagement_level=2,
                      tier=tier, is_mql=is_mql, model_version="v1", lifecycle_stage="lead",  # type: ignore[arg-type]
                      trigger=trigger, profile=LeadProfile(country="US"))  # type: ignore[arg-type]
    return new_event(data, source="scoring", subject="lead-1", time=NOW)


def store_with(handoff: Handoff) -> FakeRoutingStore:
    store = FakeRoutingStore()
    store.add_team(Team("sales"), Rep("rep-a"), Rep("rep-b"))
    store.activate(Rule("everyone", team_id="sales"), handoff=handoff)
    return store


async def route(store: FakeRoutingStore, event: Event[LeadScored], now: datetime = NOW, **settings: Any) -> list[Any]:
    uow, outbox, _ = fake_unit_of_work(fake_deps(store, **settings), now)
    await handlers.route_scored_leads([event], uow)
    return outbox.events


async def touch(store: FakeRoutingStore, touch_type: str, now: datetime = NOW, **settings: Any) -> list[Any]:
    uow, outbox, _ = fake_unit_of_work(fake_deps(store, **settings), now)
    await handlers.record_touch(uow, handlers.CrmTouch("lead-1", touch_type, reason="not now"))  # type: ignore[arg-type]
    return outbox.events


async def test_under_the_mql_handoff_a_non_mql_waits_in_nurture_with_no_rep_and_no_webhook() -> None:
    store = store_with("mql")
    [held] = await route(store, scored(is_mql=False))
    assert (held.data.nurture, held.data.owner, held.data.queue) == (True, None, "nurture")
    assert store.leads["lead-1"].status == "nurture" and store.webhooks == []
    assert store.reps["rep-a"].open_leads == 0


async def test_a_nurtured_lead_is_handed_off_at_the_re_score_that_makes_it_an_mql() -> None:
    store = store_with("mql")
    await route(store, scored(is_mql=False))
    assert await route(store, scored(is_mql=False, trigger="activity")) == []
    [handed] = await route(store, scored(is_mql=True, tier="hot", trigger="decay"))
    assert handed.data.owner.rep_id == "rep-a" and handed.data.nurture is False
    assert (handed.data.reroute_reason, handed.data.tier) == ("mql", "hot")
    assert [w.event_type for w in store.webhooks] == ["lead.routed"]
    # Once with sales, a re-score changes nothing.
    assert await route(store, scored(is_mql=True, trigger="activity")) == []


async def test_first_fill_routes_a_non_mql_at_once() -> None:
    store = store_with("first_fill")
    [routed] = await route(store, scored(is_mql=False))
    assert routed.data.owner.rep_id == "rep-a" and routed.data.nurture is False


async def test_recycled_goes_back_to_nurture_and_waits_out_the_cooldown() -> None:
    store = store_with("first_fill")
    await route(store, scored(is_mql=True))
    touched, back = await touch(store, "recycled", recycle_cooldown_seconds=3600)
    assert touched.data.touch_type == "recycled"
    assert (back.data.nurture, back.data.reroute_reason, back.data.previous_owner_rep_id) == (
        True, "recycled", "rep-a")
    assert store.reps["rep-a"].open_leads == 0
    assert store.leads["lead-1"].handoff_after == NOW + timedelta(hours=1)

    assert await route(store, scored(is_mql=True, trigger="activity"), NOW + timedelta(minutes=59)) == []
    [again] = await route(store, scored(is_mql=True, trigger="activity"), NOW + timedelta(minutes=60))
    assert again.data.reroute_reason == "mql" and again.data.owner is not None
    assert store.leads["lead-1"].handoff_after is None


async def test_disqualified_goes_back_to_nurture_rather_than_closing_the_lead() -> None:
    store = store_with("first_fill")
    await route(store, scored(is_mql=True))
    _, back = await touch(store, "disqualified")
    assert back.data.reroute_reason == "disqualified" and "not now" in back.data.reason
    assert store.leads["lead-1"].status == "nurture"
