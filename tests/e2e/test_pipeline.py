"""A form fill travels capture → enrichment → scoring → routing → CRM webhook, watched by sla."""

from __future__ import annotations

from typing import Any

import pytest
from e2e_support import ADMIN_KEY, Pipeline, eventually

from leadflow_contracts.activities import ACTIVITY_TYPES, INTERNAL_ACTIVITY_TYPES

pytestmark = pytest.mark.e2e


async def test_a_form_post_reaches_the_signed_webhook_and_the_timeline(pipeline: Pipeline) -> None:
    lead_id = await pipeline.submit(
        email="Grace.Hopper@Acme.com", first_name="Grace", last_name="Hopper", company="Acme Inc",
        job_title="VP Engineering", country="US", utm_source="google", utm_campaign="spring",
    )

    async def delivered() -> bool:
        return lead_id in pipeline.receiver.lead_ids()

    await eventually(delivered)
    assert pipeline.receiver.rejected == 0

    async def routed_and_delivered_in_timeline() -> list[str] | None:
        stages = await pipeline.stages(lead_id)
        return stages if {"captured", "enriched", "scored", "routed", "webhook_delivered"} <= set(stages) else None

    stages = await eventually(routed_and_delivered_in_timeline)
    assert stages.index("captured") < stages.index("enriched") < stages.index("scored") < stages.index("routed")

    assignment = await pipeline.assignment(lead_id)
    assert assignment is not None
    assert assignment["owner"]["rep_id"] in {"rep-ada", "rep-grace", "rep-linus"} or assignment.get("queue")


async def test_the_crm_reporting_contact_closes_the_sla_clock(pipeline: Pipeline) -> None:
    lead_id = await pipeline.submit(email="linus@example.org", first_name="Linus", company="Example")

    async def routed() -> dict[str, Any] | None:
        return await pipeline.assignment(lead_id)

    assignment = await eventually(routed)
    response = await pipeline.client.post(
        f"{pipeline.urls['routing']}/v1/leads/{lead_id}/events",
        json={"type": "contacted", "rep_id": assignment["owner"]["rep_id"]},
        headers={"Authorization": "Bearer dev-admin-key"},
    )
    assert response.status_code in (200, 201, 202), response.text

    async def touched() -> dict[str, Any] | None:
        timeline = await pipeline.timeline(lead_id)
        stages = [s["stage"] for s in timeline.get("stages", [])]
        return timeline if "touched" in stages else None

    timeline = await eventually(touched)
    assert timeline["sla"]["state"] in {"stopped", "met", "closed", "touched"}


# One activity vocabulary: every type capture documents is one the default scoring model credits.
DOCUMENTED = [t for t in ACTIVITY_TYPES if t not in INTERNAL_ACTIVITY_TYPES]


async def test_each_documented_activity_posted_to_capture_is_credited_by_scoring(pipeline: Pipeline) -> None:
    documented = (await pipeline.client.get(f"{pipeline.urls['capture']}/openapi.json")).json()
    described = documented["components"]["schemas"]["ActivityIn"]["properties"]["type"]["description"]
    assert all(t in described for t in DOCUMENTED)

    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    leads: dict[str, str] = {}
    for activity_type in DOCUMENTED:
        leads[activity_type] = await pipeline.submit(email=f"vocab-{activity_type}@vocab-example.com",
                                                     first_name="Vocab", company="Vocab Example")

    async def score_of(lead_id: str) -> dict[str, Any] | None:
        response = await pipeline.client.get(f"{pipeline.urls['scoring']}/v1/leads/{lead_id}/score", headers=admin)
        return response.json() if response.status_code == 200 else None

    for lead_id in leads.values():
        await eventually(lambda lead_id=lead_id: score_of(lead_id))
    for activity_type, lead_id in leads.items():
        path = "careers" if activity_type == "careers_page_view" else "product"
        page = f"https://www.example.com/{path}"
        response = await pipeline.client.post(f"{pipeline.urls['capture']}/v1/activities", headers=admin, json={
            "type": activity_type, "lead_id": lead_id, "page_url": page})
        assert response.status_code == 202, response.text

    for activity_type, lead_id in leads.items():
        async def credited(activity_type: str = activity_type, lead_id: str = lead_id) -> bool:
            score = await score_of(lead_id)
            reasons = [line["reason"] for line in (score or {}).get("current", {}).get("breakdown", [])]
            return any(f"x {activity_type}" in reason for reason in reasons)

        assert await eventually(credited), activity_type


async def test_the_routed_webhook_carries_consent_custom_fields_and_message_from_the_form(
    pipeline: Pipeline,
) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    form = await pipeline.client.post(f"{pipeline.urls['capture']}/v1/admin/forms", headers=admin, json={
        "key": "e2e-consent", "name": "Consent form", "required_fields": ["email"], "allowed_origins": ["*"],
        "consent_required": True, "consent_text": "I agree to be contacted.", "consent_version": "2026-12"})
    assert form.status_code == 201, form.text
    response = await pipeline.client.post(f"{pipeline.urls['capture']}/v1/forms/e2e-consent/submissions", json={
        "email": "ada@analytical-engines.com", "first_name": "Ada", "last_name": "Lovelace",
        "company": "Analytical Engines", "message": "Please call after 3pm", "seats": "40", "consent": "yes",
        "utm_source": "newsletter"})
    assert response.status_code == 202, response.text
    lead_id = response.json()["lead_id"]

    async def routed() -> dict[str, Any] | None:
        return next((d["payload"]["data"] for d in pipeline.receiver.deliveries
                     if d["payload"]["type"] == "lead.routed" and d["payload"]["data"]["lead_id"] == lead_id), None)

    record = (await eventually(routed))["lead"]
    assert record["profile"]["first_name"] == "Ada" and record["profile"]["company"] == "Analytical Engines"
    assert record["consent"]["text_version"] == "2026-12"
    assert record["consent"]["text"] == "I agree to be contacted." and record["consent"]["given_at"]
    assert record["custom_fields"] == {"seats": "40"} and record["message"] == "Please call after 3pm"
    assert record["attribution"]["utm_source"] == "newsletter"
