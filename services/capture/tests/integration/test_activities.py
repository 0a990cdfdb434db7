"""POST /v1/activities: single and batch events become lead.activity.v1, keyed lead > visitor > person id.
Anonymous callers name only a visitor id; naming a lead id or an email takes an activities:write key."""

from __future__ import annotations

import uuid

import pytest
import pytest_asyncio

from leadflow_contracts import LeadActivity, topics
from leadflow_stack.testing import bearer

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def server_key(capture, admin_headers) -> dict[str, str]:
    """What the marketing-automation tool holds: a key with activities:write only."""
    created = await capture.client.post("/v1/admin/api-keys", headers=admin_headers,
                                        json={"name": "marketing-automation", "scopes": ["activities:write"]})
    assert created.status_code == 201, created.text
    return bearer(created.json()["key"])


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


async def test_batch_keys_by_lead_then_visitor_then_an_opaque_person_id(capture, server_key):
    batch = {"activities": [
        {"type": "webinar_registered", "lead_id": "lead-1", "visitor_id": "v-1", "email": "a@example.com"},
        {"type": "content_download", "visitor_id": "v-2", "email": "b@example.com"},
        {"type": "email_click", "email": "C@Example.com"},
        {"type": "custom.trial_started", "lead_id": "lead-4"},
    ]}
    response = await capture.client.post("/v1/activities", json=batch, headers=server_key)
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


async def test_a_retried_activity_id_is_recorded_once(capture, server_key):
    activity_id = f"client-{uuid.uuid4().hex}"
    body = {"type": "demo_requested", "lead_id": "lead-7", "activity_id": activity_id}
    first = await capture.client.post("/v1/activities", json=body, headers=server_key)
    again = await capture.client.post("/v1/activities", json=body, headers=server_key)
    assert first.json() == again.json() == {"activity_id": activity_id}
    marker = await capture.client.post("/v1/activities", json={"type": "page_view", "lead_id": "lead-7"},
                                       headers=server_key)
    marker_id = marker.json()["activity_id"]
    events = await capture.events(topics.ACTIVITY, lambda evs: marker_id in {e.id for e in evs})
    assert [e.id for e in events].count(activity_id) == 1


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"type": "page_view"}, 422, "body"),
    ({"type": "Page View!", "visitor_id": "v"}, 422, "type"),
    ({"type": "demo_request", "visitor_id": "v"}, 422, "type"),  # not in the vocabulary: scoring could not credit it
    ({"type": "form_submission", "visitor_id": "v"}, 422, "type"),  # recorded by scoring itself
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


@pytest.mark.parametrize("body", [
    {"type": "demo_requested", "email": "known@example.com"},
    {"type": "pricing_page_view", "lead_id": "lead-known"},
    {"type": "page_view", "visitor_id": "v-x", "email": "known@example.com"},
    {"activities": [{"type": "page_view", "visitor_id": "v-ok"}, {"type": "demo_requested", "lead_id": "lead-known"}]},
])
async def test_anonymous_callers_cannot_name_a_known_lead(capture, body):
    response = await capture.client.post("/v1/activities", json=body,
                                         headers={"Origin": "https://www.example.com"})
    assert response.status_code == 401, response.text
    assert "activities:write" in response.json()["detail"]
    assert response.json()["errors"][0]["code"] == "api_key_required"
    # The browser can read why: the refusal carries the CORS headers.
    assert response.headers["access-control-allow-origin"] == "https://www.example.com"
    marker = (await capture.client.post("/v1/activities", json={"type": "page_view", "visitor_id": "v-mark"}))
    marker_id = marker.json()["activity_id"]
    events = await capture.events(topics.ACTIVITY, lambda evs: marker_id in {e.id for e in evs})
    assert not [e for e in events if e.subject in ("known@example.com", "lead-known", "v-ok", "v-x")]


async def test_a_key_without_activities_write_or_an_unknown_key_is_refused(capture, admin_headers):
    reader = await capture.client.post("/v1/admin/api-keys", headers=admin_headers,
                                       json={"name": "reader", "scopes": ["forms:read"]})
    body = {"type": "demo_requested", "email": "known@example.com"}
    denied = await capture.client.post("/v1/activities", json=body, headers=bearer(reader.json()["key"]))
    assert denied.status_code == 403 and "activities:write" in denied.json()["detail"]
    unknown = await capture.client.post("/v1/activities", json={"type": "page_view", "visitor_id": "v"},
                                        headers=bearer("lf_000000000000_not-a-key"))
    assert unknown.status_code == 401


async def test_each_lead_has_its_own_activity_rate(start_capture, admin_headers):
    async with start_capture(rate_limit_activity_lead_per_minute=60, rate_limit_activity_lead_burst=3) as capture:
        key = await capture.client.post("/v1/admin/api-keys", headers=admin_headers,
                                        json={"name": "mat", "scopes": ["activities:write"]})
        as_tool = bearer(key.json()["key"])
        lead = f"lead-{uuid.uuid4().hex[:8]}"
        codes = [(await capture.client.post("/v1/activities", json={"type": "demo_requested", "lead_id": lead},
                                            headers=as_tool)) for _ in range(4)]
        assert [r.status_code for r in codes] == [202, 202, 202, 429]
        assert codes[-1].headers["retry-after"] == "1"
        assert codes[-1].json()["errors"][0]["code"] == "rate_limited"
        other = await capture.client.post("/v1/activities", json={"type": "demo_requested", "lead_id": "other"},
                                          headers=as_tool)
        assert other.status_code == 202
        # The same person by email, in any case, and a batch that would push it past its budget.
        email = f"{uuid.uuid4().hex[:8]}@example.com"
        batch = {"activities": [{"type": "page_view", "email": email}, {"type": "page_view", "email": email.upper()},
                                {"type": "page_view", "email": email}, {"type": "page_view", "email": email}]}
        assert (await capture.client.post("/v1/activities", json=batch, headers=as_tool)).status_code == 429
        visitor = [(await capture.client.post("/v1/activities", json={"type": "page_view", "visitor_id": "v-busy"}))
                   .status_code for _ in range(4)]
        assert visitor == [202, 202, 202, 429]
