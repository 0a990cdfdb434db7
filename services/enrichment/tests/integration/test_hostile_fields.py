"""Fields an outsider filled to hurt: each is as long as capture lets through (2,000 characters) and
built against the normalizers (a company repeating a legal suffix once pinned the event loop for
hours). The real consumer enriches such a lead like any other, and the next lead right after it."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

FIELD_LIMIT = 2000


def worst(piece: str, prefix: str = "") -> str:
    return (prefix + piece * FIELD_LIMIT)[:FIELD_LIMIT]


@pytest.mark.parametrize("suffixes", [" co kg", " Co. KG,", " GmbH & Co", " s.a. de c.v."])
async def test_a_company_repeating_a_legal_suffix_is_enriched_like_any_other(enrichment, suffixes):
    lead_id = await enrichment.capture(email="mallory@gmail.com", company=worst(suffixes, "Acme"),
                                       job_title="VP Sales")
    data = (await enrichment.enriched(lead_id)).data
    assert data.profile.company == "Acme"
    assert (data.profile.seniority, data.profile.function) == ("vp", "sales")
    assert data.account is not None and data.account.account_id == "acct-acme"

    after = await enrichment.capture(email="ada@example-engines.co.uk", company="Example Engines Ltd.")
    assert (await enrichment.enriched(after)).data.profile.company == "Example Engines"


async def test_every_field_at_its_worst_at_once_is_enriched(enrichment):
    lead_id = await enrichment.capture(
        email=worst("x@a."), first_name=worst("A "), last_name=worst("van der "), full_name=worst("mr. a, "),
        company=worst(" co kg", "Acme"), job_title=worst("chief "), country=worst("the "), state=worst("n / "),
        phone=worst("1-("), website=worst("http://a."), employee_count=worst("9"), annual_revenue=worst("1 1,"),
        city=worst("a "), industry=worst("a "),
    )
    data = (await enrichment.enriched(lead_id)).data
    assert data.profile.company == "Acme"
    assert data.profile.seniority == "c_level"
    assert data.profile.email_type == "invalid" and data.profile.phone_e164 is None
    # 2,000 nines is no head count (it used to fail the lead: int() of infinity); the matched account's is kept.
    assert data.account is not None and data.account.account_id == "acct-acme"
    assert data.profile.employee_count == 1200
    assert data.profile.first_name == worst("A ").strip()
    assert {"invalid_email", "invalid_phone", "unrecognized_country"} <= set(data.quality.reasons)
