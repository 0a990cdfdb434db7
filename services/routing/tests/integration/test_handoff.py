"""Issue 18 item 1 through the real consumer and database: the hand-off policy (MQL or first fill), a
lead held in nurture and handed to sales at its MQL moment, and a lead the CRM sends back to nurture
waiting out its cool-down."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from routing_harness import ADMIN, Env, Running, collecting, produce, receiver, running, scored
from sqlalchemy import text

from leadflow_contracts import topics
from leadflow_kit.clock import FrozenClock
from leadflow_kit.db import Database
from leadflow_routing.seed import seed_demo

pytestmark = pytest.mark.integration


async def _seed(settings: Any) -> None:
    db = Database(settings.database_url)
    await seed_demo(settings, db)
    await db.dispose()


async def _stored(svc: Running, lead_id: str, score: float) -> dict[str, Any]:
    """The lead's row once routing has stored its re-score of ``score`` (whatever it decided about it)."""
    db = Database(svc.settings.database_url)
    try:
        for _ in range(600):
            async with db.transaction() as session:
                row = (await session.execute(
                    text("SELECT status, owner_rep_id, queue, handoff_after, (data->>'score')::float AS score"
                         " FROM lead WHERE id = :id"), {"id": lead_id})).first()
            if row is not None and row.score == score:
                return dict(row._mapping)
            await asyncio.sleep(0.05)
        raise AssertionError(f"lead {lead_id} never stored score {score}")
    finally:
        await db.dispose()


async def test_a_cold_lead_waits_in_nurture_and_goes_to_sales_when_it_becomes_an_mql(env: Env) -> None:
    settings = env.settings(demo_webhook_url=None)
    async with receiver(settings.demo_webhook_secret.get_secret_value()) as crm:
        await _seed(env.settings(demo_webhook_url=crm.url))  # the seeded rules hand off at the MQL moment
        async with (
            collecting(env.infra.bootstrap_servers, env.topic(topics.ROUTED)) as routed,
            running(settings) as svc,
        ):
            cold = scored(tier="cold", score=20)
            await produce(env.infra.bootstrap_servers, env.prefix, [cold])
            await routed.wait(lambda: bool(routed.of(cold.subject)), what="lead.routed (nurture)")
            held = routed.of(cold.subject)[0].data
            assert (held.nurture, held.owner, held.queue) == (True, None, "nurture")
            view = (await svc.get(f"/v1/leads/{cold.subject}/assignment")).json()
            assert (view["status"], view["owner"], view["queue"]) == ("nurture", None, "nurture")
            assert view["history"][0]["outcome"] == "nurture"

            # An activity that leaves it short of an MQL: stored, still in nurture, nothing routed.
            await produce(env.infra.bootstrap_servers, env.prefix,
                          [scored(cold.subject, tier="cold", score=35, trigger="activity")])
            assert (await _stored(svc, cold.subject, 35))["status"] == "nurture"
            # Activities lift it to an MQL: handed to sales at that moment.
            await produce(env.infra.bootstrap_servers, env.prefix,
                          [scored(cold.subject, tier="hot", score=75, trigger="activity")])
            await routed.wait(lambda: len(routed.of(cold.subject)) == 2, what="lead.routed (mql)")
            handed = routed.of(cold.subject)[1].data
            assert handed.nurture is False and handed.owner is not None
            assert (handed.reroute, handed.reroute_reason, handed.tier) == (True, "mql", "hot")
            await _eventually(lambda: [a for a in crm.accepted() if a["payload"]["data"]["lead_id"] == cold.subject])
            [webhook] = [a["payload"] for a in crm.accepted() if a["payload"]["data"]["lead_id"] == cold.subject]
            assert webhook["type"] == "lead.routed"
            assert webhook["data"]["owner"]["rep_id"] == handed.owner.rep_id
            assert webhook["data"]["routing"]["reroute_reason"] == "mql"
            history = (await svc.get(f"/v1/leads/{cold.subject}/assignment")).json()["history"]
            assert [(h["outcome"], h["reroute_reason"]) for h in history] == [("nurture", None), ("assigned", "mql")]

            # An MQL at its first fill goes to sales at once.
            mql = scored(tier="warm", score=60)
            await produce(env.infra.bootstrap_servers, env.prefix, [mql])
            await routed.wait(lambda: bool(routed.of(mql.subject)), what="lead.routed (mql at first fill)")
            assert routed.of(mql.subject)[0].data.owner is not None


