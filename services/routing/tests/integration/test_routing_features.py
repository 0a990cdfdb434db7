"""Routing through the real consumer and database: admin API, versioned rules and dry run, account
owner first, duplicates keep their owner, availability fallback, weighted and load-balanced teams,
re-route and escalation on SLA breach, CRM outcomes closing a lead."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from routing_harness import ADMIN, Collector, Env, Running, collecting, produce, running, scored

from leadflow_contracts import Event, LeadSla, new_event, topics

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
AWAY = [{"start": (NOW - timedelta(days=1)).isoformat(), "end": (NOW + timedelta(days=1)).isoformat(),
         "reason": "vacation"}]

TEAMS = [
    {"id": "main", "name": "Main"},
    {"id": "weighted", "name": "Weighted", "strategy": "weighted"},
    {"id": "balanced", "name": "Balanced", "strategy": "load_balanced"},
    {"id": "away", "name": "Away", "fallback_queue": "away-overflow"},
    {"id": "sla", "name": "SLA", "escalate_after_breaches": 2},
]
REPS = [
    {"id": "m-a", "name": "Main A", "team_id": "main"},
    {"id": "m-b", "name": "Main B", "team_id": "main"},
    {"id": "w-a", "name": "Weighted A", "team_id": "weighted", "weight": 3},
    {"id": "w-b", "name": "Weighted B", "team_id": "weighted", "weight": 1},
    {"id": "b-a", "name": "Balanced A", "team_id": "balanced"},
    {"id": "b-b", "name": "Balanced B", "team_id": "balanced"},
    {"id": "x-a", "name": "Away A", "team_id": "away", "out_of_office": AWAY},
    {"id": "x-b", "name": "Away B", "team_id": "away", "active": False},
    {"id": "s-a", "name": "SLA A", "team_id": "sla"},
    {"id": "s-b", "name": "SLA B", "team_id": "sla"},
    {"id": "boss", "name": "The Boss", "timezone": "Europe/Berlin"},
    {"id": "owner-ok", "name": "Account owner", "email": "owner@leadflow.example"},
    {"id": "owner-away", "name": "Owner on leave", "out_of_office": AWAY},
]
RULES = {
    "fallback_queue": "triage",
    "comment": "feature tests",
    "rules": [
        {"id": "weighted", "conditions": [{"field": "form", "op": "eq", "value": "weighted"}], "team_id": "weighted"},
        {"id": "balanced", "conditions": [{"field": "form", "op": "eq", "value": "balanced"}], "team_id": "balanced"},
        {"id": "away", "conditions": [{"field": "form", "op": "eq", "value": "away"}], "team_id": "away"},
        {"id": "sla", "conditions": [{"field": "form", "op": "eq", "value": "sla"}], "team_id": "sla"},
        {"id": "nowhere", "conditions": [{"field": "country", "op": "in", "value": ["BR", "AR"]}],
         "match": "any", "rep_id": "owner-away"},
        {"id": "main", "conditions": [{"field": "country", "op": "eq", "value": "US"}], "team_id": "main"},
    ],
}


class World:
    def __init__(self, env: Env, svc: Running, routed: Collector) -> None:
        self.env, self.svc, self.routed = env, svc, routed

    async def route(self, *events: Event[Any], count: int = 1) -> list[Event[Any]]:
        await produce(self.env.infra.bootstrap_servers, self.env.prefix, list(events))
        for event in events:
            await self.routed.wait(lambda e=event: len(self.routed.of(e.subject)) >= count, what="lead.routed")
        return [self.routed.of(e.subject)[count - 1] for e in events]

    async def assignment(self, lead_id: str) -> dict[str, Any]:
        response = await self.svc.get(f"/v1/leads/{lead_id}/assignment")
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        return view


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(env: Env) -> AsyncIterator[World]:
    async with (
        collecting(env.infra.bootstrap_servers, env.topic(topics.ROUTED)) as routed,
        running(env.settings()) as svc,
    ):
        for team in TEAMS:
            assert (await svc.post("/v1/admin/teams", json=team)).status_code == 201
        for rep in REPS:
            response = await svc.post("/v1/admin/reps", json=rep)
            assert response.status_code == 201, response.text
        assert (await svc.patch("/v1/admin/teams/sla", json={"manager_rep_id": "boss"})).status_code == 200
        response = await svc.post("/v1/admin/routing-rules", json=RULES)
        assert response.status_code == 201, response.text
        yield World(env, svc, routed)


async def test_admin_api_validates_and_guards_with_scopes(world: World) -> None:
    svc = world.svc
    bad = await svc.post("/v1/admin/reps", json={"name": "X", "timezone": "Mars/Olympus", "weight": -1,
                                                 "working_hours": {"mon": ["17:00-09:00"]}})
    assert bad.status_code == 422
    fields = {e["field"] for e in bad.json()["errors"]}
    assert {"timezone", "weight", "working_hours"} <= fields
    unknown_team = await svc.post("/v1/admin/reps", json={"name": "X", "team_id": "nope"})
    assert unknown_team.status_code == 422 and unknown_team.json()["errors"][0]["field"] == "team_id"
    assert (await svc.post("/v1/admin/teams", json={"id": "main", "name": "again"})).status_code == 409
    assert (await svc.post("/v1/admin/teams", json={"name": "x", "strategy": "random"})).status_code == 422
    bad_rules = await svc.post("/v1/admin/routing-rules", json={"rules": [
        {"id": "a", "team_id": "ghost"}, {"id": "a", "team_id": "main"},
        {"id": "b", "team_id": "main", "conditions": [{"field": "country", "op": "in", "value": "US"}]},
    ]})
    assert bad_rules.status_code == 422
    assert {e["field"] for e in bad_rules.json()["errors"]} == {"rules.0.team_id", "rules.1.id",
                                                                "rules.2.conditions.0.value"}

    team = (await svc.get("/v1/admin/teams/sla")).json()
    assert team["rep_ids"] == ["s-a", "s-b"] and team["manager_rep_id"] == "boss"
    away = (await svc.get("/v1/admin/reps/x-a")).json()
    assert away["unavailable_now"] == "out_of_office"
    assert (await svc.get("/v1/admin/reps", params={"team_id": "main"})).json()[0]["id"] == "m-a"

    crm_key = (await svc.post("/v1/admin/api-keys", json={"name": "hubspot", "scopes": ["crm:events"]})).json()["key"]
    as_crm = {"Authorization": f"Bearer {crm_key}"}
    assert (await svc.client.post("/v1/admin/reps", json={"name": "X"}, headers=as_crm)).status_code == 403
    assert (await svc.client.get("/v1/admin/routing-rules", headers=as_crm)).status_code == 403
    assert (await svc.client.get("/v1/admin/webhooks/subscriptions", headers=as_crm)).status_code == 403
    reader = (await svc.post("/v1/admin/api-keys", json={"name": "ops", "scopes": ["routing:read"]})).json()["key"]
    as_reader = {"Authorization": f"Bearer {reader}"}
    assert (await svc.client.get("/v1/admin/teams", headers=as_reader)).status_code == 200
    assert (await svc.client.post("/v1/admin/teams", json={"name": "x"}, headers=as_reader)).status_code == 403

    # Webhook subscriptions receive every lead's personal data: scopes of their own, not routing's.
    admin = (await svc.post("/v1/admin/api-keys", json={"name": "ops", "scopes": ["routing:*"]})).json()["key"]
    as_admin = {"Authorization": f"Bearer {admin}"}
    assert (await svc.client.get("/v1/admin/webhooks/subscriptions", headers=as_admin)).status_code == 403
    assert (await svc.client.post("/v1/admin/webhooks/subscriptions", json={},
                                  headers=as_admin)).status_code == 403
    hooks = (await svc.post("/v1/admin/api-keys", json={"name": "hooks",
                                                        "scopes": ["webhooks:read", "webhooks:write"]})).json()["key"]
    as_hooks = {"Authorization": f"Bearer {hooks}"}
    assert (await svc.client.get("/v1/admin/webhooks/subscriptions", headers=as_hooks)).status_code == 200
    assert (await svc.client.get("/v1/admin/webhooks/deliveries", headers=as_hooks)).status_code == 200
    # Past the scope check: the empty body is what is refused.
    assert (await svc.client.post("/v1/admin/webhooks/subscriptions", json={},
                                  headers=as_hooks)).status_code == 422
    assert (await svc.client.get("/v1/admin/teams", headers=as_hooks)).status_code == 403


async def test_rules_are_versioned_and_dry_run_changes_nothing(world: World) -> None:
    svc = world.svc
    active = (await svc.get("/v1/admin/routing-rules")).json()
    draft = await svc.post("/v1/admin/routing-rules", json={"rules": [{"id": "all", "team_id": "balanced"}],
                                                            "activate": False})
    assert draft.status_code == 201 and draft.json()["active"] is False
    assert (await svc.get("/v1/admin/routing-rules")).json()["version"] == active["version"]
    versions = [v["version"] for v in (await svc.get("/v1/admin/routing-rules/versions")).json()]
    assert versions[:2] == [draft.json()["version"], active["version"]]

    before = (await svc.get("/v1/admin/teams/main")).json()
    lead = {"tier": "hot", "score": 81, "profile": {"country": "US", "employee_count": 300}}
    trial = await svc.post("/v1/admin/routing-rules/dry-run", json={"lead": lead})
    assert trial.status_code == 200, trial.text
    decision = trial.json()
    assert decision["dry_run"] is True and decision["rule_id"] == "main"
    assert decision["owner"]["rep_id"] in {"m-a", "m-b"}
    assert [r["rule_id"] for r in decision["audit"]["rules"]][-1] == "main"
    assert decision["fields"]["region"] == "NA" and decision["fields"]["employee_segment"] == "201-1000"
    other = await svc.post("/v1/admin/routing-rules/dry-run", json={"lead": lead, "version": draft.json()["version"]})
    assert other.json()["team_id"] == "balanced"
    after = (await svc.get("/v1/admin/teams/main")).json()
    assert after["rr_last_rep_id"] == before["rr_last_rep_id"] and after["assignments"] == before["assignments"]
    assert (await svc.post("/v1/admin/routing-rules/dry-run", json={})).status_code == 422


async def test_account_owner_first_unless_unavailable(world: World) -> None:
    owned, owner_away = scored(owner_rep_id="owner-ok"), scored(owner_rep_id="owner-away")
    first, second = await world.route(owned, owner_away)
    assert first.data.owner.rep_id == "owner-ok" and first.data.reason.startswith("account owner")
    assert second.data.owner.rep_id in {"m-a", "m-b"} and second.data.rule_id == "main"
    audit = (await world.assignment(owner_away.subject))["history"][0]["audit"]
    assert audit["account_owner"] == {"account_id": "acc-1", "rep_id": "owner-away", "skipped": "out_of_office"}


async def test_a_duplicate_keeps_its_owner_and_a_rescore_does_not_reroute(world: World) -> None:
    original = scored()
    (routed,) = await world.route(original)
    owner = routed.data.owner.rep_id
    team_before = (await world.svc.get("/v1/admin/teams/main")).json()
    again = scored(original.subject, duplicate_of=original.subject)
    (second,) = await world.route(again, count=2)
    assert second.data.owner.rep_id == owner and "keeps its owner" in second.data.reason
    assert second.data.kept_owner and not routed.data.kept_owner
    rescore = scored(original.subject, trigger="activity", score=90)
    marker = scored()
    await world.route(rescore, marker)  # the marker proves the re-score was consumed before it
    assert len(world.routed.of(original.subject)) == 2
    team_after = (await world.svc.get("/v1/admin/teams/main")).json()
    # Only the marker advanced the rotation; the duplicate did not take a turn.
    assert team_after["assignments"] == team_before["assignments"] + 1
    history = (await world.assignment(original.subject))["history"]
    assert [h["outcome"] for h in history] == ["assigned", "kept_owner"]


async def test_whole_team_unavailable_goes_to_its_fallback_queue_with_metric(world: World) -> None:
    lead = scored(form="away")
    (routed,) = await world.route(lead)
    assert routed.data.owner is None and routed.data.queue == "away-overflow"
    view = await world.assignment(lead.subject)
    assert view["status"] == "queued" and view["queue"] == "away-overflow"
    skips = {c["rep_id"]: c["skipped"] for c in view["history"][0]["audit"]["candidates"]}
    assert skips == {"x-a": "out_of_office", "x-b": "inactive"}
    nowhere = scored(country="BR")
    (to_triage,) = await world.route(nowhere)
    assert to_triage.data.queue == "triage" and "unavailable" in to_triage.data.reason
    queues = {q["id"]: q["waiting"] for q in (await world.svc.get("/v1/admin/queues")).json()}
    assert queues["away-overflow"] >= 1 and queues["triage"] >= 1
    waiting = (await world.svc.get("/v1/admin/queues/away-overflow/leads")).json()
    assert lead.subject in [w["lead_id"] for w in waiting]
    metrics = (await world.svc.client.get("/metrics")).text
    assert 'leadflow_routing_fallback_total{team="away"}' in metrics
    assert 'leadflow_routing_decisions_total{outcome="fallback"}' in metrics


async def test_weighted_and_load_balanced_teams(world: World) -> None:
    weighted = await world.route(*[scored(form="weighted") for _ in range(8)])
    assert Counter(e.data.owner.rep_id for e in weighted) == {"w-a": 6, "w-b": 2}
    assert {e.data.strategy for e in weighted} == {"weighted"}
    balanced = await world.route(*[scored(form="balanced") for _ in range(4)])
    assert Counter(e.data.owner.rep_id for e in balanced) == {"b-a": 2, "b-b": 2}
    reps = {r["id"]: r for r in (await world.svc.get("/v1/admin/reps", params={"team_id": "balanced"})).json()}
    assert reps["b-a"]["open_leads"] == 2 and reps["b-a"]["assigned_today"] == 2


def breach(lead_id: str, owner: str, count: int, escalate: bool = False) -> Event[LeadSla]:
    now = datetime.now(UTC)
    data = LeadSla(lead_id=lead_id, clock_id=str(uuid.uuid4()), kind="breach", tier="hot", owner_rep_id=owner,
                   team_id="sla", started_at=now - timedelta(minutes=5), due_at=now, breach_count=count,
                   escalate=escalate)
    return new_event(data, source="sla", subject=lead_id)


async def test_sla_breach_reroutes_to_another_rep_then_escalates_to_the_manager(world: World) -> None:
    lead = scored(form="sla", tier="hot")
    (first,) = await world.route(lead)
    owner = first.data.owner.rep_id
    await produce(world.env.infra.bootstrap_servers, world.env.prefix, [breach(lead.subject, owner, 1)])
    await world.routed.wait(lambda: len(world.routed.of(lead.subject)) == 2, what="re-route")
    second = world.routed.of(lead.subject)[1].data
    assert second.reroute and second.reroute_reason == "sla_breach" and second.previous_owner_rep_id == owner
    assert second.owner.rep_id != owner and second.owner.rep_id in {"s-a", "s-b"}

    # A late breach about the former owner changes nothing; the next one escalates (2 breaches).
    stale = breach(lead.subject, owner, 1)
    current = breach(lead.subject, second.owner.rep_id, 2)
    await produce(world.env.infra.bootstrap_servers, world.env.prefix, [stale, current])
    await world.routed.wait(lambda: len(world.routed.of(lead.subject)) == 3, what="escalation")
    third = world.routed.of(lead.subject)[2].data
    assert third.escalated and third.owner.rep_id == "boss" and third.reroute_reason == "sla_breach_escalation"
    assert third.previous_owner_rep_id == second.owner.rep_id
    view = await world.assignment(lead.subject)
    assert [h["outcome"] for h in view["history"]] == ["assigned", "rerouted", "escalated"]
    assert view["breach_count"] == 2
    candidates = {c["rep_id"]: c["skipped"] for c in view["history"][1]["audit"]["candidates"]}
    assert candidates[owner] == "previous_owner"


async def test_converted_closes_the_lead_and_frees_the_reps_capacity(world: World) -> None:
    lead = scored(form="balanced")
    (routed,) = await world.route(lead)
    owner = routed.data.owner.rep_id
    before = (await world.svc.get(f"/v1/admin/reps/{owner}")).json()["open_leads"]
    response = await world.svc.client.post(f"/v1/leads/{lead.subject}/events", headers=ADMIN,
                                           json={"type": "converted", "rep_id": owner, "external_id": "crm-1"})
    assert response.status_code == 202 and response.json()["duplicate"] is False
    repeat = await world.svc.client.post(f"/v1/leads/{lead.subject}/events", headers=ADMIN,
                                         json={"type": "converted", "rep_id": owner, "external_id": "crm-1"})
    assert repeat.json()["duplicate"] is True and repeat.json()["touch_id"] == response.json()["touch_id"]
    assert (await world.svc.get(f"/v1/admin/reps/{owner}")).json()["open_leads"] == before - 1
    assert (await world.assignment(lead.subject))["status"] == "closed"


async def test_a_queued_lead_that_breaches_is_routed_once_someone_is_back(world: World) -> None:
    lead = scored(form="away")
    (queued,) = await world.route(lead)
    assert queued.data.queue == "away-overflow"
    back = await world.svc.patch("/v1/admin/reps/x-b", json={"active": True})
    assert back.status_code == 200 and back.json()["unavailable_now"] is None
    try:
        await produce(world.env.infra.bootstrap_servers, world.env.prefix, [breach(lead.subject, "", 1)])
        await world.routed.wait(lambda: len(world.routed.of(lead.subject)) == 2, what="routed from the queue")
    finally:
        await world.svc.patch("/v1/admin/reps/x-b", json={"active": False})
    rerouted = world.routed.of(lead.subject)[1].data
    assert rerouted.owner.rep_id == "x-b" and rerouted.reroute and rerouted.reroute_reason == "sla_breach"
    assert (await world.assignment(lead.subject))["status"] == "assigned"
