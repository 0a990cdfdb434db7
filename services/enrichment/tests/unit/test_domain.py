"""Enrichment's rules without I/O: merging repeat fills, firmographics, quality, fuzzy names, CSV rows,
the provider's breaker and cache."""

from __future__ import annotations

import pytest

from leadflow_contracts import AccountMatch, LeadContact
from leadflow_enrichment import accounts, domain
from leadflow_enrichment.directory import NameIndex
from leadflow_enrichment.provider import CircuitBreaker, TtlCache, parse_firmographics


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_repeat_fill_keeps_what_was_said_and_fills_blanks_from_newer_data():
    first = LeadContact(email="ada@acme.com", first_name="Ada", job_title="CTO", phone="  ")
    second = LeadContact(email="ADA@acme.com", first_name="Augusta", phone="+1 415 555 2671", country="US")
    merged = domain.fill_blanks(first, second)
    assert merged.first_name == "Ada"
    assert merged.job_title == "CTO"
    assert merged.phone == "+1 415 555 2671"
    assert merged.country == "US"
    assert merged.email == "ada@acme.com"


def test_repeat_fill_adds_custom_fields_but_overwrites_none():
    first = {"plan": "team", "budget": " ", "heard_from": "podcast"}
    second = {"plan": "enterprise", "budget": "100k", "webinar": "q4", "heard_from": ""}
    assert domain.fill_blank_custom_fields(first, second) == {
        "plan": "team", "budget": "100k", "heard_from": "podcast", "webinar": "q4"}


def test_email_key_is_the_case_insensitive_valid_address():
    assert domain.email_key(" Ada@ACME.com ") == domain.email_key("ada@acme.com") == "ada@acme.com"
    assert domain.email_key("not an email") is None


def test_complete_contact_scores_full_quality():
    contact = LeadContact(email="ada@acme.com", first_name="Ada", last_name="Lovelace", phone="+14155552671",
                          company="Acme", job_title="CTO", country="US", industry="Software", employee_count="1200")
    normalized = domain.normalize_contact(contact)
    match = AccountMatch(account_id="a", name="Acme", method="domain", confidence=1.0)
    quality = domain.quality(normalized.profile, contact, normalized.problems, match, [])
    assert (quality.score, quality.reasons) == (100, [])


def test_poor_contact_loses_points_with_every_reason_named():
    contact = LeadContact(email="temp@mailinator.com", phone="12345", country="Atlantis")
    normalized = domain.normalize_contact(contact)
    quality = domain.quality(normalized.profile, contact, normalized.problems, None, ["provider_timeout"])
    assert set(quality.reasons) == {
        "invalid_phone", "unrecognized_country", "disposable_email", "missing_name", "missing_company",
        "missing_job_title", "no_account_match", "missing_firmographics", "partial_enrichment",
    }
    assert quality.score == 100 - sum(domain.QUALITY_PENALTIES[r] for r in quality.reasons)


def test_missing_email_and_invalid_email_are_different_reasons():
    empty = LeadContact(first_name="Ada")
    bad = LeadContact(email="ada@", first_name="Ada")
    assert "missing_email" in domain.quality(domain.normalize_contact(empty).profile, empty, (), None, []).reasons
    normalized = domain.normalize_contact(bad)
    reasons = domain.quality(normalized.profile, bad, normalized.problems, None, []).reasons
    assert "invalid_email" in reasons
    assert "missing_email" not in reasons
    assert normalized.profile.email_type == "invalid"


def test_a_fill_wrong_in_every_field_scores_in_the_lowest_band():
    contact = LeadContact(email="x@", phone="1", country="nowhere", website="not a site")
    normalized = domain.normalize_contact(contact)
    quality = domain.quality(normalized.profile, contact, normalized.problems, None, ["provider_error"])
    assert 0 <= quality.score <= 5
    assert {"invalid_email", "invalid_phone", "unrecognized_country", "invalid_website"} <= set(quality.reasons)


def test_firmographics_fill_blanks_but_keep_what_the_person_typed():
    profile = domain.normalize_contact(LeadContact(email="a@acme.com", employee_count="40")).profile
    facts = domain.Firmographics(name="Acme", industry="Software", employee_count=1200, annual_revenue=5e6,
                                 country="US")
    enriched = domain.apply_firmographics(profile, facts)
    assert (enriched.company, enriched.industry, enriched.employee_count, enriched.annual_revenue,
            enriched.country) == ("Acme", "Software", 40, 5e6, "US")
    assert domain.apply_firmographics(profile, None) == profile


