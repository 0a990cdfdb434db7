"""The CRM callback's opportunity amount: validated field by field, carried on lead.touched as sent."""

from __future__ import annotations

from decimal import Decimal

import pytest
from routing_harness import ADMIN, Env, collecting, produce, running, scored

from leadflow_contracts import topics
from leadflow_kit.db import Database
from leadflow_routing.seed import seed_demo

pytestmark = pytest.mark.integration


async def test_deal_callbacks_carry_amount_and_currency_and_bad_ones_name_the_field(env: Env) -> None:
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
        url = f"/v1/leads/{lead.subject}/events"

        refused = {
            "amount": {"type": "opportunity_created", "amount": "-1", "currency": "EUR"},
            "currency": {"type": "opportunity_created", "amount": "10", "currency": "EURO"},
        }
        for field, body in refused.items():
            answer = await svc.client.post(url, headers=ADMIN, json=body)
            assert answer.status_code == 422, answer.text
            assert [e["field"] for e in answer.json()["errors"]] == [field]
        for body, field in (({"type": "contacted", "amount": "10", "currency": "EUR"}, "amount"),
                            ({"type": "converted", "amount": "10"}, "currency"),
                            ({"type": "converted", "amount": "12.5", "currency": "XXQ"}, "currency"),
                            ({"type": "converted", "amount": "not money", "currency": "EUR"}, "amount")):
            answer = await svc.client.post(url, headers=ADMIN, json=body)
            assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == field, answer.text

        for body in ({"type": "opportunity_created", "amount": "10000.50", "currency": "EUR"},
                     {"type": "closed_lost", "amount": 9500, "currency": "EUR"}):
            accepted = await svc.client.post(url, headers=ADMIN, json=body)
            assert accepted.status_code == 202, accepted.text

        await touched.wait(lambda: len(touched.of(lead.subject)) == 2, what="two lead.touched")
        events = touched.of(lead.subject)
        assert [(e.data.touch_type, e.data.amount, e.data.currency) for e in events] == [
            ("opportunity_created", Decimal("10000.50"), "EUR"), ("closed_lost", Decimal("9500"), "EUR")]
        assignment = (await svc.get(f"/v1/leads/{lead.subject}/assignment")).json()
        assert assignment["status"] == "closed"
