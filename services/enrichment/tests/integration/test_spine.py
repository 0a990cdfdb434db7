"""A captured fill comes out as lead.enriched, through the real broker and database."""

from __future__ import annotations

import pytest

from leadflow_contracts import LeadEnriched

ADMIN = {"Authorization": "Bearer test-admin-key-0123456789"}

pytestmark = pytest.mark.integration


async def test_captured_fill_is_published_enriched_with_normalized_email_and_company_domain(enrichment):
    lead_id = await enrichment.capture(email="  Ada.Lovelace@Example-Engines.CO.UK ", first_name="ada",
                                       last_name="lovelace", company="Example Engines Ltd.")
    event = await enrichment.enriched(lead_id)
    data = event.data
    assert isinstance(data, LeadEnriched)
    assert event.type == "lead.enriched.v1"
    assert event.source == "enrichment"
    assert event.subject == lead_id
    assert data.lead_id == data.captured_lead_id == lead_id
    assert data.duplicate_of is None
    assert data.profile.email == "ada.lovelace@example-engines.co.uk"
    assert data.profile.email_type == "corporate"
    assert data.profile.company_domain == "example-engines.co.uk"
    assert data.profile.company == "Example Engines"
    assert data.original.email == "  Ada.Lovelace@Example-Engines.CO.UK "
    assert event.lead_captured_at is not None


async def test_demo_account_matches_by_email_domain_with_its_owner(enrichment):
    lead_id = await enrichment.capture(email="grace@acme.com", job_title="CTO")
    data = (await enrichment.enriched(lead_id)).data
    assert data.account is not None
    assert (data.account.account_id, data.account.method, data.account.confidence) == ("acct-acme", "domain", 1.0)
    assert data.account.owner_rep_id == "rep-ada"
    assert data.profile.industry == "Software"
    assert data.profile.employee_count == 1200
    assert (data.profile.seniority, data.profile.function) == ("c_level", "engineering")


async def test_lead_read_shows_original_and_normalized(enrichment):
    lead_id = await enrichment.capture(email="LINUS@initech.de", phone="030 901820", country="Germany")
    await enrichment.enriched(lead_id)
    response = await enrichment.client.get(f"/v1/leads/{lead_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["original"]["email"] == "LINUS@initech.de"
    assert body["profile"]["email"] == "linus@initech.de"
    assert body["profile"]["phone_e164"] == "+4930901820"
    assert body["profile"]["country"] == "DE"
    assert body["account"]["account_id"] == "acct-initech"
    assert "missing_name" in body["quality"]["reasons"]
    unauthenticated = await enrichment.client.get(f"/v1/leads/{lead_id}")
    assert unauthenticated.status_code == 401


async def test_lead_read_needs_the_leads_read_scope_and_an_existing_lead(enrichment):
    client = enrichment.client
    assert (await client.get("/v1/leads/no-such-lead", headers=ADMIN)).status_code == 404
    key = (await client.post("/v1/admin/api-keys", headers=ADMIN,
                             json={"name": "accounts-only", "scopes": ["accounts:read"]})).json()["key"]
    response = await client.get("/v1/leads/no-such-lead", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 403


async def test_quality_scores_are_counted_in_metrics(enrichment):
    lead_id = await enrichment.capture(email="temp@mailinator.com")
    data = (await enrichment.enriched(lead_id)).data
    assert data.profile.email_type == "disposable"
    assert "disposable_email" in data.quality.reasons
    metrics = (await enrichment.client.get("/metrics")).text
    count = next(line for line in metrics.splitlines()
                 if line.startswith("leadflow_enrichment_quality_score_count"))
    assert float(count.rsplit(" ", 1)[1]) >= 1
    assert 'leadflow_events_consumed_total{outcome="processed",service="enrichment"' in metrics
