"""A replica remembers the forms it has served; a change made through another replica (or straight in
the database) still decides the very next submission, as if the form were read on every post."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from leadflow_contracts import topics
from leadflow_kit.app import app_deps

pytestmark = pytest.mark.integration


async def serve_once(capture, key: str) -> None:
    """Make ``capture`` remember the form."""
    response = await capture.client.post(f"/v1/forms/{key}/submissions",
                                         json={"email": f"warm-{uuid.uuid4().hex[:8]}@example.com"})
    assert response.status_code == 202, response.text


async def test_a_form_archived_elsewhere_is_410_at_once(capture, start_capture, admin_headers):
    form = await capture.create_form()
    await serve_once(capture, form["key"])
    async with start_capture() as other:
        archived = await other.client.delete(f"/v1/admin/forms/{form['key']}", headers=admin_headers)
        assert archived.status_code == 204
    response = await capture.client.post(f"/v1/forms/{form['key']}/submissions", json={"email": "late@example.com"})
    assert response.status_code == 410
    assert response.json()["errors"][0]["code"] == "form_archived"


async def test_a_mapping_changed_elsewhere_applies_to_the_next_fill(capture, start_capture, admin_headers):
    form = await capture.create_form()
    await serve_once(capture, form["key"])
    async with start_capture() as other:
        patched = await other.client.patch(f"/v1/admin/forms/{form['key']}", headers=admin_headers,
                                           json={"field_mapping": {"work_email": "email"}})
        assert patched.status_code == 200, patched.text
    response = await capture.client.post(f"/v1/forms/{form['key']}/submissions",
                                         json={"work_email": "mapped@example.com"})
    assert response.status_code == 202, response.text
    event = await capture.captured(response.json()["lead_id"])
    assert event.data.contact.email == "mapped@example.com"


async def test_a_honeypot_renamed_elsewhere_catches_the_next_bot(capture, start_capture, admin_headers):
    form = await capture.create_form()
    await serve_once(capture, form["key"])
    async with start_capture() as other:
        patched = await other.client.patch(f"/v1/admin/forms/{form['key']}", headers=admin_headers,
                                           json={"honeypot_field": "website"})
        assert patched.status_code == 200, patched.text
    response = await capture.client.post(f"/v1/forms/{form['key']}/submissions",
                                         json={"email": "bot@example.com", "website": "http://spam.example"})
    assert response.status_code == 202
    async with app_deps(capture.app).platform.db.transaction() as session:
        stored = (await session.execute(text("SELECT count(*) FROM lead WHERE email_normalized = 'bot@example.com' "
                                             "AND form_key = :k"), {"k": form["key"]})).scalar_one()
    assert stored == 0, "the renamed honeypot marks the fill as spam"


async def test_an_origin_removed_elsewhere_is_refused_even_for_a_bad_body(capture, start_capture, admin_headers):
    form = await capture.create_form(allowed_origins=["https://www.example.com"])
    url = f"/v1/forms/{form['key']}/submissions"
    await serve_once(capture, form["key"])
    async with start_capture() as other:
        patched = await other.client.patch(f"/v1/admin/forms/{form['key']}", headers=admin_headers,
                                           json={"allowed_origins": ["https://new.example.com"]})
        assert patched.status_code == 200, patched.text
    refused = await capture.client.post(url, json={"email": "a@example.com"},
                                        headers={"Origin": "https://www.example.com"})
    assert refused.status_code == 403
    allowed = await capture.client.post(url, content=b"{", headers={"Origin": "https://new.example.com",
                                                                     "Content-Type": "application/json"})
    assert allowed.status_code == 400
    assert allowed.headers["access-control-allow-origin"] == "https://new.example.com"


async def test_a_form_removed_from_the_database_is_404(capture):
    form = await capture.create_form()
    await serve_once(capture, form["key"])
    async with app_deps(capture.app).platform.db.transaction() as session:
        await session.execute(text("DELETE FROM lead WHERE form_key = :k"), {"k": form["key"]})
        await session.execute(text("DELETE FROM form WHERE key = :k"), {"k": form["key"]})
    response = await capture.client.post(f"/v1/forms/{form['key']}/submissions", json={"email": "x@example.com"})
    assert response.status_code == 404


async def test_an_activity_id_repeated_within_a_batch_is_one_event(capture):
    activity_id = f"client-{uuid.uuid4().hex}"
    repeated = {"type": "page_view", "visitor_id": "v-rep", "activity_id": activity_id}
    response = await capture.client.post("/v1/activities", json={"activities": [repeated, repeated]})
    assert response.status_code == 202, response.text
    assert response.json()["activity_ids"] == [activity_id, activity_id]
    marker = await capture.client.post("/v1/activities", json={"type": "page_view", "visitor_id": "v-rep"})
    marker_id = marker.json()["activity_id"]
    events = await capture.events(topics.ACTIVITY, lambda evs: marker_id in {e.id for e in evs})
    assert [e.id for e in events].count(activity_id) == 1
