"""The same person filling forms again stays one lead; a redelivered event has its effect once."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from leadflow_enrichment.tables import lead, lead_fill
from leadflow_kit.db import Database

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": "Bearer test-admin-key-0123456789"}


async def test_second_fill_with_the_same_email_merges_into_the_first_lead(enrichment):
    first = await enrichment.capture(email="Katherine.Johnson@Globex.com", first_name="Katherine",
                                     job_title="Director of Engineering", form_key="demo",
                                     custom_fields={"heard_from": "podcast", "plan": "team"})
    first_event = await enrichment.enriched(first)
    assert first_event.data.duplicate_of is None
    second = await enrichment.capture(email="katherine.johnson@globex.COM", first_name="Kathy",
                                      phone="+1 757 864 1000", country="US", form_key="webinar",
                                      custom_fields={"plan": "enterprise", "webinar": "q4"})
    event = await enrichment.enriched(second)
    data = event.data
    assert data.lead_id == first
    assert data.captured_lead_id == second
    assert data.duplicate_of == first
    assert event.subject == first, "keyed by the canonical lead so its events stay ordered"
    assert data.form_key == "webinar"
    # What the person said first stays; the blanks are filled from the newer fill.
    assert data.profile.first_name == "Katherine"
    assert data.profile.seniority == "director"
    assert data.profile.phone_e164 == "+17578641000"
    assert data.profile.country == "US"
    assert data.account is not None
    assert data.account.owner_rep_id == "rep-grace"
    assert "missing_phone" in first_event.data.quality.reasons
    assert "missing_phone" not in data.quality.reasons
    assert data.quality.score > first_event.data.quality.score

    read = await enrichment.client.get(f"/v1/leads/{second}", headers=ADMIN)
    assert read.status_code == 200
    body = read.json()
    assert body["lead_id"] == first
    assert body["fill_count"] == 2
    assert [(f["captured_lead_id"], f["duplicate"]) for f in body["fills"]] == [(first, False), (second, True)]
    assert body["fills"][1]["original"]["first_name"] == "Kathy"
    # Anyone may post a fill with a known email: it adds what was missing and overwrites nothing.
    assert data.custom_fields == {"heard_from": "podcast", "plan": "team", "webinar": "q4"}
    db = Database(enrichment.settings.database_url, pool_size=1)
    try:
        async with db.transaction() as session:
            kept = (await session.execute(select(lead.c.custom_fields).where(lead.c.id == first))).scalar_one()
    finally:
        await db.dispose()
    assert kept == {"heard_from": "podcast", "plan": "team", "webinar": "q4"}


async def test_fills_of_one_person_arriving_together_make_one_lead(enrichment):
    fills = await asyncio.gather(*(
        enrichment.capture(email="dorothy@initech.de", job_title=title)
        for title in ("Engineer", "Analyst", "Manager", "Intern")
    ))
    events = [await enrichment.enriched(f) for f in fills]
    canonical = {e.data.lead_id for e in events}
    assert len(canonical) == 1
    assert sum(e.data.duplicate_of is None for e in events) == 1
    db = Database(enrichment.settings.database_url, pool_size=1)
    try:
        async with db.transaction() as session:
            leads = (await session.execute(select(func.count()).select_from(lead)
                                           .where(lead.c.email == "dorothy@initech.de"))).scalar_one()
            linked = (await session.execute(select(func.count()).select_from(lead_fill)
                                            .where(lead_fill.c.lead_id == canonical.pop()))).scalar_one()
    finally:
        await db.dispose()
    assert (leads, linked) == (1, 4)


async def test_fills_without_a_valid_email_are_never_merged(enrichment):
    one = await enrichment.capture(email="not-an-email", first_name="Anon")
    two = await enrichment.capture(email="not-an-email", first_name="Anon")
    a, b = (await enrichment.enriched(one)).data, (await enrichment.enriched(two)).data
    assert (a.lead_id, b.lead_id) == (one, two)
    assert a.profile.email_type == "invalid"
    assert "invalid_email" in a.quality.reasons


async def test_an_event_delivered_twice_is_enriched_once(enrichment):
    from aiokafka import AIOKafkaConsumer

    lead_id = await enrichment.capture(email="margaret@acme.com")
    await enrichment.enriched(lead_id)
    # Replay the very same record (same event id) as a broker redelivery would.
    consumer = AIOKafkaConsumer(f"{enrichment.settings.topic_prefix}leads.captured",
                                bootstrap_servers=enrichment.settings.kafka_bootstrap_servers,
                                group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = None
        while record is None:
            batches = await consumer.getmany(timeout_ms=500)
            record = next((r for rs in batches.values() for r in rs if r.key == lead_id.encode()), None)
    finally:
        await consumer.stop()
    await enrichment.producer.send_and_wait(record.topic, value=record.value, key=record.key,
                                            headers=list(record.headers))
    # Same key, same partition: once the marker is out, the replay before it has been handled.
    marker = await enrichment.capture(email="marker@acme.com", key=lead_id)
    found = await enrichment.read(lambda evs: any(e.data.captured_lead_id == marker for e in evs))
    assert sum(e.data.captured_lead_id == lead_id for e in found) == 1


async def test_a_fill_published_again_under_a_new_event_id_is_enriched_once(enrichment):
    lead_id = await enrichment.capture(email="frances@acme.com")
    await enrichment.enriched(lead_id)
    await enrichment.capture(lead_id=lead_id, email="frances@acme.com")
    marker = await enrichment.capture(email="marker2@acme.com", key=lead_id)
    found = await enrichment.read(lambda evs: any(e.data.captured_lead_id == marker for e in evs))
    assert sum(e.data.captured_lead_id == lead_id for e in found) == 1
