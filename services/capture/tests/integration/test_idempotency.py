"""Idempotency-Key replays and double-submit detection: a retried or repeated fill is one lead."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from leadflow_contracts import topics
from leadflow_kit.app import app_deps

pytestmark = pytest.mark.integration


async def leads_of(capture, form_key: str) -> int:
    async with app_deps(capture.app).platform.db.transaction() as session:
        return int((await session.execute(text("SELECT count(*) FROM lead WHERE form_key = :k"),
                                          {"k": form_key})).scalar_one())


async def test_idempotency_key_replays_the_original_response(capture):
    form = await capture.create_form()
    url = f"/v1/forms/{form['key']}/submissions"
    key = str(uuid.uuid4())
    first = await capture.client.post(url, json={"email": "once@example.com"}, headers={"Idempotency-Key": key})
    again = await capture.client.post(url, json={"email": "once@example.com"}, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotency-replayed"] == "true"
    assert "idempotency-replayed" not in first.headers
    assert await leads_of(capture, form["key"]) == 1


async def test_idempotency_key_replays_a_browser_redirect(capture):
    form = await capture.create_form(success_url="https://www.example.com/thanks")
    url = f"/v1/forms/{form['key']}/submissions"
    headers = {"Idempotency-Key": "browser-1", "Content-Type": "application/x-www-form-urlencoded"}
    first = await capture.client.post(url, content="email=b%40example.com", headers=headers)
    again = await capture.client.post(url, content="email=b%40example.com", headers=headers)
    assert first.status_code == again.status_code == 303
    assert again.headers["location"] == first.headers["location"]


async def test_same_key_with_another_body_is_refused(capture):
    form = await capture.create_form()
    url = f"/v1/forms/{form['key']}/submissions"
    await capture.client.post(url, json={"email": "a@example.com"}, headers={"Idempotency-Key": "k-1"})
    other = await capture.client.post(url, json={"email": "b@example.com"}, headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 422
    assert other.json()["errors"][0]["code"] == "idempotency_key_reused"


async def test_a_rejected_request_does_not_burn_its_key(capture):
    form = await capture.create_form()
    url = f"/v1/forms/{form['key']}/submissions"
    bad = await capture.client.post(url, json={"email": "nope"}, headers={"Idempotency-Key": "k-2"})
    assert bad.status_code == 422
    good = await capture.client.post(url, json={"email": "fixed@example.com"}, headers={"Idempotency-Key": "k-2"})
    assert good.status_code == 202


async def test_concurrent_retries_with_one_key_make_one_lead(capture):
    form = await capture.create_form()
    url = f"/v1/forms/{form['key']}/submissions"
    responses = await asyncio.gather(*[
        capture.client.post(url, json={"email": "race@example.com"}, headers={"Idempotency-Key": "race"})
        for _ in range(8)
    ])
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["lead_id"] for r in responses}) == 1
    assert await leads_of(capture, form["key"]) == 1


async def test_double_submit_of_the_same_email_returns_the_first_lead(capture):
    form = await capture.create_form()
    url = f"/v1/forms/{form['key']}/submissions"
    first = await capture.client.post(url, json={"email": "Twice@Example.com", "first_name": "A"})
    second = await capture.client.post(url, json={"email": "twice@example.com ", "first_name": "B"})
    assert second.status_code == 202
    assert second.json()["lead_id"] == first.json()["lead_id"]
    assert await leads_of(capture, form["key"]) == 1
    other = await capture.client.post(url, json={"email": "someone-else@example.com"})
    assert other.json()["lead_id"] != first.json()["lead_id"]
    lead_id = first.json()["lead_id"]
    events = await capture.events(topics.CAPTURED, lambda evs: any(e.subject == other.json()["lead_id"] for e in evs))
    assert [e.subject for e in events].count(lead_id) == 1


async def test_concurrent_double_submits_make_one_lead(capture):
    form = await capture.create_form()
    url = f"/v1/forms/{form['key']}/submissions"
    responses = await asyncio.gather(*[capture.client.post(url, json={"email": "rush@example.com"}) for _ in range(8)])
    assert len({r.json()["lead_id"] for r in responses}) == 1
    assert await leads_of(capture, form["key"]) == 1


async def test_double_submit_window_is_configurable(start_capture):
    async with start_capture(double_submit_window_seconds=0) as capture:
        form = await capture.create_form()
        url = f"/v1/forms/{form['key']}/submissions"
        first = await capture.client.post(url, json={"email": "again@example.com"})
        second = await capture.client.post(url, json={"email": "again@example.com"})
        assert first.json()["lead_id"] != second.json()["lead_id"]
