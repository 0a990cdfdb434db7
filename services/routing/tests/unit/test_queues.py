"""Queues people work, through the fake store: who may claim for whom, claims and reassignments as
decisions (audit row, lead.routed, webhook, the reps' counters), the SLA state a listing shows, and a
queued lead's breach escalating to its team's manager."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from leadflow_contracts import Event, LeadSla, LeadSlaStarted, new_event
from leadflow_kit.auth import Principal
from leadflow_kit.fakes import fake_unit_of_work
from leadflow_routing import queues
from leadflow_routing.domain import OutOfOffice, Rep, Rule, Team
from leadflow_routing.handlers import Routed
from leadflow_routing.sla_states import SlaState, fired, latest_per_lead, opened, sla_state

from .fakes import FakeRoutingStore, fake_deps
from .test_routing_handlers import NOW, breach, reroute, route, scored

AWAY = (OutOfOffice(NOW - timedelta(days=1), NOW + timedelta(days=1)),)


def actor(*scopes: str, name: str = "key") -> queues.Actor:
    return queues.Actor.of(Principal("k1", name, frozenset(scopes)))


async def queued_store() -> FakeRoutingStore:
    """Team desk, everyone away, falls back to desk-queue; mgr manages it; lead-1 waits there."""
    store = FakeRoutingStore()
    store.add_team(Team("desk", fallback_queue="desk-queue", manager_rep_id="mgr"),
                   Rep("desk-a", out_of_office=AWAY), Rep("desk-b", out_of_office=AWAY))
    store.reps["mgr"] = Rep("mgr")
    store.reps["other"] = Rep("other", team_id="elsewhere")
    store.reps["gone"] = Rep("gone", team_id="desk", active=False)
    store.created_queues |= {"desk-queue", "triage"}
    store.activate(Rule("desk", team_id="desk"), fallback_queue="triage")
    (routed,) = await route(store, scored("lead-1"))
    assert routed.data.queue == "desk-queue"
    return store


async def claim(store: FakeRoutingStore, rep_id: str, by: queues.Actor) -> tuple[Routed, list[Event[object]]]:
    uow, outbox, _ = fake_unit_of_work(fake_deps(store), NOW)
    moved = await queues.claim_lead(uow, queues.Claim("lead-1", rep_id, by))
    return moved, outbox.events


def test_a_key_acts_for_the_reps_its_scopes_name() -> None:
    key = actor("queues:work", "rep:ada", "rep:bob", "rep:*", "rep:")
    assert key.rep_ids == {"ada", "bob"} and not key.admin
    assert actor("routing:write").admin and actor("*").admin and not actor("routing:read").admin


def test_a_rep_claims_for_itself_a_manager_for_its_teams_reps_an_admin_for_anyone() -> None:
    rep = Rep("ada", team_id="desk")
    assert queues.claim_refusal(actor("rep:ada"), rep, manager_rep_id="mgr") is None
    assert queues.claim_refusal(actor("rep:mgr"), rep, manager_rep_id="mgr") is None
    assert queues.claim_refusal(actor("routing:write"), rep, manager_rep_id=None) is None
    refusal = queues.claim_refusal(actor("rep:bob"), rep, manager_rep_id="mgr")
    assert refusal is not None and "not for rep 'ada'" in refusal
    refusal = queues.claim_refusal(actor("queues:work"), rep, manager_rep_id=None)
    assert refusal is not None and "acts for no rep" in refusal


def test_a_cursor_names_the_position_after_a_page_and_a_forged_one_is_refused() -> None:
    cursor = queues.encode_cursor(NOW, "lead-9")
    assert queues.decode_cursor(cursor) == (NOW, "lead-9")
    for forged in ("", "not-a-cursor", "W10", queues.encode_cursor(NOW.replace(tzinfo=None), "x")):
        assert queues.decode_cursor(forged) is None


def test_a_listing_shows_each_leads_latest_sla_event() -> None:
    def sla(lead_id: str, kind: str, minutes: int) -> Event[LeadSla]:
        data = LeadSla(lead_id=lead_id, clock_id="c", kind=kind, tier="hot",  # type: ignore[arg-type]
                       started_at=NOW, due_at=NOW + timedelta(hours=1), breach_count=1 if kind == "breach" else 0)
        return new_event(data, source="sla", subject=lead_id, time=NOW + timedelta(minutes=minutes))

    def started(lead_id: str, minutes: int) -> Event[LeadSlaStarted]:
        data = LeadSlaStarted(lead_id=lead_id, clock_id="c", tier="hot", started_at=NOW,
                              due_at=NOW + timedelta(hours=1))
        return new_event(data, source="sla", subject=lead_id, time=NOW + timedelta(minutes=minutes))

    seen = latest_per_lead(fired([sla("b", "breach", 60), sla("a", "warning", 45), sla("b", "warning", 45)])
                           + opened([started("a", 0), started("c", 0)]))
    assert [(s.lead_id, s.kind) for s in seen] == [("a", "warning"), ("b", "breach"), ("c", "started")]
    assert sla_state(None, None, None) == SlaState("open")
    assert sla_state("started", NOW, 0) == SlaState("open", NOW)
    assert sla_state("warning", NOW, 0).state == "warned"
    assert sla_state("breach", NOW, 2).state == "breached" and sla_state("breach", NOW, 2).breach_count == 2


async def test_claiming_a_queued_lead_is_a_decision_audited_published_and_sent_to_the_crm() -> None:
    store = await queued_store()
    moved, events = await claim(store, "desk-a", actor("queues:work", "rep:desk-a", name="ada-key"))
    (published,) = events
    routed = published.data  # type: ignore[attr-defined]
    assert routed.owner.rep_id == "desk-a" and routed.reroute and routed.reroute_reason == "claimed"
    assert published.correlation_id == "corr-lead-1"
    write = store.assignments[-1]
    assert write.decision.outcome == "claimed" and write.decision.audit["by_key"] == "ada-key"
    assert write.decision.audit["from_queue"] == "desk-queue"
    assert store.leads["lead-1"].status == "assigned" and store.reps["desk-a"].open_leads == 1
    assert store.webhooks[-1].data["routing"]["reroute_reason"] == "claimed"
    assert moved.assignment_id == write.assignment_id


async def test_a_claim_is_refused_for_another_rep_a_claimed_lead_and_an_inactive_rep() -> None:
    store = await queued_store()
    with pytest.raises(queues.MoveRefused) as refused:
        await claim(store, "other", actor("rep:mgr"))
    assert refused.value.kind == "forbidden"
    with pytest.raises(queues.MoveRefused) as refused:
        await claim(store, "gone", actor("routing:write"))
    assert refused.value.kind == "conflict" and "inactive" in refused.value.detail
    with pytest.raises(queues.MoveRefused) as refused:
        await claim(store, "nobody", actor("routing:write"))
    assert refused.value.kind == "unknown" and refused.value.field == "rep_id"
    await claim(store, "desk-b", actor("rep:mgr"))
    with pytest.raises(queues.MoveRefused) as refused:
        await claim(store, "desk-a", actor("rep:desk-a"))
    assert refused.value.kind == "conflict" and "already claimed" in refused.value.detail


async def test_a_lead_in_nurture_cannot_be_claimed() -> None:
    store = await queued_store()
    store.leads["lead-1"] = replace(store.leads["lead-1"], status="nurture")
    with pytest.raises(queues.MoveRefused) as refused:
        await claim(store, "desk-a", actor("routing:write"))
    assert refused.value.kind == "conflict" and "nurture" in refused.value.detail


async def test_reassigning_moves_the_lead_and_its_count_from_the_previous_owner() -> None:
    store = await queued_store()
    await claim(store, "desk-a", actor("rep:desk-a"))
    uow, outbox, _ = fake_unit_of_work(fake_deps(store), NOW)
    await queues.reassign_lead(uow, queues.Reassignment("lead-1", "other", None, "covering", actor("*")))
    routed = outbox.events[0].data
    assert routed.owner.rep_id == "other" and routed.previous_owner_rep_id == "desk-a"
    assert routed.reason == "covering" and routed.reroute_reason == "reassigned"
    assert store.reps["desk-a"].open_leads == 0 and store.reps["other"].open_leads == 1
    uow, outbox, _ = fake_unit_of_work(fake_deps(store), NOW)
    await queues.reassign_lead(uow, queues.Reassignment("lead-1", None, "triage", "back", actor("*")))
    assert outbox.events[0].data.queue == "triage" and store.leads["lead-1"].status == "queued"
    assert store.reps["other"].open_leads == 0
    uow, _, _ = fake_unit_of_work(fake_deps(store), NOW)
    with pytest.raises(queues.MoveRefused) as refused:
        await queues.reassign_lead(uow, queues.Reassignment("lead-1", None, "triage", "again", actor("*")))
    assert refused.value.kind == "conflict"


async def test_a_queued_lead_that_breaches_with_nobody_free_escalates_to_its_teams_manager() -> None:
    store = await queued_store()
    (escalated,) = await reroute(store, breach(owner=None))
    assert escalated.data.owner.rep_id == "mgr" and escalated.data.escalated
    assert escalated.data.reroute_reason == "sla_breach_escalation"
    assert store.sla_seen["lead-1"].kind == "breach"
    assert (["desk"], [], True) in store.claimed  # its team's manager, locked up front


async def test_a_queued_lead_without_a_team_stays_queued_audited_when_it_breaches() -> None:
    store = await queued_store()
    store.teams["desk"] = Team("desk", fallback_queue="desk-queue")  # no manager
    assert await reroute(store, breach(owner=None)) == []
    (lead_id, reason, audit) = store.owner_kept[-1]
    assert lead_id == "lead-1" and "stays queued" in reason and audit["breach_count"] == 1
