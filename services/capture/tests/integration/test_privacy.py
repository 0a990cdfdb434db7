"""Capture's own part in an erasure: the request is recorded and announced, capture's consumer erases its
rows and answers, and capture records that answer against the request."""

from __future__ import annotations

import uuid

import pytest

from leadflow_stack.testing import eventually

pytestmark = pytest.mark.integration


async def test_capture_erases_a_person_it_holds_and_records_its_own_answer(capture, admin_headers):
    form = await capture.create_form()
    email = f"erase-{uuid.uuid4().hex[:8]}@example.com"
    posted = await capture.client.post(f"/v1/forms/{form['key']}/submissions", json={"email": email})
    assert posted.status_code == 202, posted.text
    lead_id = posted.json()["lead_id"]

    requested = await capture.client.delete("/v1/admin/privacy/people", params={"email": email.upper()},
                                            headers=admin_headers)
    assert requested.status_code == 202, requested.text
    erasure = requested.json()
    assert (erasure["status"], erasure["lead_ids"]) == ("pending", [lead_id])
    again = await capture.client.delete("/v1/admin/privacy/people", params={"lead_id": lead_id},
                                        headers=admin_headers)
    assert again.json()["erasure_id"] == erasure["erasure_id"], "an open request for the person is returned"

    async def capture_answered() -> dict[str, object] | None:
        found = await capture.client.get(f"/v1/admin/privacy/erasures/{erasure['erasure_id']}", headers=admin_headers)
        assert found.status_code == 200, found.text
        mine: dict[str, object] = found.json()["services"]["capture"]
        return mine if mine["status"] == "completed" else None

    answer = await eventually(capture_answered, timeout=60, interval=0.2)
    assert answer["rows_erased"] == 1
    # Capture holds nothing of the person now, but the other services have not answered: asked again by
    # lead id, the open request is still the one returned (not a second one).
    after = await capture.client.delete("/v1/admin/privacy/people", params={"lead_id": lead_id},
                                        headers=admin_headers)
    assert after.status_code == 202, after.text
    assert (after.json()["erasure_id"], after.json()["status"]) == (erasure["erasure_id"], "pending")
    export = await capture.client.get("/v1/admin/privacy/export", params={"lead_id": lead_id}, headers=admin_headers)
    assert export.status_code == 200, export.text
    assert all(rows == [] for rows in export.json()["tables"].values())
