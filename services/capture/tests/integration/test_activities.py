"""POST /v1/activities: single and batch events become lead.activity.v1, keyed lead > visitor > person id."""

from __future__ import annotations

import uuid

import pytest

from leadflow_contracts import LeadActivity, topics

pytestmark = pytest.mark.integration


async def activity_events(capture, ids: set[str]):
    events = await capture.events(topics.ACTIVITY, lambda evs: ids <= {e.id for e in evs})
    return {e.id: e for e in events if e.id in ids}


async def test_single_activity_by_visitor_id(capture):
    response = await capture.client.post("/v1/activities", json={
        "type": "pricing_page_view", "visitor_id": "v-123", "page_url": "https://www.example.com/pricing",
        "occurred_at": "2026-11-23T09:30:00Z", "properties": {"plan": "enterprise"},
    })
    assert response.status_code == 202, response.text
    activity_id = response.json()["activity_id"]
    event = (await activity_events(capture, {activity_id}))[activity_id]
    assert event.type == "lead.activity.v1"
    assert event.subject == "v-123"
    data = event.data
    assert isinstance(data, LeadActivity)
    assert data.activity_type == "pricing_page_view"
    assert data.page_url == "https://www.example.com/pricing"
    assert data.properties == {"plan": "enterprise"}
    assert data.occurred_at.isoformat() == "2026-11-23T09:30:00+00:00"


async def test_batch_keys_by_lead_then_visitor_then_an_opaque_person_id(capture):
    batch = {"activities": [
        {"type": "webinar_registered", "lead_id": "lead-1", "visitor_id": "v-1", "email": "a@example.com"},
        {"type": "content_download", "visitor_id": "v-2", "email": "b@example.com"},
        {"type": "email_click", "email": "C@Example.com"},
        {"type": "custom.trial_started", "lead_id": "lead-4"},
    ]}
    response = await capture.client.post("/v1/activities", json=batch)
    assert response.status_code == 202, response.text
    ids = response.json()["activity_ids"]
    assert len(ids) == 4
    events = await activity_events(capture, set(ids))
    assert [events[i].subject for i in ids[:2]] == ["lead-1", "v-2"] and events[ids[3]].subject == "lead-4"
    # Known only by email: the key and subject say nothing of the address; the data still carries
    # it, which is how scoring credits the activity to the lead.
    by_email = events[ids[2]]
    assert by_email.subject.startswith("person-") and "example" not in by_email.subject
    assert by_email.data.email == "c@example.com"
    assert events[ids[3]].data.activity_type == "custom.trial_started"


async def test_a_json_array_is_a_batch_too(capture):
    response = await capture.client.post("/v1/activities", json=[{"type": "page_view", "visitor_id": "v-9"}])
    assert response.status_code == 202
    assert len(response.json()["activity_ids"]) == 1


async def test_a_retried_activity_id_is_recorded_once(capture):
    activity_id = f"client-{uuid.uuid4().hex}"
    body = {"type": "demo_requested", "lead_id": "lead-7", "activity_id": activity_id}
    first = await capture.client.post("/v1/activities", json=body)
    again = await capture.client.post("/v1/activities", json=body)
    assert first.json() == again.json() == {"activity_id": activity_id}
    marker = await capture.client.post("/v1/activities", json={"type": "page_view", "lead_id": "lead-7"})
    marker_id = marker.json()["activity_id"]
    events = await capture.events(topics.ACTIVITY, lambda evs: marker_id in {e.id for e in evs})
    assert [e.id for e in events].count(activity_id) == 1


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"type": "page_view"}, 422, "body"),
    ({"type": "Page View!", "visitor_id": "v"}, 422, "type"),
    ({"type": "page_view", "email": "not-an-email"}, 422, "email"),
    ({"type": "page_view", "visitor_id": "v", "extra": 1}, 422, "extra"),
    ({"type": "page_view", "visitor_id": "v", "occurred_at": "yesterday"}, 422, "occurred_at"),
    ({"activities": []}, 422, "activities"),
    ({"activities": [{"type": "page_view", "visitor_id": "v"}] * 101}, 422, "activities"),
    ({"activities": [{"type": "page_view", "visitor_id": "v"}, {"type": "page_view"}]}, 422, "activities.1"),
    ({"type": "page_view", "visitor_id": "v\u0000"}, 422, "body"),
])
async def test_invalid_activities_get_field_errors(capture, body, status, field):
    response = await capture.client.post("/v1/activities", json=body)
    assert response.status_code == status, response.text
    assert any(e["field"] == field for e in response.json()["errors"]), response.json()


@pytest.mark.parametrize(("content", "headers", "status"), [
    (b"{", {"Content-Type": "application/json"}, 400),
    (b'{"type": "\xff"}', {"Content-Type": "application/json"}, 400),
    (b"type=page_view", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
    (b'{"type": "page_view", "visitor_id": "' + b"v" * 300_000 + b'"}', {"Content-Type": "application/json"}, 413),
])
async def test_unreadable_activity_bodies(capture, content, headers, status):
    response = await capture.client.post("/v1/activities", content=content, headers=headers)
    assert response.status_code == status
    assert response.json()["detail"]



async def test_the_largest_activity_allowed_fits_in_one_event(capture):
    properties = {f"p{i:02d}" + "n" * 97: "x" * 1000 for i in range(50)}
    response = await capture.client.post("/v1/activities", json={
        "type": "page_view", "visitor_id": "v" * 128, "page_url": "https://x.example/" + "p" * 1980,
        "properties": properties})
    assert response.status_code == 202, response.text
