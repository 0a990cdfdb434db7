"""`make demo`'s hand-off journey: one lead going cold -> nurture -> MQL -> rep, each step with its time.

A newsletter sign-up (not a demo request, so no hand-raiser fast track) of a modest-fit person scores
cold; with the seeded rules (MQLs to sales) routing holds it in nurture. Two activities posted through
capture (a demo request, a trial) lift it to an MQL, and routing hands it to a rep at that moment, with
sla's clock for its tier. Everything is read from sla's timeline (``GET /v1/leads/{id}/timeline``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from leadflow_stack.errors import StackError

HANDOFF_FORM = {"key": "newsletter", "name": "Newsletter sign-up"}
COLD_FILL = {
    "email": "dana.scully@xfiles-analytics.example", "first_name": "Dana", "last_name": "Scully",
    "company": "X-Files Analytics", "job_title": "Analyst", "country": "US", "employee_count": "20",
}
MQL_ACTIVITIES = ("demo_requested", "trial_started")


@dataclass(frozen=True)
class Step:
    stage: str
    at: datetime
    detail: str


@dataclass
class HandoffJourney:
    lead_id: str
    email: str
    steps: list[Step] = field(default_factory=list)
    clock: Mapping[str, Any] | None = None
    # Why the journey was not run (the active routing rules do not hand off at the MQL moment).
    skipped: str | None = None

    @property
    def handed_off(self) -> Step | None:
        """The step that gave the lead to a rep after it waited in nurture (a lead routed at its first
        fill is not a hand-off at the MQL moment)."""
        nurtured = False
        for step in self.steps:
            nurtured = nurtured or (step.stage == "routed" and step.detail.startswith("nurture"))
            if nurtured and step.stage == "routed" and step.detail.startswith("to rep"):
                return step
        return None


def describe(stage: Mapping[str, Any]) -> str | None:
    """One timeline stage as a step of the hand-off, or None for a stage the journey does not show."""
    details = stage.get("details") or {}
    name = stage.get("stage")
    if name == "captured":
        return f"form {details.get('form_key')}"
    if name == "scored":
        mql = "an MQL" if details.get("is_mql") else "not an MQL"
        return f"{details.get('tier')}, score {details.get('score')}, {mql} ({details.get('trigger')})"
    if name == "activity":
        return str(details.get("activity_type"))
    if name == "routed" and details.get("queue") == "nurture":
        return "nurture: no rep, no SLA clock"
    if name == "routed" and details.get("owner_rep_id"):
        return (f"to rep {details['owner_rep_id']} (team {details.get('team_id')}), "
                f"reason {details.get('reroute_reason') or 'first fill'}")
    return None


def steps_of(timeline: Mapping[str, Any]) -> list[Step]:
    steps = []
    for stage in timeline.get("stages") or ():
        detail = describe(stage)
        if detail is not None:
            steps.append(Step(str(stage["stage"]), datetime.fromisoformat(str(stage["at"]).replace("Z", "+00:00")),
                              detail))
    return steps


async def run_handoff_demo(
    capture_url: str, sla_url: str, routing_url: str, admin_api_key: str, *, timeout: float = 30.0
) -> HandoffJourney:
    """Post the cold lead, wait for nurture, post the activities, wait for the rep and the SLA clock.
    Skipped (and says why) when the active routing rules hand every lead off at its first fill."""
    headers = {"Authorization": f"Bearer {admin_api_key}"}
    async with httpx.AsyncClient(timeout=10.0) as client:
        rules = await client.get(f"{routing_url}/v1/admin/routing-rules", headers=headers)
        policy = rules.json().get("handoff") if rules.status_code == 200 else None
        if policy != "mql":
            version = rules.json().get("version") if rules.status_code == 200 else None
            return HandoffJourney(lead_id="", email="", skipped=(
                f"the active routing rules (version {version}) hand off at '{policy}', not at the MQL moment; "
                "publish a rule set with \"handoff\": \"mql\" (a fresh `make up` seeds one) to see it"))
        form = await client.post(f"{capture_url}/v1/admin/forms", headers=headers, json=HANDOFF_FORM)
        if form.status_code not in (201, 409):  # 409: an earlier run defined it
            raise StackError(f"capture answered {form.status_code} to defining the demo form: {form.text[:500]}")
        local, domain = COLD_FILL["email"].split("@", 1)
        fill = {**COLD_FILL, "email": f"{local}.{uuid.uuid4().hex[:6]}@{domain}"}
        response = await client.post(f"{capture_url}/v1/forms/{HANDOFF_FORM['key']}/submissions", json=fill)
        if response.status_code != 202:
            raise StackError(f"capture answered {response.status_code} to the hand-off fill: {response.text[:500]}")
        journey = HandoffJourney(lead_id=str(response.json()["lead_id"]), email=fill["email"])

        async def timeline() -> dict[str, Any]:
            found = await client.get(f"{sla_url}/v1/leads/{journey.lead_id}/timeline", headers=headers)
            body: dict[str, Any] = found.json() if found.status_code == 200 else {}
            journey.steps = steps_of(body)
            return body

        deadline = time.monotonic() + timeout
        await _until(lambda: _has_step(timeline, "routed"), deadline)
        for activity in MQL_ACTIVITIES:
            posted = await client.post(f"{capture_url}/v1/activities", headers=headers,
                                       json={"type": activity, "lead_id": journey.lead_id})
            if posted.status_code != 202:
                raise StackError(f"capture answered {posted.status_code} to activity {activity}: {posted.text[:500]}")

        async def clock_open() -> bool:
            current = ((await timeline()).get("sla") or {}).get("current")
            journey.clock = current if current and current.get("status") == "open" else None
            return journey.handed_off is not None and journey.clock is not None

        await _until(clock_open, deadline)
    return journey


async def _has_step(timeline: Callable[[], Awaitable[dict[str, Any]]], stage: str) -> bool:
    return any(s.get("stage") == stage for s in (await timeline()).get("stages") or ())


async def _until(check: Callable[[], Awaitable[bool]], deadline: float) -> None:
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
