"""A form fill travels capture → enrichment → scoring → routing → CRM webhook, watched by sla."""

from __future__ import annotations

import pytest
from e2e_support import Pipeline, eventually

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

    async def routed() -> dict | None:
        return await pipeline.assignment(lead_id)

    assignment = await eventually(routed)
    response = await pipeline.client.post(
        f"{pipeline.urls['routing']}/v1/leads/{lead_id}/events",
        json={"type": "contacted", "rep_id": assignment["owner"]["rep_id"]},
        headers={"Authorization": "Bearer dev-admin-key"},
    )
    assert response.status_code in (200, 201, 202), response.text

    async def touched() -> dict | None:
        timeline = await pipeline.timeline(lead_id)
        stages = [s["stage"] for s in timeline.get("stages", [])]
        return timeline if "touched" in stages else None

    timeline = await eventually(touched)
    assert timeline["sla"]["state"] in {"stopped", "met", "closed", "touched"}