def test_company_domain_prefers_the_website_then_a_corporate_mailbox():
    both = domain.normalize_contact(LeadContact(email="a@mail.acme.com", website="https://www.acme-corp.io"))
    assert both.profile.company_domain == "acme-corp.io"
    mailbox = domain.normalize_contact(LeadContact(email="a@mail.acme.com"))
    assert mailbox.profile.company_domain == "acme.com"
    free = domain.normalize_contact(LeadContact(email="a@gmail.com"))
    assert free.profile.company_domain is None
    mail_service_site = domain.normalize_contact(LeadContact(email="a@acme.com", website="https://gmail.com"))
    assert mail_service_site.profile.company_domain == "acme.com"


def test_phone_is_read_in_the_leads_country_then_the_default_region():
    german = domain.normalize_contact(LeadContact(phone="030 901820", country="Deutschland"))
    assert german.profile.phone_e164 == "+4930901820"
    default = domain.normalize_contact(LeadContact(phone="(415) 555-2671"), default_phone_region="US")
    assert default.profile.phone_e164 == "+14155552671"


NAMES = [("a1", "acme"), ("a2", "acme rockets"), ("a3", "globex"), ("a4", "initech"), ("a5", "umbrella")]


@pytest.mark.parametrize(("typed", "account_id"), [
    ("acme rockets", "a2"), ("rockets acme", "a2"), ("acme rocket", "a2"), ("globexx", "a3"), ("initech", "a4"),
    ("umbrela", "a5"), ("acme", "a1"), ("hooli", None), ("acme rockets and missiles international", None),
])
def test_fuzzy_name_index_finds_the_best_account_above_the_threshold(typed, account_id):
    best = NameIndex(NAMES).best(typed, 85)
    assert (best[0] if best else None) == account_id
    if best is not None:
        assert 85 <= best[1] <= 100


def test_empty_name_index_matches_nothing():
    assert NameIndex().best("acme", 50) is None


def test_circuit_opens_after_failures_and_half_opens_after_the_reset_time():
    clock = FakeTime()
    breaker = CircuitBreaker(failures=3, reset_seconds=10, monotonic=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.failed()
    assert breaker.state == "closed"
    breaker.failed()
    assert breaker.state == "open"
    assert not breaker.allow()
    clock.now += 10
    assert breaker.state == "half_open"
    assert breaker.allow()
    assert not breaker.allow(), "only one trial call while half-open"
    breaker.failed()
    assert breaker.state == "open"
    clock.now += 10
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.state == "closed"
    assert breaker.allow()


def test_an_abandoned_trial_call_lets_the_next_call_try():
    clock = FakeTime()
    breaker = CircuitBreaker(failures=1, reset_seconds=5, monotonic=clock)
    breaker.failed()
    clock.now += 5
    assert breaker.allow()
    breaker.abandoned()
    assert breaker.allow()


def test_ttl_cache_expires_and_evicts_least_recently_used():
    clock = FakeTime()
    cache = TtlCache(ttl_seconds=60, max_size=2, monotonic=clock)
    facts = domain.Firmographics(name="Acme")
    cache.put("acme.com", facts)
    cache.put("unknown.com", None)
    assert cache.get("acme.com") == (True, facts)
    assert cache.get("unknown.com") == (True, None)
    cache.get("acme.com")
    cache.put("globex.com", None)
    assert cache.get("unknown.com") == (False, None)
    clock.now += 61
    assert cache.get("acme.com") == (False, None)


def test_provider_answer_is_normalized():
    facts = parse_firmographics({"name": "Acme", "industry": "Software", "employee_count": "1,200",
                                 "annual_revenue": "$250M", "country": "United States"})
    assert facts == domain.Firmographics("Acme", "Software", 1200, 250e6, "US")
    with pytest.raises(ValueError):
        parse_firmographics(["not", "an", "object"])


def test_csv_rows_become_accounts_and_bad_rows_are_reported_by_line():
    parsed = accounts.parse_accounts_csv(
        "Account_ID,Name,Domain,Industry,Employees,Revenue,Country,Owner,Tier\n"
        "acct-1,\"Acme, Inc.\",acme.com;www.acme.io,Software,\"1,200\",$250M,USA,rep-ada,enterprise\n"
        "acct-2,Globex,globex.com,,,,Atlantis,,\n"
        ",,,,,,,,\n"
        "acct-3,,initech.de,,,,,,\n"
    )
    assert [a.id for a in parsed.accounts] == ["acct-1"]
    acme = parsed.accounts[0]
    assert (acme.name, acme.domains, acme.employee_count, acme.annual_revenue, acme.country, acme.owner_rep_id) == (
        "Acme, Inc.", ["acme.com", "acme.io"], 1200, 250e6, "US", "rep-ada")
    assert parsed.rejected == 2
    assert {(e.line, e.field) for e in parsed.errors} == {(3, "country"), (5, "name")}


def test_csv_without_a_name_column_is_refused():
    with pytest.raises(accounts.CsvUnreadable):
        accounts.parse_accounts_csv("id,domains\n1,acme.com\n")
