"""Routing's use cases through the fake store: rules, account owners, team strategies and their
round-robin state, capacity and availability, re-routing on an SLA breach, CRM touches."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from leadflow_contracts import AccountMatch, Event, LeadProfile, LeadScored, LeadSla, new_event
from leadflow_kit.fakes import fake_unit_of_work
from leadflow_routing import handlers
from leadflow_routing.domain import Condition, OutOfOffice, Rep, Rule, Strategy, Team, TimeRange

from .fakes import FakeRoutingStore, fake_deps

# A Monday, 09:00 UTC.
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def scored(lead_id: str = "lead-1", *, country: str = "US", tier: str = "warm", owner: str | None = None,
           **fields: Any) -> Event[LeadScored]:
    account = AccountMatch(account_id="acc-1", name="Acme", method="domain", confidence=1.0,
                           owner_rep_id=owner) if owner else None
    data = LeadScored(lead_id=lead_id, score=70.0, fit_grade="B", engagement_level=2, tier=tier, is_mql=True,
                      model_version="v1", lifecycle_stage="mql", profile=LeadProfile(country=country),
                      account=account, **fields)
    return new_event(data, source="scoring", subject=lead_id, correlation_id=f"corr-{lead_id}", time=NOW)


def breach(lead_id: str = "lead-1", *, owner: str | None, breach_count: int = 1, kind: str = "breach",
           escalate: bool = False) -> Event[LeadSla]:
    data = LeadSla(lead_id=lead_id, clock_id="clk-1", kind=kind, tier="warm", owner_rep_id=owner,
                   started_at=NOW, due_at=NOW, breach_count=breach_count, escalate=escalate)
    return new_event(data, source="sla", subject=lead_id, time=NOW)


def sales_team(store: FakeRoutingStore, *reps: Rep, strategy: Strategy = "round_robin", **team: Any) -> None:
    store.add_team(Team("sales", strategy=strategy, **team), *(reps or (Rep("rep-a"), Rep("rep-b"), Rep("rep-c"))))
    store.activate(Rule("everyone", team_id="sales"))


async def route(store: FakeRoutingStore, *events: Event[LeadScored], now: datetime = NOW, **settings: Any) -> list[Any]:
    uow, outbox, _ = fake_unit_of_work(fake_deps(store, **settings), now)
    await handlers.route_scored_leads(list(events), uow)
    return outbox.events


async def reroute(store: FakeRoutingStore, event: Event[LeadSla], now: datetime = NOW) -> list[Any]:
    uow, outbox, _ = fake_unit_of_work(fake_deps(store), now)
    await handlers.reroute_on_breaches([event], uow)
    return outbox.events


def owners(events: list[Any]) -> list[str | None]:
    return [e.data.owner.rep_id if e.data.owner else None for e in events]


# -- rules ----------------------------------------------------------------------------------


async def test_the_first_matching_rule_sends_the_lead_to_its_team() -> None:
    store = FakeRoutingStore()
    store.add_team(Team("emea"), Rep("rep-eu"))
    store.add_team(Team("americas"), Rep("rep-us"))
    store.activate(Rule("emea", conditions=(Condition("region", "eq", "EMEA"),), team_id="emea"),
                   Rule("rest", team_id="americas"))

    events = await route(store, scored("lead-de", country="DE"), scored("lead-us", country="US"))

    assert owners(events) == ["rep-eu", "rep-us"]
    assert [e.data.rule_id for e in events] == ["emea", "rest"]
    assert [e.correlation_id for e in events] == ["corr-lead-de", "corr-lead-us"]
    assert store.leads["lead-de"].status == "assigned" and store.leads["lead-de"].team_id == "emea"
    assert [w.event_type for w in store.webhooks] == ["lead.routed", "lead.routed"]
    assert store.webhooks[0].data["owner"]["rep_id"] == "rep-eu"


async def test_a_disabled_rule_is_skipped_and_no_match_waits_in_the_fallback_queue() -> None:
    store = FakeRoutingStore()
    store.add_team(Team("sales"), Rep("rep-a"))
    store.activate(Rule("off", team_id="sales", enabled=False), fallback_queue="triage")

    [event] = await route(store, scored())

    assert event.data.owner is None and event.data.queue == "triage"
    assert store.leads["lead-1"].status == "queued" and store.queues["lead-1"] == "triage"
    audit = store.assignments[0].decision.audit
    assert audit["rules"] == [{"rule_id": "off", "matched": False, "skipped": "disabled"}]
    assert audit["fallback"] == {"queue": "triage", "why": "no_rule_matched"}


async def test_without_active_rules_a_lead_waits_in_the_default_fallback_queue() -> None:
    store = FakeRoutingStore()

    [event] = await route(store, scored())

    assert event.data.queue == "unassigned" and store.assignments[0].decision.outcome == "fallback"


async def test_a_rule_naming_an_unavailable_rep_falls_back() -> None:
    store = FakeRoutingStore()
    store.reps["rep-away"] = Rep("rep-away", active=False)
    store.activate(Rule("vip", rep_id="rep-away"), fallback_queue="triage")

    [event] = await route(store, scored())

    assert event.data.queue == "triage"
    assert store.assignments[0].decision.audit["candidates"] == [{"rep_id": "rep-away", "skipped": "inactive"}]


# -- account owner --------------------------------------------------------------------------


async def test_the_account_owner_wins_over_the_rules() -> None:
    store = FakeRoutingStore()
    sales_team(store)
    store.reps["rep-owner"] = Rep("rep-owner", team_id="key-accounts")

    [event] = await route(store, scored(owner="rep-owner"))

    assert owners([event]) == ["rep-owner"]
    assert event.data.reason == "account owner of Acme"
    assert store.assignments[0].decision.outcome == "account_owner"
    assert store.reps["rep-owner"].open_leads == 1
    assert store.teams["sales"].rr_last_rep_id is None  # the team's turn was not taken


async def test_an_absent_account_owner_leaves_the_lead_to_the_rules() -> None:
    store = FakeRoutingStore()
    sales_team(store, Rep("rep-a"))
    store.reps["rep-owner"] = Rep("rep-owner", out_of_office=(OutOfOffice(NOW - timedelta(days=1),
                                                                          NOW + timedelta(days=1)),))

    [event] = await route(store, scored(owner="rep-owner"))

    assert owners([event]) == ["rep-a"]
    assert store.assignments[0].decision.audit["account_owner"] == {
        "account_id": "acc-1", "rep_id": "rep-owner", "skipped": "out_of_office"}


# -- strategies and their state -------------------------------------------------------------


async def test_round_robin_takes_turns_fairly_and_leaves_its_cursor_on_the_last_rep() -> None:
    store = FakeRoutingStore()
    sales_team(store)

    events = await route(store, *(scored(f"lead-{n}") for n in range(6)))

    assert owners(events) == ["rep-a", "rep-b", "rep-c", "rep-a", "rep-b", "rep-c"]
    assert {rep.id: rep.open_leads for rep in store.reps.values()} == {"rep-a": 2, "rep-b": 2, "rep-c": 2}
    assert store.teams["sales"].rr_last_rep_id == "rep-c"
    assert store.team_assignments["sales"] == 6
    # The batch locked its team (with its reps) up front, once, and no lock shared by every decision.
    assert store.claimed == [(["sales"], [], False)]


async def test_round_robin_resumes_after_the_stored_cursor() -> None:
    store = FakeRoutingStore()
    sales_team(store, rr_last_rep_id="rep-b")

    events = await route(store, scored("lead-1"), scored("lead-2"))

    assert owners(events) == ["rep-c", "rep-a"]
    assert store.assignments[0].decision.audit["strategy_state"] == {
        "before": {"last_rep_id": "rep-b"}, "after": {"last_rep_id": "rep-c"}}


async def test_a_rep_at_daily_capacity_is_skipped_until_their_next_local_day() -> None:
    store = FakeRoutingStore()
    full = Rep("rep-a", daily_capacity=1, assigned_today=1, assigned_day=NOW.date())
    sales_team(store, full, Rep("rep-b"))

    today = await route(store, scored("lead-1"))
    tomorrow = await route(store, scored("lead-2"), now=NOW + timedelta(days=1))

    assert owners(today) == ["rep-b"]
    assert store.assignments[0].decision.audit["candidates"][0] == {"rep_id": "rep-a", "skipped": "daily_capacity"}
    assert owners(tomorrow) == ["rep-a"]
    rep_a = store.reps["rep-a"]
    assert rep_a.assigned_today == 1 and rep_a.assigned_day == (NOW + timedelta(days=1)).date()


async def test_a_rep_with_too_many_open_leads_is_skipped() -> None:
    store = FakeRoutingStore()
    sales_team(store, Rep("rep-a", max_open_leads=1), Rep("rep-b", max_open_leads=5))

    events = await route(store, *(scored(f"lead-{n}") for n in range(3)))

    assert owners(events) == ["rep-a", "rep-b", "rep-b"]


async def test_a_hot_lead_skips_reps_outside_working_hours_and_a_warm_one_does_not() -> None:
    store = FakeRoutingStore()
    afternoons = {"mon": (TimeRange(time(13), time(17)),)}
    sales_team(store, Rep("rep-a", working_hours=afternoons), Rep("rep-b"))

    events = await route(store, scored("lead-hot", tier="hot"), scored("lead-warm", tier="warm"))

    assert owners(events) == ["rep-b", "rep-a"]


async def test_a_whole_team_unavailable_sends_the_lead_to_the_teams_fallback_queue() -> None:
    store = FakeRoutingStore()
    sales_team(store, Rep("rep-a", active=False), Rep("rep-b", active=False), fallback_queue="sales-overflow")
    deps = fake_deps(store)
    uow, outbox, _ = fake_unit_of_work(deps, NOW)

    await handlers.route_scored_leads([scored()], uow)

    assert outbox.events[0].data.queue == "sales-overflow"
    assert store.teams["sales"].rr_last_rep_id is None
    assert deps.metrics.fallback.labels("sales")._value.get() == 1


async def test_weighted_strategy_splits_leads_in_proportion_to_weight() -> None:
    store = FakeRoutingStore()
    sales_team(store, Rep("rep-a", weight=2), Rep("rep-b", weight=1), strategy="weighted")

    events = await route(store, *(scored(f"lead-{n}") for n in range(6)))

    assert owners(events).count("rep-a") == 4 and owners(events).count("rep-b") == 2
    assert {rep.id: rep.rr_credit for rep in store.reps.values()} == {"rep-a": 0, "rep-b": 0}


async def test_load_balanced_strategy_picks_the_rep_with_fewest_open_leads() -> None:
    store = FakeRoutingStore()
    sales_team(store, Rep("rep-a", open_leads=5), Rep("rep-b", open_leads=3), strategy="load_balanced")

    events = await route(store, *(scored(f"lead-{n}") for n in range(3)))

    assert owners(events) == ["rep-b", "rep-b", "rep-a"]


# -- leads already routed -------------------------------------------------------------------


async def test_a_repeat_fill_keeps_the_owner_and_tells_the_crm_of_an_update() -> None:
    store = FakeRoutingStore()
    sales_team(store)
    await route(store, scored())

    [event] = await route(store, scored(form_key="pricing"))

    assert event.data.kept_owner and owners([event]) == ["rep-a"]
    assert store.reps["rep-a"].open_leads == 1  # counted once, when first routed
    assert [w.event_type for w in store.webhooks] == ["lead.routed", "lead.updated"]
    assert store.webhooks[1].data["lead"]["form_key"] == "pricing"


async def test_a_rescore_of_a_routed_lead_only_refreshes_its_snapshot() -> None:
    store = FakeRoutingStore()
    sales_team(store)
    await route(store, scored())

    assert await route(store, scored(trigger="activity")) == []
    assert store.leads["lead-1"].scored.trigger == "activity"
    assert len(store.assignments) == 1


async def test_a_duplicate_of_a_routed_lead_gets_that_leads_owner() -> None:
    store = FakeRoutingStore()
    sales_team(store)
    await route(store, scored("lead-1"))

    [event] = await route(store, scored("lead-2", duplicate_of="lead-1"))

    assert event.data.kept_owner and owners([event]) == ["rep-a"]
    assert store.reps["rep-a"].open_leads == 2  # a new lead for the owner
    assert store.webhooks[-1].event_type == "lead.routed"
    # The batch claimed the original's owner up front, with the rule's team.
    assert store.claimed[-1] == (["sales"], ["rep-a"], False)


async def test_a_batch_claims_its_account_owners_and_its_rules_reps_and_teams_before_deciding() -> None:
    store = FakeRoutingStore()
    store.add_team(Team("sales"), Rep("rep-a"))
    store.reps["rep-owner"] = Rep("rep-owner")
    store.reps["rep-de"] = Rep("rep-de")
    store.activate(Rule("germany", conditions=(Condition("country", "eq", "DE"),), rep_id="rep-de"),
                   Rule("everyone", team_id="sales"))

    events = await route(store, scored("lead-1", owner="rep-owner"), scored("lead-2", country="DE"),
                         scored("lead-3"))

    assert owners(events) == ["rep-owner", "rep-de", "rep-a"]
    assert store.claimed == [(["sales"], ["rep-de", "rep-owner"], False)]


# -- SLA breaches ---------------------------------------------------------------------------


async def test_reroutes_to_the_next_rep_after_a_breach_and_releases_the_previous_owner() -> None:
    store = FakeRoutingStore()
    sales_team(store)
    await route(store, scored())

    [event] = await reroute(store, breach(owner="rep-a"))

    assert owners([event]) == ["rep-b"]
    assert event.data.reroute and event.data.reroute_reason == "sla_breach"
    assert event.data.previous_owner_rep_id == "rep-a"
    assert store.reps["rep-a"].open_leads == 0 and store.reps["rep-b"].open_leads == 1
    assert store.leads["lead-1"].owner_rep_id == "rep-b" and store.leads["lead-1"].breach_count == 1
    assert {"rep_id": "rep-a", "skipped": "previous_owner"} in store.assignments[-1].decision.audit["candidates"]


async def test_a_breach_escalates_to_the_manager_once_the_team_says_so() -> None:
    store = FakeRoutingStore()
    sales_team(store, Rep("rep-a"), Rep("rep-b"), manager_rep_id="rep-boss", escalate_after_breaches=2)
    store.reps["rep-boss"] = Rep("rep-boss", max_open_leads=0)  # capacity does not bind an escalation
    await route(store, scored())

    [event] = await reroute(store, breach(owner="rep-a", breach_count=2))

    assert owners([event]) == ["rep-boss"] and event.data.escalated
    assert event.data.reroute_reason == "sla_breach_escalation"
    # The breach claimed the lead's team with its manager, and its owner, before deciding.
    assert store.claimed[-1] == (["sales"], ["rep-a"], True)


async def test_a_breach_nobody_else_can_take_keeps_the_owner_and_says_so() -> None:
    store = FakeRoutingStore()
    sales_team(store, Rep("rep-a"))
    await route(store, scored())

    assert await reroute(store, breach(owner="rep-a")) == []
    [(lead_id, reason, audit)] = store.owner_kept
    assert lead_id == "lead-1" and reason == "SLA breach #1: no other rep available; owner kept"
    assert audit["escalation"] == "no other rep of the team is available"
    assert store.leads["lead-1"].owner_rep_id == "rep-a"


async def test_a_breach_about_a_former_owner_or_a_warning_changes_nothing() -> None:
    store = FakeRoutingStore()
    sales_team(store)
    await route(store, scored())

    assert await reroute(store, breach(owner="rep-z")) == []
    assert await reroute(store, breach(owner="rep-a", kind="warning")) == []
    assert store.leads["lead-1"].breach_count == 0 and len(store.assignments) == 1


async def test_a_queued_lead_that_breaches_is_routed_afresh_once_someone_is_available() -> None:
    store = FakeRoutingStore()
    sales_team(store, Rep("rep-a", active=False), fallback_queue="overflow")
    await route(store, scored())
    store.reps["rep-a"] = Rep("rep-a", team_id="sales")

    [event] = await reroute(store, breach(owner=None))

    assert owners([event]) == ["rep-a"] and event.data.reroute_reason == "sla_breach"
    assert store.assignments[-1].decision.outcome == "rerouted"
    assert store.leads["lead-1"].status == "assigned" and store.leads["lead-1"].breach_count == 1


# -- CRM touches ----------------------------------------------------------------------------


async def test_a_closing_touch_closes_the_lead_and_frees_its_owner() -> None:
    store = FakeRoutingStore()
    sales_team(store)
    await route(store, scored())
    uow, outbox, _ = fake_unit_of_work(fake_deps(store), NOW)

    recorded = await handlers.record_touch(uow, handlers.CrmTouch("lead-1", "converted", rep_id="rep-b",
                                                                  integration="hubspot", external_id="evt-1"))
    again = await handlers.record_touch(uow, handlers.CrmTouch("lead-1", "converted", integration="hubspot",
                                                               external_id="evt-1"))

    assert recorded.owner_rep_id == "rep-a" and recorded.owner_mismatch
    assert again.duplicate and again.touch_id == recorded.touch_id
    assert store.leads["lead-1"].status == "closed" and store.reps["rep-a"].open_leads == 0
    assert [e.data.touch_type for e in outbox.events] == ["converted"]


async def test_a_touch_on_an_unknown_lead_is_refused() -> None:
    uow, _, _ = fake_unit_of_work(fake_deps(FakeRoutingStore()), NOW)

    with pytest.raises(handlers.UnknownLead):
        await handlers.record_touch(uow, handlers.CrmTouch("nobody", "contacted"))


# -- a batch decides as one by one ----------------------------------------------------------


def _mixed_batch() -> list[Event[LeadScored]]:
    """Leads of two teams (one weighted, capped at two a day per rep), account owners, a repeat fill, a
    duplicate of an earlier lead of the batch, and a re-score with a stage change."""
    events = [scored(f"lead-{n}", country="DE" if n % 3 == 0 else "US", owner="rep-owner" if n == 4 else None)
              for n in range(12)]
    rescore = events[1].data.model_copy(update={"trigger": "activity", "previous_stage": "lead"})
    return [*events[:6], events[1].model_copy(update={"id": "again", "data": rescore}),
            scored("dup-3", duplicate_of="lead-3"), scored("lead-1", form_key="pricing"), *events[6:]]


def _arrange(store: FakeRoutingStore) -> None:
    sales_team(store)
    store.add_team(Team("de", strategy="weighted"), Rep("rep-x", weight=2, daily_capacity=2),
                   Rep("rep-y", daily_capacity=2))
    store.add_team(Team("owners"), Rep("rep-owner"))
    store.activate(Rule("germany", conditions=(Condition("country", "eq", "DE"),), team_id="de"),
                   Rule("everyone", team_id="sales"))
    store.subscribed = {"lead.routed", "lead.updated", "lead.mql", "lead.stage_changed"}


def _state(store: FakeRoutingStore) -> dict[str, Any]:
    return {
        "leads": store.leads, "reps": store.reps, "teams": store.teams, "turns": store.team_assignments,
        "queues": store.queues, "mql": store.mql_notified,
        "assignments": [(a.lead_id, a.decision.outcome, a.decision.rep.id if a.decision.rep else None,
                         a.decision.queue, a.decision.audit) for a in store.assignments],
        "webhooks": [(w.event_type, w.lead_id, w.facts) for w in store.webhooks],
    }


async def test_a_batch_decides_and_writes_what_its_events_one_by_one_would_with_one_write() -> None:
    alone, together = FakeRoutingStore(), FakeRoutingStore()
    _arrange(alone)
    _arrange(together)
    events = _mixed_batch()

    one_by_one = [owners(await route(alone, event)) for event in events]
    batched = owners(await route(together, *events))

    assert batched == [owner for owned in one_by_one for owner in owned]
    assert _state(together) == _state(alone)
    assert together.decision_writes == 1 and alone.decision_writes == len(events)
    de = [together.leads[f"lead-{n}"].owner_rep_id for n in range(0, 12, 3)]
    # Weighted 2:1; then both are at their daily capacity (dup-3 kept lead-3's owner, rep-y, and counts).
    assert de == ["rep-x", "rep-y", "rep-x", None]
    assert together.leads["dup-3"].owner_rep_id == together.leads["lead-3"].owner_rep_id
    assert together.leads["lead-4"].owner_rep_id == "rep-owner"
    assert ("lead.stage_changed", "lead-1") in [(w[0], w[1]) for w in _state(together)["webhooks"]]


# -- a team another transaction holds ---------------------------------------------------------


async def test_leads_of_a_team_another_transaction_holds_park_and_the_other_teams_leads_are_routed() -> None:
    store = FakeRoutingStore()
    store.add_team(Team("emea"), Rep("rep-eu"))
    store.add_team(Team("americas"), Rep("rep-us"))
    store.activate(Rule("emea", conditions=(Condition("region", "eq", "EMEA"),), team_id="emea"),
                   Rule("rest", team_id="americas"))
    store.busy_rows = {"emea"}
    uow, outbox, _ = fake_unit_of_work(fake_deps(store, busy_row_grace_seconds=0.02), NOW)

    await handlers.route_scored_leads([scored("lead-de", country="DE"), scored("lead-us", country="US"),
                                       scored("lead-de", country="DE", trigger="activity")], uow)

    assert owners(outbox.events) == ["rep-us"]
    # The lead waits for its team; its later event waits behind it, in order, never overtaking it.
    assert [(p.event.data.lead_id, p.waiting_for) for p in store.parked_events] == [
        ("lead-de", ("team:emea",)), ("lead-de", ("team:emea", "lead:lead-de"))]
    assert "lead-de" not in store.leads


async def test_a_lead_with_an_event_parked_parks_behind_it_even_when_its_team_is_free() -> None:
    store = FakeRoutingStore()
    sales_team(store)
    store.busy_rows = {"sales"}
    await route(store, scored("lead-1"), busy_row_grace_seconds=0.0)
    store.busy_rows = set()

    events = await route(store, scored("lead-1", trigger="activity"), scored("lead-2"))

    assert owners(events) == ["rep-a"] and events[0].data.lead_id == "lead-2"
    assert [p.waiting_for for p in store.parked_events] == [("team:sales",), ("lead:lead-1",)]


async def test_a_rep_another_transaction_holds_parks_only_the_leads_that_may_need_it() -> None:
    store = FakeRoutingStore()
    sales_team(store)
    store.add_team(Team("owners"), Rep("rep-owner"))
    store.busy_rows = {"rep-owner"}

    events = await route(store, scored("lead-1", owner="rep-owner"), scored("lead-2"),
                              busy_row_grace_seconds=0.0)

    assert owners(events) == ["rep-a"]
    assert [(p.event.data.lead_id, p.waiting_for) for p in store.parked_events] == [("lead-1", ("rep:rep-owner",))]

    # A rep of a team held elsewhere holds back the whole team: its round robin cannot skip the rep.
    store.busy_rows = {"rep-b"}
    events = await route(store, scored("lead-3"), busy_row_grace_seconds=0.0)
    assert events == [] and store.parked_events[-1].waiting_for == ("team:sales",)

