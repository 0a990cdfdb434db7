"""One activity vocabulary: every type capture documents is one the default scoring model credits."""

from __future__ import annotations

from typing import Any

import pytest
from e2e_support import ADMIN_KEY, Pipeline, eventually

from leadflow_contracts.activities import ACTIVITY_TYPES, INTERNAL_ACTIVITY_TYPES

pytestmark = pytest.mark.e2e

DOCUMENTED = [t for t in ACTIVITY_TYPES if t not in INTERNAL_ACTIVITY_TYPES]


async def test_each_documented_activity_posted_to_capture_is_credited_by_scoring(pipeline: Pipeline) -> None:
    documented = (await pipeline.client.get(f"{pipeline.urls['capture']}/openapi.json")).json()
    described = documented["components"]["schemas"]["ActivityIn"]["properties"]["type"]["description"]
    assert all(t in described for t in DOCUMENTED)

    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    leads: dict[str, str] = {}
    for activity_type in DOCUMENTED:
        leads[activity_type] = await pipeline.submit(email=f"vocab-{activity_type}@vocab-example.com",
                                                     first_name="Vocab", company="Vocab Example")

    async def score_of(lead_id: str) -> dict[str, Any] | None:
        response = await pipeline.client.get(f"{pipeline.urls['scoring']}/v1/leads/{lead_id}/score", headers=admin)
        return response.json() if response.status_code == 200 else None

    for lead_id in leads.values():
        await eventually(lambda lead_id=lead_id: score_of(lead_id))
    for activity_type, lead_id in leads.items():
        path = "careers" if activity_type == "careers_page_view" else "product"
        page = f"https://www.example.com/{path}"
        response = await pipeline.client.post(f"{pipeline.urls['capture']}/v1/activities", headers=admin, json={
            "type": activity_type, "lead_id": lead_id, "page_url": page})
        assert response.status_code == 202, response.text

    for activity_type, lead_id in leads.items():
        async def credited(activity_type: str = activity_type, lead_id: str = lead_id) -> bool:
            score = await score_of(lead_id)
            reasons = [line["reason"] for line in (score or {}).get("breakdown", [])]
            return any(f"x {activity_type}" in reason for reason in reasons)

        assert await eventually(credited), activity_type
