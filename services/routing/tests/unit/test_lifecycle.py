"""The lifecycle webhooks through the fake store: lead.mql once per lead, lead.stage_changed on every
move, the SLA notices and touches, each with the facts subscription filters test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from leadflow_contracts import Event, LeadProfile, LeadScored, LeadSla, LeadSlaStarted, new_event
from leadflow_kit.fakes import fake_unit_of_work
from leadflow_kit.webhooks import DeliveryFacts
from leadflow_routing import handlers, lifecycle
from leadflow_routing.domain import Rep, Rule, Team

from .fakes import FakeRoutingStore, fake_deps

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def scored(*, is_mql: bool, stage: str, previous: str | None, trigger: str = "enriched") -> Event[LeadScored]:
    data = LeadScored(lead_id="lead-1", score=70.0 if is_mql else 20.0, fit_grade="B", engagement_level=2,
                      tier="hot" if is_mql else "cold", is_mql=is_mql, model_version="v1",
                      lifecycle_stage=stage, previous_stage=previous, trigger=trigger,  # type: ignore[arg-type]
                      form_key="demo", profile=LeadProfile(email="ada@acme.com"))
    return new_event(data, source="scoring", subject="lead-1", time=NOW)


def routing_store(*subscribed: str) -> FakeRoutingStore:
    store = FakeRoutingStore()
    store.add_team(Team("sales"), Rep("rep-a"))
    store.activate(Rule("everyone", team_id="sales"))
    store.subscribed = set(subscribed)
    return store


async def route(store: FakeRoutingStore, *events: Event[LeadScored]) -> None:
    for event in events:
        uow, _, _ = fake_unit_of_work(fake_deps(store), NOW)
        await handlers.route_scored_leads([event], uow)


def sent(store: FakeRoutingStore) -> list[tuple[str, Any]]:
    return [(w.event_type, w.facts) for w in store.webhooks]


async def test_mql_is_sent_the_first_time_only_and_every_stage_move_is_sent() -> None:
    store = routing_store(lifecycle.MQL, lifecycle.STAGE_CHANGED)
    await route(store, scored(is_mql=False, stage="lead", previous=None),
                scored(is_mql=True, stage="mql", previous="lead", trigger="activity"),
                scored(is_mql=True, stage="mql", previous=None, trigger="activity"),
                scored(is_mql=True, stage="sal", previous="mql", trigger="touched"))

    facts = DeliveryFacts(tier="hot", team="sales", form="demo")
    assert sent(store) == [
        ("lead.routed", DeliveryFacts(tier="cold", team="sales", form="demo")),
        ("lead.mql", facts), ("lead.stage_changed", facts), ("lead.stage_changed", facts)]
    moves = [(w.data["previous_stage"], w.data["lifecycle_stage"]) for w in store.webhooks[2:]]
    assert moves == [("lead", "mql"), ("mql", "sal")]
    assert store.webhooks[1].data["score"]["is_mql"] is True


async def test_nothing_is_queued_for_lifecycle_types_nobody_subscribes_to() -> None:
    store = routing_store()
    await route(store, scored(is_mql=True, stage="mql", previous="lead"))

    assert [w.event_type for w in store.webhooks] == ["lead.routed"]
    assert store.mql_notified == {"lead-1"}  # noted all the same: a later subscriber gets no stale lead.mql


async def test_sla_notices_carry_the_due_time_and_the_lead_s_form_and_team() -> None:
    store = routing_store(lifecycle.SLA_STARTED)
    await route(store, scored(is_mql=True, stage="mql", previous=None))
    due = NOW + timedelta(minutes=5)
    started = new_event(LeadSlaStarted(lead_id="lead-1", clock_id="c1", tier="hot", owner_rep_id="rep-a",
                                       started_at=NOW, due_at=due, target_seconds=300), source="sla",
                        subject="lead-1", time=NOW)
    warning = new_event(LeadSla(lead_id="lead-1", clock_id="c1", kind="warning", tier="hot", owner_rep_id="rep-a",
                                started_at=NOW, due_at=due), source="sla", subject="lead-1", time=NOW)
    uow, _, _ = fake_unit_of_work(fake_deps(store), NOW)
    await lifecycle.deliver_sla_started([started], uow)
    await handlers.reroute_on_breaches([warning], uow)

    facts = DeliveryFacts(tier="hot", team="sales", form="demo")
    assert sent(store)[1:] == [("lead.sla.started", facts), ("lead.sla.warning", facts)]
    assert {datetime.fromisoformat(w.data["due_at"]) for w in store.webhooks[1:]} == {due}
