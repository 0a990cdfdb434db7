"""Queues people work, through the real routing (its consumer, API and webhook dispatcher) on the suite's
PostgreSQL and Kafka: a queue's leads listed oldest first with their age and SLA state, claims by a rep or
its team's manager, an admin's reassignments, each audited, published as lead.routed and sent to the CRM;
a queued lead that breaches with nobody to take it escalates to its team's manager."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
import pytest_asyncio
from routing_harness import ADMIN, Collector, Env, Receiver, Running, collecting, produce, receiver, running, scored
from routing_harness import subscribe as subscribe_crm

from leadflow_contracts import Event, LeadSla, new_event, topics

pytestmark = pytest.mark.integration
T = TypeVar("T")

NOW = datetime.now(UTC)
AWAY = [{"start": (NOW - timedelta(days=1)).isoformat(), "end": (NOW + timedelta(days=1)).isoformat(),
         "reason": "vacation"}]
TEAMS = [{"id": "desk", "name": "Desk", "fallback_queue": "desk-queue"}, {"id": "elsewhere", "name": "Elsewhere"}]
REPS = [
    {"id": "desk-a", "name": "Desk A", "team_id": "desk", "out_of_office": AWAY},
    {"id": "desk-b", "name": "Desk B", "team_id": "desk", "out_of_office": AWAY},
    {"id": "gone", "name": "Gone", "team_id": "desk", "active": False},
    {"id": "mgr", "name": "Desk manager"},
    {"id": "other", "name": "Other", "team_id": "elsewhere"},
]
RULES = {"fallback_queue": "triage", "rules": [
    {"id": "desk", "conditions": [{"field": "form", "op": "eq", "value": "desk"}], "team_id": "desk"}]}
KEYS = {"rep": ["queues:work", "rep:desk-a"], "manager": ["queues:work", "rep:mgr"],
        "other": ["queues:work", "rep:other"], "reader": ["routing:read"]}


class World:
    def __init__(self, env: Env, svc: Running, routed: Collector, crm: Receiver, keys: dict[str, str]) -> None:
        self.env, self.svc, self.routed, self.crm, self.keys = env, svc, routed, crm, keys

    def as_(self, who: str) -> dict[str, str]:
        return ADMIN if who == "admin" else {"Authorization": f"Bearer {self.keys[who]}"}

    async def queue(self, *, form: str = "desk", count: int = 1) -> list[str]:
        events = [scored(form=form) for _ in range(count)]
        for event in events:  # one by one: their queued times are then in this order
            await produce(self.env.infra.bootstrap_servers, self.env.prefix, [event])
            await self.routed.wait(lambda e=event: len(self.routed.of(e.subject)) >= 1, what="lead.routed")
        return [e.subject for e in events]

    async def claim(self, lead_id: str, rep_id: str, who: str) -> httpx.Response:
        return await self.svc.client.post(f"/v1/leads/{lead_id}/claim", json={"rep_id": rep_id}, headers=self.as_(who))

    async def reassign(self, lead_id: str, who: str = "admin", **body: Any) -> httpx.Response:
        return await self.svc.client.post(f"/v1/leads/{lead_id}/reassign", json=body, headers=self.as_(who))

    async def listing(self, queue: str, who: str = "admin", **params: Any) -> httpx.Response:
        return await self.svc.client.get(f"/v1/queues/{queue}/leads", params=params, headers=self.as_(who))

    async def history(self, lead_id: str) -> list[dict[str, Any]]:
        response = await self.svc.get(f"/v1/leads/{lead_id}/assignment")
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["history"]
        return found

    async def open_leads(self, rep_id: str) -> int:
        count: int = (await self.svc.get(f"/v1/admin/reps/{rep_id}")).json()["open_leads"]
        return count

    async def routed_event(self, lead_id: str, number: int) -> Any:
        await self.routed.wait(lambda: len(self.routed.of(lead_id)) >= number, what=f"lead.routed #{number}")
        return self.routed.of(lead_id)[number - 1].data

    async def webhooks(self, lead_id: str, count: int) -> list[dict[str, Any]]:
        def of_lead() -> list[dict[str, Any]]:
            return [a["payload"]["data"] for a in self.crm.accepted() if a["payload"]["data"]["lead_id"] == lead_id]
        await self.routed.wait(lambda: len(of_lead()) >= count, what=f"{count} webhooks")
        return of_lead()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(env: Env) -> AsyncIterator[World]:
    async with (
        collecting(env.infra.bootstrap_servers, env.topic(topics.ROUTED)) as routed,
        running(env.settings()) as svc,
        receiver("whsec_" + "A" * 43 + "=") as crm,
    ):
        for team in TEAMS:
            assert (await svc.post("/v1/admin/teams", json=team)).status_code == 201
        for rep in REPS:
            assert (await svc.post("/v1/admin/reps", json=rep)).status_code == 201
        assert (await svc.patch("/v1/admin/teams/desk", json={"manager_rep_id": "mgr"})).status_code == 200
        for queue in ("desk-queue", "triage"):
            assert (await svc.post("/v1/admin/queues", json={"id": queue, "name": queue})).status_code == 201
        assert (await svc.post("/v1/admin/routing-rules", json=RULES)).status_code == 201
        await subscribe_crm(svc, crm)
        keys = {}
        for who, scopes in KEYS.items():
            minted = await svc.post("/v1/admin/api-keys", json={"name": f"{who}-key", "scopes": scopes})
            assert minted.status_code == 201, minted.text
            keys[who] = minted.json()["key"]
        yield World(env, svc, routed, crm, keys)


async def eventually(read: Callable[[], Awaitable[T]], holds: Callable[[T], bool], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if holds(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


def sla_event(lead_id: str, kind: str, started_at: datetime, *, count: int = 0) -> Event[LeadSla]:
    data = LeadSla(lead_id=lead_id, clock_id=str(uuid.uuid4()), kind=kind, tier="warm",  # type: ignore[arg-type]
                   started_at=started_at, due_at=started_at + timedelta(hours=4), breach_count=count)
    return new_event(data, source="sla", subject=lead_id)


async def test_a_queue_lists_its_waiting_leads_oldest_first_in_pages_with_age_and_sla_state(world: World) -> None:
    leads = await world.queue(count=3)
    pages, cursor = [], None
    while True:
        response = await world.listing("desk-queue", who="reader", limit=2, **({"cursor": cursor} if cursor else {}))
        assert response.status_code == 200, response.text
        pages.append(response.json())
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    listed = [lead for page in pages for lead in page["leads"]]
    assert [lead["lead_id"] for lead in listed if lead["lead_id"] in leads] == leads  # oldest first
    assert all(len(page["leads"]) <= 2 for page in pages) and pages[0]["waiting"] == len(listed)
    first = next(lead for lead in listed if lead["lead_id"] == leads[0])
    assert first["age_seconds"] >= 0 and first["team_id"] == "desk" and first["company"] == "Acme"
    assert first["tier"] == "warm" and first["sla"] == {"state": "open", "due_at": None, "breach_count": 0}

    # sla's warning for the clock started when the lead was queued shows; one of an older clock does not.
    queued_at = datetime.fromisoformat(first["queued_at"])
    await produce(world.env.infra.bootstrap_servers, world.env.prefix,
                  [sla_event(leads[0], "warning", queued_at), sla_event(leads[1], "warning", queued_at - timedelta(1))])

    async def state_of(lead_id: str) -> dict[str, Any]:
        page = (await world.listing("desk-queue", who="rep", limit=500)).json()
        found: dict[str, Any] = next(lead for lead in page["leads"] if lead["lead_id"] == lead_id)["sla"]
        return found

    warned = await eventually(lambda: state_of(leads[0]), lambda sla: sla["state"] == "warned")
    assert warned["state"] == "warned"
    assert datetime.fromisoformat(warned["due_at"]) == queued_at + timedelta(hours=4)
    assert (await state_of(leads[1]))["state"] == "open"
    # The stored state is the lead's: a data-subject export (and erasure) covers it.
    export = await world.svc.get("/v1/admin/privacy/export", params={"lead_id": leads[0]})
    assert [row["kind"] for row in export.json()["tables"]["lead_sla"]] == ["warning"]

    assert (await world.listing("desk-queue", cursor="not-a-cursor")).status_code == 422
    assert (await world.listing("no-such-queue")).status_code == 404
    assert (await world.svc.client.get("/v1/queues/desk-queue/leads")).status_code == 401


async def test_a_rep_claims_a_queued_lead_for_itself_and_a_manager_for_the_reps_of_its_team(world: World) -> None:
    mine, for_b, closed = await world.queue(count=3)
    before = await world.open_leads("desk-a")

    assert (await world.claim(mine, "other", who="rep")).status_code == 403  # a rep claims only for itself
    assert (await world.claim(mine, "desk-a", who="reader")).status_code == 403  # no queues:work
    assert (await world.svc.client.post(f"/v1/leads/{mine}/claim", json={"rep_id": "desk-a"})).status_code == 401
    claimed = await world.claim(mine, "desk-a", who="rep")
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["outcome"] == "claimed" and claimed.json()["owner_rep_id"] == "desk-a"
    again = await world.claim(mine, "desk-a", who="rep")
    assert again.status_code == 409 and "already claimed" in again.json()["detail"]
    assert (await world.claim(mine, "other", who="other")).status_code == 409

    routed = await world.routed_event(mine, 2)
    assert routed.owner.rep_id == "desk-a" and routed.reroute and routed.reroute_reason == "claimed"
    assert routed.reason == "claimed from queue desk-queue by rep desk-a"
    history = await world.history(mine)
    assert [h["outcome"] for h in history] == ["fallback", "claimed"]
    assert history[1]["audit"]["by_key"] == "rep-key" and history[1]["reroute_reason"] == "claimed"
    assert await world.open_leads("desk-a") == before + 1
    sent = await world.webhooks(mine, 2)
    assert sent[-1]["owner"]["rep_id"] == "desk-a" and sent[-1]["routing"]["reroute_reason"] == "claimed"
    listed = (await world.listing("desk-queue", limit=500)).json()["leads"]
    assert mine not in [lead["lead_id"] for lead in listed]

    assert (await world.claim(for_b, "other", who="manager")).status_code == 403  # not a rep of its team
    by_manager = await world.claim(for_b, "desk-b", who="manager")
    assert by_manager.status_code == 200, by_manager.text
    by_manager_routed = await world.routed_event(for_b, 2)
    assert by_manager_routed.reason == "claimed from queue desk-queue by 'manager-key' for rep desk-b"

    assert (await world.claim(closed, "gone", who="admin")).status_code == 409  # an inactive rep
    unknown_rep = await world.claim(closed, "nobody", who="admin")
    assert unknown_rep.status_code == 422 and unknown_rep.json()["errors"][0]["field"] == "rep_id"
    assert (await world.claim(f"lead-{uuid.uuid4().hex}", "desk-a", who="rep")).status_code == 404
    converted = await world.svc.post(f"/v1/leads/{closed}/events", json={"type": "converted"})
    assert converted.status_code == 202
    refused = await world.claim(closed, "desk-a", who="rep")
    assert refused.status_code == 409 and "closed" in refused.json()["detail"]


async def test_an_admin_reassigns_any_lead_to_a_rep_or_a_queue_with_a_reason(world: World) -> None:
    (lead,) = await world.queue()
    assert (await world.claim(lead, "desk-a", who="rep")).status_code == 200
    before = {rep: await world.open_leads(rep) for rep in ("desk-a", "other")}

    assert (await world.reassign(lead, who="rep", rep_id="other", reason="mine now")).status_code == 403
    assert (await world.reassign(lead, rep_id="desk-a", reason="same")).status_code == 409
    assert (await world.reassign(lead, reason="where to?")).status_code == 422
    assert (await world.reassign(lead, rep_id="other", queue="triage", reason="both")).status_code == 422
    assert (await world.reassign(lead, rep_id="other", reason="")).status_code == 422
    unknown = await world.reassign(lead, queue="nowhere", reason="no such queue")
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "queue"

    to_rep = await world.reassign(lead, rep_id="other", reason="Desk A is on leave; Other covers")
    assert to_rep.status_code == 200, to_rep.text
    routed = await world.routed_event(lead, 3)
    assert routed.owner.rep_id == "other" and routed.reroute_reason == "reassigned"
    assert routed.previous_owner_rep_id == "desk-a" and routed.reason == "Desk A is on leave; Other covers"
    assert await world.open_leads("desk-a") == before["desk-a"] - 1
    assert await world.open_leads("other") == before["other"] + 1

    to_queue = await world.reassign(lead, queue="triage", reason="Wrong territory, back for triage")
    assert to_queue.status_code == 200 and to_queue.json()["queue"] == "triage"
    routed = await world.routed_event(lead, 4)
    assert routed.owner is None and routed.queue == "triage" and routed.previous_owner_rep_id == "other"
    assert await world.open_leads("other") == before["other"]
    assert lead in [entry["lead_id"] for entry in (await world.listing("triage", limit=500)).json()["leads"]]
    assert (await world.reassign(lead, queue="triage", reason="again")).status_code == 409

    history = await world.history(lead)
    assert [(h["outcome"], h["reroute_reason"]) for h in history] == [
        ("fallback", None), ("claimed", "claimed"), ("reassigned", "reassigned"), ("reassigned", "reassigned")]
    assert history[2]["reason"] == "Desk A is on leave; Other covers" and history[2]["audit"]["by_key"] == "bootstrap"
    sent = await world.webhooks(lead, 4)
    assert [s["routing"]["reroute_reason"] for s in sent] == [None, "claimed", "reassigned", "reassigned"]
    assert sent[2]["routing"]["reason"] == "Desk A is on leave; Other covers"


async def test_a_queued_lead_that_breaches_with_nobody_to_take_it_escalates_to_its_teams_manager(
    world: World,
) -> None:
    (desk_lead,) = await world.queue()
    (triage_lead,) = await world.queue(form="no-rule")
    queued = {entry["lead_id"]: datetime.fromisoformat(entry["queued_at"]) for queue in ("desk-queue", "triage")
              for entry in (await world.listing(queue, limit=500)).json()["leads"]}
    await produce(world.env.infra.bootstrap_servers, world.env.prefix,
                  [sla_event(lead, "breach", queued[lead], count=1) for lead in (desk_lead, triage_lead)])
    escalated = await world.routed_event(desk_lead, 2)
    assert escalated.owner.rep_id == "mgr" and escalated.escalated
    assert escalated.reroute_reason == "sla_breach_escalation"
    assert [h["outcome"] for h in await world.history(desk_lead)] == ["fallback", "escalated"]

    # No team, so no manager: the lead stays in its queue, and the history says why.
    history = await eventually(lambda: world.history(triage_lead), lambda found: len(found) == 2)
    assert [h["outcome"] for h in history] == ["fallback", "unchanged"] and "stays queued" in history[1]["reason"]
    assert len(world.routed.of(triage_lead)) == 1
    listed = (await world.listing("triage", limit=500)).json()["leads"]
    sla = next(entry for entry in listed if entry["lead_id"] == triage_lead)["sla"]
    assert sla["state"] == "breached" and sla["breach_count"] == 1
    assert datetime.fromisoformat(sla["due_at"]) == queued[triage_lead] + timedelta(hours=4)