async def test_the_handoff_policy_is_admin_data_and_first_fill_routes_every_lead(env: Env) -> None:
    settings = env.settings()
    await _seed(settings)
    async with (
        collecting(env.infra.bootstrap_servers, env.topic(topics.ROUTED)) as routed,
        running(settings) as svc,
    ):
        assert (await svc.get("/v1/admin/routing-rules")).json()["handoff"] == "mql"
        trial = await svc.post("/v1/admin/routing-rules/dry-run", json={"lead": {"is_mql": False, "country": "US"}})
        assert trial.status_code == 200, trial.text
        assert trial.json()["handoff"] == {"policy": "mql", "held_in_nurture": True}
        bad = await svc.post("/v1/admin/routing-rules", json={"rules": [{"id": "all", "team_id": "sales"}],
                                                               "handoff": "whenever"})
        assert bad.status_code == 422
        saved = await svc.post("/v1/admin/routing-rules", json={"rules": [{"id": "all", "team_id": "sales"}],
                                                                 "handoff": "first_fill"})
        assert saved.status_code == 201, saved.text
        assert saved.json()["handoff"] == "first_fill"
        cold = scored(tier="cold", score=10)
        await produce(env.infra.bootstrap_servers, env.prefix, [cold])
        await routed.wait(lambda: bool(routed.of(cold.subject)), what="lead.routed")
        first = routed.of(cold.subject)[0].data
        assert first.nurture is False and first.owner is not None and first.owner.team_id == "sales"
        default = await svc.post("/v1/admin/routing-rules", json={"rules": [{"id": "all", "team_id": "sales"}]})
        assert default.json()["handoff"] == "mql"


async def test_a_recycled_lead_goes_back_to_nurture_and_is_handed_off_again_after_the_cooldown(env: Env) -> None:
    settings = env.settings(recycle_cooldown_seconds=600)
    await _seed(settings)
    clock = FrozenClock(datetime.now(UTC))
    async with (
        collecting(env.infra.bootstrap_servers, env.topic(topics.ROUTED)) as routed,
        running(settings, clock=clock) as svc,
    ):
        lead = scored(tier="warm", score=60)
        await produce(env.infra.bootstrap_servers, env.prefix, [lead])
        await routed.wait(lambda: bool(routed.of(lead.subject)), what="lead.routed")
        owner = routed.of(lead.subject)[0].data.owner.rep_id
        open_before = (await svc.get(f"/v1/admin/reps/{owner}")).json()["open_leads"]

        touch = await svc.client.post(f"/v1/leads/{lead.subject}/events", headers=ADMIN,
                                      json={"type": "recycled", "rep_id": owner, "reason": "No budget until Q3"})
        assert touch.status_code == 202, touch.text
        await routed.wait(lambda: len(routed.of(lead.subject)) == 2, what="lead.routed (back to nurture)")
        back = routed.of(lead.subject)[1].data
        assert (back.nurture, back.owner, back.queue) == (True, None, "nurture")
        assert (back.reroute_reason, back.previous_owner_rep_id) == ("recycled", owner)
        assert "No budget until Q3" in back.reason
        assert (await svc.get(f"/v1/admin/reps/{owner}")).json()["open_leads"] == open_before - 1

        # Still an MQL, but inside the cool-down: it stays in nurture.
        clock.advance(timedelta(seconds=599))
        await produce(env.infra.bootstrap_servers, env.prefix,
                      [scored(lead.subject, tier="hot", score=80, trigger="activity")])
        assert (await _stored(svc, lead.subject, 80))["status"] == "nurture"
        # After it, the next re-score that finds an MQL hands it off again.
        clock.advance(timedelta(seconds=2))
        await produce(env.infra.bootstrap_servers, env.prefix,
                      [scored(lead.subject, tier="hot", score=81, trigger="decay")])
        await routed.wait(lambda: len(routed.of(lead.subject)) == 3, what="lead.routed (handed off again)")
        again = routed.of(lead.subject)[2].data
        assert again.owner is not None and again.reroute_reason == "mql"
        assert (await _stored(svc, lead.subject, 81))["handoff_after"] is None

        # Disqualified takes the same way back (the reason is required).
        disqualified = await svc.client.post(f"/v1/leads/{lead.subject}/events", headers=ADMIN,
                                             json={"type": "disqualified", "reason": "Student project"})
        assert disqualified.status_code == 202, disqualified.text
        await routed.wait(lambda: len(routed.of(lead.subject)) == 4, what="lead.routed (disqualified)")
        assert routed.of(lead.subject)[3].data.reroute_reason == "disqualified"
        view = (await svc.get(f"/v1/leads/{lead.subject}/assignment")).json()
        assert view["status"] == "nurture"


async def _eventually(probe: Any, timeout: float = 30.0) -> Any:
    for _ in range(int(timeout / 0.05)):
        if found := probe():
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("condition never held")
