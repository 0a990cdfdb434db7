"""Warnings and breaches reach people: signed webhooks to a local receiver, as Slack-style messages."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest_asyncio
import uvicorn
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from leadflow_contracts import LeadRouted, RoutedOwner
from leadflow_kit.app import app_deps
from leadflow_kit.clock import FrozenClock


class Receiver:
    """A real HTTP endpoint on a free port that keeps what it was sent, per path."""

    def __init__(self) -> None:
        self.received: dict[str, list[tuple[dict[str, str], bytes]]] = {}
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()

        async def hook(request: Request) -> Response:
            self.received.setdefault(request.url.path, []).append((dict(request.headers), await request.body()))
            return Response("ok")

        app = Starlette(routes=[Route("/{channel}", hook, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))

    def url(self, channel: str) -> str:
        return f"http://127.0.0.1:{self.port}/{channel}"


@pytest_asyncio.fixture(loop_scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    task = asyncio.create_task(found.server.serve())
    for _ in range(500):
        if found.server.started:
            break
        await asyncio.sleep(0.01)
    assert found.server.started, "the webhook receiver did not start"
    try:
        yield found
    finally:
        found.server.should_exit = True
        await task


async def test_owner_and_manager_channels_get_signed_sla_messages(
    sla_env: Any, apps: Any, receiver: Receiver
) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0)
    clock = FrozenClock(t0)
    app, client = await apps.start(clock, scheduler_interval_seconds=3600, webhook_poll_interval_seconds=0.05)
    owners = await client.post("/v1/admin/webhooks/subscriptions",
                               json={"url": receiver.url("owners"), "event_types": ["lead.sla.*"]})
    managers = await client.post("/v1/admin/webhooks/subscriptions",
                                 json={"url": receiver.url("managers"), "event_types": ["lead.sla.breach"]})
    assert owners.status_code == 201 and managers.status_code == 201, owners.text
    secrets = {"/owners": owners.json()["secret"], "/managers": managers.json()["secret"]}

    lead_id = sla_env.new_lead_id()
    data = LeadRouted(lead_id=lead_id, assignment_id="as-n", reason="test", tier="hot",
                      owner=RoutedOwner(rep_id="rep-ada", team_id="team-emea"))
    await sla_env.send(sla_env.lead_event(data, lead_id, t0, t0, "routing"))

    async def clock_open() -> Any:
        return await sla_env.fetch("SELECT id FROM sla_clock WHERE lead_id = $1", lead_id)

    await sla_env.eventually(clock_open)
    clock.set(t0 + timedelta(seconds=240))
    await app_deps(app).scheduler.fire_due()
    clock.set(t0 + timedelta(seconds=300))
    await app_deps(app).scheduler.fire_due()

    async def delivered() -> Any:
        got = receiver.received
        return got if len(got.get("/owners", [])) == 2 and len(got.get("/managers", [])) == 1 else None

    got = await sla_env.eventually(delivered)
    bodies: dict[str, list[dict[str, Any]]] = {}
    for path, requests in got.items():
        for headers, body in requests:
            # Raises unless webhook-id / webhook-timestamp / webhook-signature match the subscription's secret.
            Webhook(secrets[path]).verify(body, headers)
            bodies.setdefault(path, []).append(json.loads(body))
    assert sorted(b["type"] for b in bodies["/owners"]) == ["lead.sla.breach", "lead.sla.warning"]
    breach = bodies["/managers"][0]
    assert breach["type"] == "lead.sla.breach"
    assert breach["data"]["lead_id"] == lead_id and breach["data"]["owner_rep_id"] == "rep-ada"
    assert breach["data"]["audience"] == ["owner", "manager"]
    assert breach["text"].startswith(f"SLA breach: hot lead {lead_id} owned by rep-ada (team team-emea)")
    assert "within 5 min" in breach["text"]

    # Each delivery's outcome comes back as lead.delivered and shows on the lead's timeline.
    async def on_timeline() -> Any:
        body = (await client.get(f"/v1/leads/{lead_id}/timeline")).json()
        return body if len(body["webhooks"]) == 3 else None

    body = await sla_env.eventually(on_timeline)
    assert {w["event_type"] for w in body["webhooks"]} == {"lead.sla.warning", "lead.sla.breach"}
    assert all(w["status"] == "delivered" for w in body["webhooks"])
    log = await client.get("/v1/admin/webhooks/deliveries", params={"lead_id": lead_id})
    assert log.status_code == 200 and len(log.json()) == 3
    metrics = (await client.get("/metrics")).text
    # SLA notifications are not the pipeline's CRM webhook: no stage latency for them.
    assert sla_env.sample(metrics, "leadflow_pipeline_stage_seconds_count", stage="webhook_delivered") is None
