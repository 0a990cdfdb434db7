"""`make demo`: post a few form fills to capture and follow each lead through sla's timeline (the hand-off
journey that follows is in ``handoff_demo``).

It relies only on the public surface: capture ``POST /v1/forms/{form_key}/submissions``
(JSON, ``202 {"lead_id": ...}``) and sla ``GET /v1/leads/{lead_id}/timeline``, whose body is
``{"stages": [{"stage": "captured", "at": "<ISO 8601>"}, ...]}``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from leadflow_stack.errors import StackError

DEMO_FORM_KEY = "demo"

SAMPLE_FORM_FILLS: tuple[dict[str, str], ...] = (
    {
        "email": "ada.lovelace@analytical-engines.example",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "company": "Analytical Engines Ltd",
        "job_title": "VP Engineering",
        "country": "GB",
        "industry": "Software",
        "employee_count": "500",
        "message": "We want a demo for our sales team.",
    },
    {
        "email": "grace.hopper@cobol-systems.example",
        "first_name": "Grace",
        "last_name": "Hopper",
        "company": "COBOL Systems",
        "job_title": "Chief Technology Officer",
        "country": "US",
        "industry": "Financial Services",
        "employee_count": "5000",
    },
    {
        "email": "alan@gmail.com",
        "first_name": "Alan",
        "last_name": "Turing",
        "job_title": "Student",
        "country": "GB",
        "message": "Just looking around.",
    },
    {
        "email": "katherine.johnson@orbital-mechanics.example",
        "first_name": "Katherine",
        "last_name": "Johnson",
        "company": "Orbital Mechanics Inc",
        "job_title": "Head of Marketing Operations",
        "country": "US",
        "industry": "Aerospace",
        "employee_count": "120",
        "phone": "+1 202 555 0143",
    },
    {
        "email": "edsger@shortest-path.example",
        "first_name": "Edsger",
        "last_name": "Dijkstra",
        "company": "Shortest Path BV",
        "job_title": "Sales Manager",
        "country": "NL",
        "industry": "Logistics",
        "employee_count": "40",
    },
)


@dataclass
class LeadJourney:
    lead_id: str
    email: str
    stages: list[tuple[str, datetime]] = field(default_factory=list)
    routed: bool = False

    def stage_at(self, name: str) -> datetime | None:
        return next((at for stage, at in self.stages if stage == name), None)

    @property
    def capture_to_routed_ms(self) -> float | None:
        captured, routed = self.stage_at("captured"), self.stage_at("routed")
        if captured is None or routed is None:
            return None
        return (routed - captured).total_seconds() * 1000


def parse_timeline(body: Any) -> list[tuple[str, datetime]]:
    if not isinstance(body, dict) or not isinstance(body.get("stages"), list):
        raise StackError(f"unexpected timeline body (wanted {{'stages': [...]}}): {str(body)[:300]}")
    stages = []
    for entry in body["stages"]:
        stages.append((str(entry["stage"]), datetime.fromisoformat(str(entry["at"]).replace("Z", "+00:00"))))
    return sorted(stages, key=lambda item: item[1])


async def run_demo(
    capture_url: str,
    sla_url: str,
    admin_api_key: str,
    *,
    form_key: str = DEMO_FORM_KEY,
    timeout: float = 30.0,
) -> list[LeadJourney]:
    """Submit the sample form fills, then poll each lead's timeline until it shows ``routed``."""
    headers = {"Authorization": f"Bearer {admin_api_key}"}
    journeys: list[LeadJourney] = []
    # New people on every run: the same emails again would be merged into the earlier run's leads
    # (and, within capture's double-submit window, answered with the earlier lead ids).
    run_tag = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(timeout=10.0) as client:
        for sample in SAMPLE_FORM_FILLS:
            local, domain = sample["email"].split("@", 1)
            fill = {**sample, "email": f"{local}.{run_tag}@{domain}"}
            response = await client.post(f"{capture_url}/v1/forms/{form_key}/submissions", json=fill)
            if response.status_code != 202:
                raise StackError(f"capture answered {response.status_code} to a demo submission: {response.text[:500]}")
            journeys.append(LeadJourney(lead_id=str(response.json()["lead_id"]), email=fill["email"]))

        deadline = time.monotonic() + timeout
        pending = list(journeys)
        while pending and time.monotonic() < deadline:
            for journey in list(pending):
                response = await client.get(f"{sla_url}/v1/leads/{journey.lead_id}/timeline", headers=headers)
                if response.status_code == 404:
                    continue  # sla has not heard of the lead yet
                response.raise_for_status()
                journey.stages = parse_timeline(response.json())
                if journey.stage_at("routed") is not None:
                    journey.routed = True
                    pending.remove(journey)
            if pending:
                await asyncio.sleep(0.05)
    return journeys
