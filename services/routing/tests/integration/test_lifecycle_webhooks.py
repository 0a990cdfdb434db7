"""The CRM subscribes at routing to a lead's whole lifecycle: every type is delivered to a local receiver
that verifies it with ``standardwebhooks``; lead.routed carries the whole record; filters (tier, team,
form) keep a filtered-out lead's webhooks away; an unknown type is refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from routing_harness import PLACEHOLDER, Env, Receiver, deliveries, produce, receiver, running, scored

from leadflow_contracts import (
    Attribution,
    Consent,
    Event,
    LeadCaptured,
    LeadContact,
    LeadProfile,
    LeadSla,
    LeadSlaStarted,
    new_event,
)
from leadflow_stack.testing import eventually

pytestmark = pytest.mark.integration

LIFECYCLE = ["lead.captured", "lead.mql", "lead.stage_changed", "lead.routed", "lead.touched", "lead.sla.started",
             "lead.sla.warning", "lead.sla.breach"]
CONSENT_AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


async def subscribe_to(svc: Any, crm: Receiver, event_types: list[str], filters: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"url": crm.url, "event_types": event_types}
    if filters is not None:
        body["filters"] = filters
    response = await svc.post("/v1/admin/webhooks/subscriptions", json=body)
    assert response.status_code == 201, response.text
    crm.secret = response.json()["secret"]
    subscription_id: str = response.json()["id"]
    return subscription_id


def received(crm: Receiver, lead_id: str, event_type: str) -> list[dict[str, Any]]:
    return [a["payload"] for a in crm.accepted()
            if a["payload"]["type"] == event_type and a["payload"]["data"]["lead_id"] == lead_id]


def captured(lead_id: str) -> Event[LeadCaptured]:
    data = LeadCaptured(lead_id=lead_id, form_key="demo", submitted_at=datetime.now(UTC),
                        contact=LeadContact(email=f"{lead_id}@acme.com", first_name="Ada", last_name="Lovelace",
                                            company="Acme", message="Call me"),
                        custom_fields={"seats": "40"}, attribution=Attribution(utm_source="google"),
                        consent=Consent(given=True, text_version="2026-01", text="I agree.", given_at=CONSENT_AT))
    return new_event(data, source="capture", subject=lead_id)


def sla(lead_id: str, kind: str, owner: str | None) -> Event[LeadSla]:
    now = datetime.now(UTC)
    data = LeadSla(lead_id=lead_id, clock_id="clk-1", kind=kind, tier="hot", owner_rep_id=owner,  # type: ignore[arg-type]
                   team_id="sales", started_at=now, due_at=now + timedelta(hours=1), breach_count=1)
    return new_event(data, source="sla", subject=lead_id)


def sla_started(lead_id: str, owner: str | None) -> Event[LeadSlaStarted]:
    now = datetime.now(UTC)
    data = LeadSlaStarted(lead_id=lead_id, clock_id="clk-1", tier="hot", owner_rep_id=owner, team_id="sales",
                          started_at=now, due_at=now + timedelta(hours=1), target_seconds=3600)
    return new_event(data, source="sla", subject=lead_id)


async def test_every_lifecycle_webhook_is_delivered_signed_and_routed_carries_the_whole_record(fresh: Env) -> None:
    lead_id = f"lead-{uuid.uuid4().hex[:12]}"
    async with receiver(PLACEHOLDER) as crm, running(fresh.settings()) as svc:
        await subscribe_to(svc, crm, LIFECYCLE)
        servers, prefix = fresh.infra.bootstrap_servers, fresh.prefix
        await produce(servers, prefix, [captured(lead_id)])
        first = scored(lead_id, tier="hot", score=80)
        first = first.model_copy(update={"data": first.data.model_copy(update={
            "previous_stage": "lead", "custom_fields": {"seats": "40"}, "message": "Call me",
            "consent": Consent(given=True, text_version="2026-01", text="I agree.", given_at=CONSENT_AT),
            "profile": LeadProfile(email=f"{lead_id}@acme.com", first_name="Ada", last_name="Lovelace",
                                   company="Acme", country="US"),
            "attribution": Attribution(utm_source="google", utm_campaign="q4")})})
        await produce(servers, prefix, [first])

        async def routed() -> bool:
            return bool(received(crm, lead_id, "lead.routed"))

        await eventually(routed)
        owner = received(crm, lead_id, "lead.routed")[0]["data"]["owner"]["rep_id"]
        # Still an MQL, now accepted by sales: a stage change, not a second lead.mql.
        again = scored(lead_id, tier="hot", score=85, trigger="activity")
        again = again.model_copy(update={"data": again.data.model_copy(update={
            "lifecycle_stage": "sal", "previous_stage": "mql"})})
        await produce(servers, prefix, [again, sla_started(lead_id, owner), sla(lead_id, "warning", owner),
                                        sla(lead_id, "breach", owner)])
        touched = await svc.post(f"/v1/leads/{lead_id}/events", json={"type": "contacted", "rep_id": owner})
        assert touched.status_code == 202, touched.text

        async def every_type() -> bool:
            return (all(received(crm, lead_id, t) for t in LIFECYCLE)
                    and len(received(crm, lead_id, "lead.stage_changed")) == 2)

        await eventually(every_type, timeout=60)

        assert crm.rejected == 0  # every one verified with the standardwebhooks library
        assert len(received(crm, lead_id, "lead.mql")) == 1
        stages = [(p["data"]["previous_stage"], p["data"]["lifecycle_stage"])
                  for p in received(crm, lead_id, "lead.stage_changed")]
        assert sorted(stages) == [("lead", "mql"), ("mql", "sal")]
        capture = received(crm, lead_id, "lead.captured")[0]["data"]
        assert capture["contact"]["first_name"] == "Ada" and capture["consent"]["text"] == "I agree."
        started = received(crm, lead_id, "lead.sla.started")[0]["data"]
        assert started["due_at"] and started["target_seconds"] == 3600 and started["owner_rep_id"] == owner
        assert received(crm, lead_id, "lead.sla.breach")[0]["data"]["due_at"]
        assert received(crm, lead_id, "lead.touched")[0]["data"]["touch_type"] == "contacted"

        record = received(crm, lead_id, "lead.routed")[0]["data"]
        lead = record["lead"]
        assert {k: lead["profile"][k] for k in ("email", "first_name", "last_name", "company")} == {
            "email": f"{lead_id}@acme.com", "first_name": "Ada", "last_name": "Lovelace", "company": "Acme"}
        assert lead["consent"]["text_version"] == "2026-01" and lead["consent"]["text"] == "I agree."
        assert datetime.fromisoformat(lead["consent"]["given_at"]) == CONSENT_AT
        assert "ip" not in lead["consent"]
        assert lead["attribution"]["utm_campaign"] == "q4"
        assert lead["custom_fields"] == {"seats": "40"} and lead["message"] == "Call me"
        assert record["score"]["score"] == 80 and record["score"]["explanation"][0]["reason"] == "VP title"
        assert record["owner"]["rep_id"] == owner and record["owner"]["team_id"] == "sales"


async def test_filters_keep_a_filtered_out_lead_away(fresh: Env) -> None:
    warm_demo, hot_pricing, hot_demo = (scored(tier="warm", score=60, form="demo"),
                                        scored(tier="hot", score=90, form="pricing"),
                                        scored(tier="hot", score=90, form="demo"))
    async with (
        receiver(PLACEHOLDER) as everyone, receiver(PLACEHOLDER) as hot_only, receiver(PLACEHOLDER) as pricing,
        running(fresh.settings()) as svc,
    ):
        await subscribe_to(svc, everyone, ["lead.routed"])
        hot_id = await subscribe_to(svc, hot_only, ["lead.routed", "lead.mql"], {"tiers": ["hot"]})
        pricing_id = await subscribe_to(svc, pricing, ["lead.*"], {"teams": ["sales"], "forms": ["pricing"]})
        shown = (await svc.get(f"/v1/admin/webhooks/subscriptions/{pricing_id}")).json()
        assert shown["filters"] == {"tiers": None, "teams": ["sales"], "forms": ["pricing"]}
        await produce(fresh.infra.bootstrap_servers, fresh.prefix, [warm_demo, hot_pricing, hot_demo])

        async def all_routed() -> bool:
            return everyone.accepted_lead_ids() == {warm_demo.subject, hot_pricing.subject, hot_demo.subject}

        await eventually(all_routed)

        async def filtered_delivered() -> bool:
            return (hot_only.accepted_lead_ids() == {hot_pricing.subject, hot_demo.subject}
                    and len(hot_only.accepted()) == 4 and pricing.accepted_lead_ids() == {hot_pricing.subject})

        await eventually(filtered_delivered)
        # Queued in routing's transaction, so nothing more can come: the filtered-out leads have no row.
        assert await deliveries(svc, subscription_id=hot_id, lead_id=warm_demo.subject) == []
        assert await deliveries(svc, subscription_id=pricing_id, lead_id=hot_demo.subject) == []
        assert {p["payload"]["type"] for p in pricing.accepted()} >= {"lead.routed", "lead.mql"}
        assert hot_only.rejected == pricing.rejected == everyone.rejected == 0

        cleared = await svc.patch(f"/v1/admin/webhooks/subscriptions/{hot_id}", json={"filters": {}})
        assert cleared.status_code == 200 and cleared.json()["filters"] == {"tiers": None, "teams": None,
                                                                            "forms": None}


async def test_an_unknown_event_type_is_refused_naming_the_field(fresh: Env) -> None:
    async with receiver(PLACEHOLDER) as crm, running(fresh.settings()) as svc:
        refused = await svc.post("/v1/admin/webhooks/subscriptions",
                                 json={"url": crm.url, "event_types": ["lead.routed", "lead.sold"]})
        assert refused.status_code == 422, refused.text
        errors = refused.json()["errors"]
        assert errors[0]["field"] == "event_types" and "lead.sold" in errors[0]["message"]
        pattern = await svc.post("/v1/admin/webhooks/subscriptions",
                                 json={"url": crm.url, "event_types": ["lead.sla.*"]})
        assert pattern.status_code == 201, pattern.text
        patched = await svc.patch(f"/v1/admin/webhooks/subscriptions/{pattern.json()['id']}",
                                  json={"event_types": ["order.*"]})
        assert patched.status_code == 422 and patched.json()["errors"][0]["field"] == "event_types"
        bad_filter = await svc.post("/v1/admin/webhooks/subscriptions",
                                    json={"url": crm.url, "event_types": ["lead.routed"],
                                          "filters": {"tiers": []}})
        assert bad_filter.status_code == 422
