"""The minimal path: a scored lead is assigned round-robin, lead.routed goes out, the subscribed
CRM receives a verifiable signed webhook, lead.delivered follows; the CRM callback emits lead.touched."""

from __future__ import annotations

from typing import Any

import pytest
from routing_harness import ADMIN, Env, collecting, produce, receiver, running, scored

from leadflow_contracts import topics
from leadflow_kit.db import Database
from leadflow_routing.seed import DEMO_REPS, seed_demo

pytestmark = pytest.mark.integration


async def test_scored_leads_are_routed_round_robin_and_delivered_signed(env: Env) -> None:
    settings = env.settings(demo_webhook_url=None)
    async with receiver(settings.demo_webhook_secret.get_secret_value()) as crm:
        seeded = env.settings(demo_webhook_url=crm.url)
        db = Database(seeded.database_url)
        await seed_demo(seeded, db)
        await seed_demo(seeded, db)  # idempotent
        await db.dispose()
        async with (
            collecting(env.infra.bootstrap_servers, env.topic(topics.ROUTED)) as routed,
            collecting(env.infra.bootstrap_servers, env.topic(topics.DELIVERED)) as delivered,
            running(settings) as svc,
        ):
            leads = [scored() for _ in range(6)]
            # One at a time, so the rotation order is the arrival order.
            for lead in leads:
                await produce(env.infra.bootstrap_servers, env.prefix, [lead])
                await routed.wait(lambda lead=lead: bool(routed.of(lead.subject)), what="lead.routed")
            owners = [routed.of(lead.subject)[0].data.owner.rep_id for lead in leads]
            reps = [rep_id for rep_id, _ in DEMO_REPS]
            assert owners == reps + reps
            first = routed.of(leads[0].subject)[0]
            assert first.correlation_id == leads[0].correlation_id
            assert first.lead_captured_at == leads[0].lead_captured_at

            await delivered.wait(lambda: len(delivered.events) >= 6, what="six lead.delivered")
            assert crm.rejected == 0
            assert crm.accepted_lead_ids() == {lead.subject for lead in leads}
            body = next(a["payload"] for a in crm.accepted() if a["payload"]["data"]["lead_id"] == leads[0].subject)
            assert body["type"] == "lead.routed"
            assert body["data"]["owner"]["rep_id"] == "rep-ada"
            assert body["data"]["score"]["explanation"][0]["rule_id"] == "title"
            assert body["data"]["routing"]["rule_id"] == "everyone-to-sales"
            assert {e.data.status for e in delivered.events} == {"delivered"}

            response = await svc.get(f"/v1/leads/{leads[1].subject}/assignment")
            assert response.status_code == 200, response.text
            view: dict[str, Any] = response.json()
            assert view["owner"]["rep_id"] == "rep-grace"
            audit = view["history"][0]["audit"]
            assert audit["strategy"] == "round_robin"
            assert audit["strategy_state"] == {"before": {"last_rep_id": "rep-ada"}, "after": {"last_rep_id":
                                                                                               "rep-grace"}}
            assert (await svc.get("/v1/leads/nope/assignment")).status_code == 404
            assert (await svc.client.get(f"/v1/leads/{leads[1].subject}/assignment")).status_code == 401


async def test_crm_callback_emits_lead_touched_and_flags_another_owner(env: Env) -> None:
    settings = env.settings()
    async with (
        collecting(env.infra.bootstrap_servers, env.topic(topics.ROUTED)) as routed,
        collecting(env.infra.bootstrap_servers, env.topic(topics.TOUCHED)) as touched,
        running(settings) as svc,
    ):
        db = Database(settings.database_url)
        await seed_demo(settings, db)
        await db.dispose()
        lead = scored()
        await produce(env.infra.bootstrap_servers, env.prefix, [lead])
        await routed.wait(lambda: bool(routed.of(lead.subject)), what="lead.routed")
        owner = routed.of(lead.subject)[0].data.owner.rep_id
        other = next(r for r, _ in DEMO_REPS if r != owner)

        ok = await svc.client.post(f"/v1/leads/{lead.subject}/events", headers=ADMIN,
                                   json={"type": "contacted", "rep_id": owner})
        assert ok.status_code == 202, ok.text
        assert ok.json()["owner_mismatch"] is False
        flagged = await svc.client.post(f"/v1/leads/{lead.subject}/events", headers=ADMIN,
                                        json={"type": "meeting_booked", "rep_id": other})
        assert flagged.status_code == 202 and flagged.json()["owner_mismatch"] is True
        missing_reason = await svc.client.post(f"/v1/leads/{lead.subject}/events", headers=ADMIN,
                                               json={"type": "disqualified"})
        assert missing_reason.status_code == 422
        unknown = await svc.client.post("/v1/leads/no-such-lead/events", headers=ADMIN, json={"type": "contacted"})
        assert unknown.status_code == 404
        anonymous = await svc.client.post(f"/v1/leads/{lead.subject}/events", json={"type": "contacted"})
        assert anonymous.status_code == 401

        await touched.wait(lambda: len(touched.of(lead.subject)) == 2, what="two lead.touched")
        events = touched.of(lead.subject)
        assert [e.data.touch_type for e in events] == ["contacted", "meeting_booked"]
        assert [e.data.owner_mismatch for e in events] == [False, True]
        assert events[0].correlation_id == lead.correlation_id


async def test_a_repeat_fill_of_a_routed_lead_tells_the_crm_an_update_and_keeps_its_owner(env: Env) -> None:
    settings = env.settings(demo_webhook_url=None)
    async with receiver(settings.demo_webhook_secret.get_secret_value()) as crm:
        seeded = env.settings(demo_webhook_url=crm.url)
        db = Database(seeded.database_url)
        await seed_demo(seeded, db)
        await db.dispose()
        async with (
            collecting(env.infra.bootstrap_servers, env.topic(topics.ROUTED)) as routed,
            running(settings),
        ):
            lead = scored()
            await produce(env.infra.bootstrap_servers, env.prefix, [lead])
            await routed.wait(lambda: bool(routed.of(lead.subject)), what="lead.routed")
            # The same person fills the form again: enrichment merges it into the same lead.
            again = scored(lead.subject, duplicate_of=lead.subject, tier="hot", score=80.0)
            await produce(env.infra.bootstrap_servers, env.prefix, [again])
            await routed.wait(lambda: len(routed.of(lead.subject)) == 2, what="the repeat fill's lead.routed")
            first, second = routed.of(lead.subject)
            assert second.data.kept_owner and second.data.owner.rep_id == first.data.owner.rep_id

            def types() -> list[str]:
                return [a["payload"]["type"] for a in crm.accepted() if a["payload"]["data"]["lead_id"] == lead.subject]

            await routed.wait(lambda: len(types()) == 2, what="two webhooks")
            assert types() == ["lead.routed", "lead.updated"]
            update = [a["payload"] for a in crm.accepted()][-1]
            assert update["data"]["owner"]["rep_id"] == first.data.owner.rep_id
            assert update["data"]["score"]["tier"] == "hot" and update["data"]["routing"]["outcome"] == "kept_owner"
