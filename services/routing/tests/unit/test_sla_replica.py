"""The lead.routed webhook's ``sla`` block: the clock sla will open, computed from routing's replica of sla's
policies and reps' calendars (the replica's records go through the consumer's handlers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from leadflow_contracts import (
    Event,
    LeadProfile,
    LeadScored,
    SlaCalendarChanged,
    SlaPolicyChanged,
    SlaPolicyTerms,
    new_event,
)
from leadflow_contracts.sla_policy import BusinessHours
from leadflow_kit.fakes import fake_unit_of_work
from leadflow_routing import handlers, lifecycle, sla_replica
from leadflow_routing.domain import Rep, Rule, Team

from .fakes import FakeRoutingStore, fake_deps

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday


def hot_mql() -> Event[LeadScored]:
    data = LeadScored(lead_id="lead-1", score=80.0, fit_grade="A", engagement_level=3, tier="hot", is_mql=True,
                      model_version="v1", lifecycle_stage="mql", form_key="demo",
                      profile=LeadProfile(email="ada@acme.com"))
    return new_event(data, source="scoring", subject="lead-1", time=NOW)


def policy(policy_id: str, terms: SlaPolicyTerms | None, at: datetime = NOW) -> Event[SlaPolicyChanged]:
    return new_event(SlaPolicyChanged(policy_id=policy_id, policy=terms, changed_at=at), source="sla",
                     subject=policy_id, time=at)


def terms(target_seconds: int, *, team_id: str | None = None, **extra: Any) -> SlaPolicyTerms:
    return SlaPolicyTerms(tier="hot", team_id=team_id, target_seconds=target_seconds, warning_ratio=0.8,
                          breach_limit=2, **extra)


def routing_store() -> FakeRoutingStore:
    store = FakeRoutingStore()
    store.add_team(Team("sales"), Rep("rep-a", team_id="sales"))
    store.activate(Rule("everyone", team_id="sales"))
    store.subscribed = {lifecycle.ROUTED}
    return store


async def replicate(store: FakeRoutingStore, *events: Event[SlaPolicyChanged]) -> None:
    uow, _, _ = fake_unit_of_work(fake_deps(store), NOW)
    await sla_replica.replicate_policies(list(events), uow)


async def routed_sla(store: FakeRoutingStore) -> Any:
    uow, _, _ = fake_unit_of_work(fake_deps(store), NOW)
    await handlers.route_scored_leads([hot_mql()], uow)
    [webhook] = [w for w in store.webhooks if w.event_type == lifecycle.ROUTED]
    return webhook.data["sla"]


async def test_the_routed_webhook_carries_the_clock_of_the_team_s_policy() -> None:
    store = routing_store()
    await replicate(store, policy("hot-default", terms(600)), policy("hot-sales", terms(120, team_id="sales")))

    assert await routed_sla(store) == {
        "policy_id": "hot-sales", "tier": "hot", "target_seconds": 120, "started_at": NOW.isoformat(),
        "warning_at": (NOW + timedelta(seconds=96)).isoformat(), "due_at": (NOW + timedelta(seconds=120)).isoformat(),
        "business_hours": False,
    }


async def test_a_policy_counted_in_the_owner_s_hours_uses_the_replicated_calendar() -> None:
    store = routing_store()
    await replicate(store, policy("hot-default", terms(120, use_owner_hours=True)))
    hours = BusinessHours(timezone="UTC", start="10:00", end="17:00")  # type: ignore[arg-type]
    uow, _, _ = fake_unit_of_work(fake_deps(store), NOW)
    calendar = SlaCalendarChanged(rep_id="rep-a", business_hours=hours, changed_at=NOW)
    await sla_replica.replicate_calendars([new_event(calendar, source="sla", subject="rep:rep-a", time=NOW)], uow)

    clock = await routed_sla(store)
    # Routed at 09:00, before the rep's day starts at 10:00: two minutes of their working time.
    assert (clock["due_at"], clock["business_hours"]) == ((NOW + timedelta(hours=1, minutes=2)).isoformat(), True)


async def test_without_any_replicated_policy_the_block_is_null() -> None:
    assert await routed_sla(routing_store()) is None


async def test_a_deleted_policy_falls_back_as_in_sla_and_an_older_record_cannot_revive_it() -> None:
    store = routing_store()
    later = NOW + timedelta(seconds=1)
    await replicate(store, policy("hot-default", terms(120)), policy("hot-default", None, at=later),
                    policy("hot-default", terms(120), at=NOW))

    clock = await routed_sla(store)
    # sla's built-in hot default: five minutes, no policy id.
    assert (clock["policy_id"], clock["target_seconds"]) == (None, 300)
