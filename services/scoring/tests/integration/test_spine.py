"""The minimal path: lead.enriched in, lead.scored out, the enrichment carried forward."""

from __future__ import annotations

import pytest

from leadflow_contracts import AccountMatch, Attribution, LeadEnriched, LeadScored, follow_up

from .conftest import Harness, enriched, good_fit, new_id

pytestmark = pytest.mark.integration


async def test_an_enriched_lead_is_scored_and_published_with_its_profile(scoring: Harness) -> None:
    now = scoring.clock.now()
    lead_id = new_id()
    source = enriched(lead_id, at=now, **good_fit())
    data = source.data.model_copy(update={
        "account": AccountMatch(account_id="acc-1", name="Acme", domain="acme.example", method="domain",
                                confidence=1.0, owner_rep_id="rep-7"),
        "attribution": Attribution(utm_source="google", utm_campaign="q4-demo"),
    })
    event = follow_up(source, data, source="enrichment", subject=lead_id)  # type: ignore[arg-type]
    await scoring.send(event)

    [published] = await scoring.scored.wait_for_count(lead_id, 1)
    scored = published.data
    assert isinstance(scored, LeadScored)
    assert published.correlation_id == event.correlation_id
    assert published.lead_captured_at == event.lead_captured_at
    assert scored.model_version == "b2b-saas-default.v1"
    assert scored.trigger == "enriched"
    assert (scored.fit_grade, scored.tier, scored.is_mql) == ("A", "hot", True)
    assert scored.lifecycle_stage == "mql" and scored.previous_stage == "lead"
    assert scored.stage_changed_at == now
    assert scored.form_key == "demo"
    assert scored.account is not None and scored.account.owner_rep_id == "rep-7"
    assert scored.attribution.utm_campaign == "q4-demo"
    assert scored.profile.email == f"{lead_id}@acme.example"
    assert sum(line.points for line in scored.breakdown) == pytest.approx(scored.score)
    assert {"industry_core", "demo_form", "known_account"} <= {line.rule_id for line in scored.breakdown}


async def test_a_duplicate_form_fill_carries_duplicate_of_and_scores_the_canonical_lead(scoring: Harness) -> None:
    now = scoring.clock.now()
    lead_id = new_id()
    await scoring.send(enriched(lead_id, at=now, form_key="newsletter", industry="Retail"))
    await scoring.scored.wait_for_count(lead_id, 1)

    second_fill = new_id("fill")
    event = enriched(lead_id, at=now, form_key="newsletter", captured_lead_id=second_fill, industry="Retail")
    dup: LeadEnriched = event.data.model_copy(update={"duplicate_of": lead_id})
    await scoring.send(follow_up(event, dup, source="enrichment", subject=lead_id))  # type: ignore[arg-type]

    first, second = await scoring.scored.wait_for_count(lead_id, 2)
    assert second.data.duplicate_of == lead_id
    other_form = {line.rule_id: line for line in second.data.breakdown}["other_form"]
    assert other_form.reason.startswith("Filled in a form (2 x form_submission)")
    assert second.data.score == first.data.score + 10

    response = await scoring.get(f"/v1/leads/{second_fill}/score")
    assert response.status_code == 200, response.text
    assert response.json()["lead_id"] == lead_id
