"""Outages: a lead posted while Kafka is down is accepted at once and published once Kafka is back;
with the database unreachable capture answers 503 + Retry-After, never a 500."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from leadflow_contracts import topics
from leadflow_kit.app import app_deps
from leadflow_stack.procs import free_port
from leadflow_stack.testing import app_client

pytestmark = pytest.mark.integration


async def test_lead_posted_while_kafka_is_down_is_published_when_it_is_back(capture, infra):
    form = await capture.create_form()
    url = f"/v1/forms/{form['key']}/submissions"
    await infra.stop_kafka()
    try:
        started = time.monotonic()
        response = await capture.client.post(url, json={"email": "offline@example.com", "utm_source": "outage"})
        assert response.status_code == 202
        assert time.monotonic() - started < 5, "accepting a lead must not wait on the broker"
        lead_id = response.json()["lead_id"]
        async with app_deps(capture.app).platform.db.transaction() as session:
            pending = (await session.execute(
                text("SELECT count(*) FROM outbox WHERE key = :k AND published_at IS NULL"), {"k": lead_id}
            )).scalar_one()
        assert pending == 1
        ready = await capture.client.get("/readyz")
        assert ready.status_code == 200, "capture stays ready without Kafka: the outbox holds leads"
    finally:
        await infra.start_kafka()
    event = await capture.captured(lead_id, timeout=90)
    assert event.data.attribution.utm_source == "outage"
    events = await capture.events(topics.CAPTURED, lambda evs: any(e.subject == lead_id for e in evs))
    # Published at least once, as one event: should the broker come back while the direct send still waits
    # on it, past the relay's backstop age, both may deliver it, and consumers' inboxes skip the repeat.
    assert {e.id for e in events if e.subject == lead_id} == {event.id}


async def test_an_unreachable_database_is_a_503_to_retry_never_a_500(capture_env):
    from leadflow_capture.app import create_app
    from leadflow_capture.settings import Settings

    closed_port = free_port()
    settings = Settings(database_url=f"postgresql+asyncpg://leadflow:leadflow@127.0.0.1:{closed_port}/nowhere",
                        kafka_bootstrap_servers=capture_env.bootstrap_servers, environment="test")
    app = create_app(settings)
    async with app_client(app, "http://c") as client:
        response = await client.post("/v1/forms/demo/submissions", json={"email": "a@example.com"})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json()["errors"][0]["code"] == "storage_unavailable"
        activity = await client.post("/v1/activities", json={"type": "page_view", "visitor_id": "v"})
        assert activity.status_code == 503
