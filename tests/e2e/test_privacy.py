"""A person is exported from, then erased from, all five services running as separate processes."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from e2e_support import ADMIN_KEY, SERVICES, Pipeline, dead_letter_counts, eventually, records_on

from leadflow_contracts import topics

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
EMAIL = "Ada.Privacy@Example-Erasure.com"
PHONE = "+1 415 555 0199"
PHONE_FORMS = ("415 555 0199", "4155550199")  # as typed, and as enrichment's E.164 number holds it


async def personal_data_left(infra: Any) -> list[str]:
    """Every text, character and JSON column of every service database that still holds the email or phone."""
    found = []
    for name in SERVICES:
        conn = await asyncpg.connect(infra.asyncpg_dsn(infra.stack.services.config(name).database_url))
        try:
            columns = await conn.fetch(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
                "AND (data_type IN ('text', 'character varying', 'character', 'json', 'jsonb') "
                "OR udt_name IN ('_text', '_varchar'))")
            for column in columns:
                needles = [EMAIL.lower(), *PHONE_FORMS]
                hits = await conn.fetchval(
                    f'SELECT count(*) FROM "{column["table_name"]}" '
                    f'WHERE lower("{column["column_name"]}"::text) LIKE ANY ($1::text[])',
                    [f"%{needle}%" for needle in needles])
                if hits:
                    found.append(f"{name}.{column['table_name']}.{column['column_name']}: {hits} rows")
        finally:
            await conn.close()
    return found


async def test_a_person_is_exported_then_erased_everywhere_and_can_start_afresh(pipeline: Pipeline) -> None:
    capture = pipeline.urls["capture"]
    lead_id = await pipeline.submit(email=EMAIL, first_name="Ada", last_name="Privacy", phone=PHONE,
                                    company="Example Erasure", job_title="VP Sales", country="US")
    activity = await pipeline.client.post(f"{capture}/v1/activities",
                                          json={"type": "pricing_page_view", "email": EMAIL.upper()}, headers=AUTH)
    assert activity.status_code == 202, activity.text

    async def handed_off() -> bool:
        return lead_id in pipeline.receiver.lead_ids() and "webhook_delivered" in await pipeline.stages(lead_id)

    await eventually(handed_off)

    async def exported() -> dict[str, Any] | None:
        answer = await pipeline.client.get(f"{capture}/v1/admin/privacy/people/export", params={"email": EMAIL},
                                           headers=AUTH)
        assert answer.status_code == 200, answer.text
        document: dict[str, Any] = answer.json()
        # The activity reaches scoring on its own partition; wait until it is credited too.
        return document if document["services"]["scoring"]["tables"]["activity"] else None

    document = await eventually(exported)
    assert set(document["services"]) == set(SERVICES)
    assert document["lead_ids"] == [lead_id]
    tables = {name: part["tables"] for name, part in document["services"].items()}
    assert tables["capture"]["lead"][0]["contact"]["phone"] == PHONE
    assert tables["enrichment"]["lead"][0]["email"] == EMAIL.lower()
    assert tables["scoring"]["lead_score"] and tables["routing"]["assignment"]
    assert tables["routing"]["webhook_delivery"] and tables["sla"]["lead_event"]
    assert await personal_data_left(pipeline.infra)  # the scan below sees what is there

    # By lead id: capture finds the person's email, and with it every fill and activity.
    erase = await pipeline.client.delete(f"{capture}/v1/admin/privacy/people", params={"lead_id": lead_id},
                                         headers=AUTH)
    assert erase.status_code == 202, erase.text
    erasure_id = erase.json()["erasure_id"]
    # Asked again while it runs, the same request answers (once done, a new one would erase nothing more).
    again = await pipeline.client.delete(f"{capture}/v1/admin/privacy/people", params={"email": EMAIL.upper()},
                                         headers=AUTH)
    assert again.status_code == 202, again.text
    requests = {erasure_id, again.json()["erasure_id"]}

    async def completed() -> dict[str, Any] | None:
        answers = [(await pipeline.client.get(f"{capture}/v1/admin/privacy/erasures/{i}", headers=AUTH)).json()
                   for i in sorted(requests)]
        done = all(answer["status"] == "completed" for answer in answers)
        return next(answer for answer in answers if answer["erasure_id"] == erasure_id) if done else None

    status = await eventually(completed)
    if len(requests) == 2:
        assert status["completed_at"] <= again.json()["requested_at"]  # a second request only after the first
    assert {name for name, answer in status["services"].items() if answer["status"] == "completed"} == set(SERVICES)
    assert all(answer["rows_erased"] > 0 for answer in status["services"].values())

    assert await personal_data_left(pipeline.infra) == []
    # Each service ended the lead's key on the topics it publishes with a tombstone, and no consumer
    # took one for a malformed event.
    for topic in (topics.CAPTURED, topics.ENRICHED, topics.SCORED, topics.ROUTED, topics.SLA):
        ends = [event for key, event in await records_on(pipeline, topic) if key == lead_id]
        assert ends and ends[-1] is None, topic
    assert set((await dead_letter_counts(pipeline)).values()) == {0}
    empty = await pipeline.client.get(f"{capture}/v1/admin/privacy/people/export", params={"email": EMAIL},
                                      headers=AUTH)
    assert all(not rows for part in empty.json()["services"].values() for rows in part["tables"].values())

    # The same person fills a form again: a fresh lead, routed on its own.
    fresh_id = await pipeline.submit(email=EMAIL, first_name="Ada", company="Example Erasure", country="US")
    assert fresh_id != lead_id

    async def fresh_lead_routed() -> bool:
        return fresh_id in pipeline.receiver.lead_ids()

    await eventually(fresh_lead_routed)
    fresh = await pipeline.client.get(f"{capture}/v1/admin/privacy/people/export", params={"email": EMAIL},
                                      headers=AUTH)
    assert fresh.json()["services"]["enrichment"]["lead_ids"] == [fresh_id]
