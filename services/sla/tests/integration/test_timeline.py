"""A lead's events from every service, produced to real Kafka, become its timeline and move its clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from leadflow_contracts import (
    DataQuality,
    LeadCaptured,
    LeadContact,
    LeadDelivered,
    LeadEnriched,
    LeadProfile,
    LeadRouted,
    LeadScored,
    LeadTouched,
    RoutedOwner,
)


async def test_journey_becomes_timeline_and_touch_closes_the_clock(sla_env: Any, apps: Any) -> None:
    _, client = await apps.start()
    lead_id = sla_env.new_lead_id()
    t0 = datetime.now(UTC).replace(microsecond=0)
    ms = timedelta(milliseconds=1)
    ev = sla_env.lead_event
    journey = [
        ev(LeadCaptured(lead_id=lead_id, form_key="demo", submitted_at=t0, contact=LeadContact(email="a@b.example")),
           lead_id, t0, t0, "capture"),
        ev(LeadEnriched(lead_id=lead_id, captured_lead_id=lead_id, form_key="demo", profile=LeadProfile(),
                        original=LeadContact(), quality=DataQuality(score=80)), lead_id, t0 + 12 * ms, t0,
           "enrichment"),
        ev(LeadScored(lead_id=lead_id, score=88, fit_grade="A", engagement_level=2, tier="hot", is_mql=True,
                      model_version="v1", lifecycle_stage="mql"), lead_id, t0 + 20 * ms, t0, "scoring"),
        ev(LeadRouted(lead_id=lead_id, assignment_id="as-1", reason="round robin", tier="hot",
                      owner=RoutedOwner(rep_id="rep-ada", team_id="team-emea")), lead_id, t0 + 31 * ms, t0,
           "routing"),
        ev(LeadDelivered(lead_id=lead_id, webhook_id="wh-1", subscription_id="sub-crm",
                         event_type_delivered="lead.routed.v1", status="delivered", attempt=1, status_code=200,
                         at=t0 + 90 * ms), lead_id, t0 + 91 * ms, t0, "routing"),
        ev(LeadTouched(lead_id=lead_id, touch_id="t-1", touch_type="contacted", occurred_at=t0 + timedelta(seconds=95),
                       rep_id="rep-ada"), lead_id, t0 + timedelta(seconds=95), t0, "routing"),
    ]
    for event in journey[:-1]:
        await sla_env.send(event)

    async def routed() -> Any:
        response = await client.get(f"/v1/leads/{lead_id}/timeline")
        return response.status_code == 200 and response.json()["sla"]["state"] == "open"

    # The CRM reports contact after the rep got the lead; topics are not ordered with each other.
    await sla_env.eventually(routed)
    await sla_env.send(journey[-1])

    async def touched() -> Any:
        response = await client.get(f"/v1/leads/{lead_id}/timeline")
        if response.status_code != 200:
            return None
        body = response.json()
        names = [s["stage"] for s in body["stages"]]
        return body if "touched" in names and body["sla"]["state"] == "stopped" else None

    body = await sla_env.eventually(touched)
    assert body["lead_id"] == lead_id
    assert [s["stage"] for s in body["stages"]] == [
        "captured", "enriched", "scored", "routed", "webhook_delivered", "touched",
    ]
    by_stage = {s["stage"]: s for s in body["stages"]}
    assert by_stage["captured"]["since_capture_ms"] == 0
    assert by_stage["routed"]["since_capture_ms"] == 31
    assert by_stage["routed"]["since_previous_ms"] == 11
    assert by_stage["routed"]["source"] == "routing"
    assert by_stage["routed"]["details"]["owner_rep_id"] == "rep-ada"
    assert by_stage["webhook_delivered"]["since_capture_ms"] == 90
    clock = body["sla"]["current"]
    assert clock["tier"] == "hot" and clock["target_seconds"] == 300
    assert clock["stop_reason"] == "contacted" and clock["met"] is True
    assert body["owner_changes"][0]["to_rep_id"] == "rep-ada"
    assert body["webhooks"][0]["status"] == "delivered"
    assert body["funnel"]["speed_to_lead_seconds"] == 95

    metrics = (await client.get("/metrics")).text
    sample = sla_env.sample
    assert sample(metrics, "leadflow_pipeline_stage_seconds_count", stage="routed") == 1
    assert sample(metrics, "leadflow_pipeline_stage_seconds_count", stage="webhook_delivered") == 1
    assert sample(metrics, "leadflow_speed_to_lead_seconds_bucket", tier="hot", team="team-emea", le="300.0") == 1
    assert sample(metrics, "leadflow_speed_to_lead_seconds_bucket", tier="hot", team="team-emea", le="60.0") == 0
    assert sample(metrics, "leadflow_leads_captured_total", form="demo") == 1


async def test_timeline_needs_a_key_and_an_unknown_lead_is_404(sla_env: Any, apps: Any) -> None:
    _, client = await apps.start(wait_assigned=False)
    assert (await client.get("/v1/leads/nobody/timeline")).status_code == 404
    anonymous = await client.get("/v1/leads/nobody/timeline", headers={"Authorization": ""})
    assert anonymous.status_code == 401
