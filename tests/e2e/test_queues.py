"""Queues people work, across the pipeline: a lead reassigned to a queue, claimed from it by a rep and
reassigned again shows each move in routing's history, in the CRM's signed webhooks and on sla's
timeline, whose clock restarts for each new owner."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from e2e_support import ADMIN_KEY, Pipeline, eventually

pytestmark = pytest.mark.e2e
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def test_a_claimed_and_a_reassigned_lead_shows_in_history_the_crm_webhooks_and_the_timeline(
    pipeline: Pipeline,
) -> None:
    routing = pipeline.urls["routing"]
    lead_id = await pipeline.submit(email="ada.moves@example.com", first_name="Ada", company="Moves Ltd",
                                    job_title="Head of Ops", country="GB")
    first = await eventually(lambda: pipeline.assignment(lead_id))
    queue = await pipeline.client.post(f"{routing}/v1/admin/queues", headers=ADMIN,
                                       json={"id": "e2e-triage", "name": "E2E triage"})
    assert queue.status_code == 201, queue.text

    async def move(action: str, body: dict[str, str], headers: dict[str, str] = ADMIN) -> dict[str, Any]:
        response = await pipeline.client.post(f"{routing}/v1/leads/{lead_id}/{action}", json=body, headers=headers)
        assert response.status_code == 200, response.text
        moved: dict[str, Any] = response.json()
        return moved

    await move("reassign", {"queue": "e2e-triage", "reason": "Wrong territory, back for triage"})
    minted = await pipeline.client.post(f"{routing}/v1/admin/api-keys", headers=ADMIN,
                                        json={"name": "grace", "scopes": ["queues:work", "rep:rep-grace"]})
    grace = {"Authorization": f"Bearer {minted.json()['key']}"}
    waiting = await pipeline.client.get(f"{routing}/v1/queues/e2e-triage/leads", headers=grace)
    assert lead_id in [lead["lead_id"] for lead in waiting.json()["leads"]]

    async def listed_with_its_clock() -> dict[str, Any] | None:
        # sla opens the queued lead's clock; its lead.sla_started gives the listing the due time.
        listed = await pipeline.client.get(f"{routing}/v1/queues/e2e-triage/leads", headers=grace)
        mine = [lead for lead in listed.json()["leads"] if lead["lead_id"] == lead_id]
        return mine[0] if mine and mine[0]["sla"]["due_at"] else None

    queued = await eventually(listed_with_its_clock)
    queued_clock = (await pipeline.timeline(lead_id))["sla"]["clocks"][-1]
    assert queued["sla"]["state"] == "open" and queued_clock["owner_rep_id"] is None
    assert datetime.fromisoformat(queued["sla"]["due_at"]) == datetime.fromisoformat(queued_clock["due_at"])
    await move("claim", {"rep_id": "rep-grace"}, grace)
    await move("reassign", {"rep_id": "rep-linus", "reason": "Grace is on leave; Linus covers"})

    history = (await pipeline.assignment(lead_id) or {})["history"]
    assert [(h["outcome"], h["reroute_reason"]) for h in history[-3:]] == [
        ("reassigned", "reassigned"), ("claimed", "claimed"), ("reassigned", "reassigned")]

    async def crm_saw_every_move() -> list[dict[str, Any]] | None:
        routed = [d["payload"]["data"] for d in pipeline.receiver.deliveries
                  if d["payload"]["data"].get("lead_id") == lead_id and "routing" in d["payload"]["data"]]
        return routed if len(routed) >= 4 else None

    routed = await eventually(crm_saw_every_move)
    assert [(r["routing"]["reroute_reason"], (r["owner"] or {}).get("rep_id"), r["queue"]) for r in routed[-3:]] == [
        ("reassigned", None, "e2e-triage"), ("claimed", "rep-grace", None), ("reassigned", "rep-linus", None)]
    assert routed[-1]["routing"]["reason"] == "Grace is on leave; Linus covers"
    assert pipeline.receiver.rejected == 0

    async def timeline_saw_every_move() -> dict[str, Any] | None:
        timeline = await pipeline.timeline(lead_id)
        current = (timeline.get("sla") or {}).get("current") or {}
        return timeline if current.get("owner_rep_id") == "rep-linus" else None

    timeline = await eventually(timeline_saw_every_move)
    changes = [(c["from_rep_id"], c["to_rep_id"], c["queue"], c["reason"]) for c in timeline["owner_changes"]]
    assert changes[-3:] == [(first["owner"]["rep_id"], None, "e2e-triage", "reassigned"),
                            (None, "rep-grace", None, "claimed"), ("rep-grace", "rep-linus", None, "reassigned")]
    clocks = timeline["sla"]["clocks"]
    assert [c["owner_rep_id"] for c in clocks[-3:]] == [None, "rep-grace", "rep-linus"]
    assert [c["status"] for c in clocks[-3:]] == ["superseded", "superseded", "open"]
