"""Enrichment's use cases through an in-memory store: a fill becomes a lead or merges into the lead of its
email, matches an account by domain or name (never by a mail service's domain), and takes firmographics
from the directory or the provider."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx

from leadflow_contracts import Event, LeadCaptured, LeadEnriched
from leadflow_enrichment import normalize
from leadflow_enrichment.bootstrap import Deps
from leadflow_enrichment.domain import Firmographics
from leadflow_enrichment.handlers import enrich_captured_leads, prefetch_firmographics
from leadflow_enrichment.provider import CircuitBreaker, HttpFirmographicsProvider, Lookup, TtlCache
from leadflow_kit.fakes import RecordingOutbox, fake_unit_of_work

from .fakes import FakeEnrichmentStore, captured, fake_deps

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


async def enrich(deps: Deps, *events: Event[LeadCaptured], prepared: dict[str, Any] | None = None,
                 ) -> RecordingOutbox:
    uow, outbox, _ = fake_unit_of_work(deps, NOW, prepared)
    await enrich_captured_leads(list(events), uow)
    return outbox


def published(outbox: RecordingOutbox) -> list[LeadEnriched]:
    found = [event.data for event in outbox.of_type(LeadEnriched.EVENT_TYPE)]
    assert all(isinstance(data, LeadEnriched) for data in found)
    return found


def sample(deps: Deps, name: str, **labels: str) -> float | None:
    return deps.platform.metrics.registry.get_sample_value(name, {"service": "enrichment", **labels})


def provider_answering(asked: list[str], status: int = 200) -> HttpFirmographicsProvider:
    """A provider over an in-process transport that records the domains it is asked about."""

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params["domain"])
        return httpx.Response(status, json={"name": "Provided", "industry": "Robotics", "employee_count": "75",
                                            "country": "Canada"})

    return HttpFirmographicsProvider(
        "http://provider.test/v1/companies", client=httpx.AsyncClient(transport=httpx.MockTransport(answer)),
        timeout_seconds=1.0, retries=0, retry_backoff_seconds=0.0, breaker=CircuitBreaker(5, 30.0),
        cache=TtlCache(60.0, 100))


# ---- a fill becomes a lead, a repeat fill merges -------------------------------------------------------


async def test_first_fill_of_an_email_becomes_a_lead_published_under_its_own_id():
    store = FakeEnrichmentStore()
    deps = fake_deps(store)
    event = captured(email="Ada@ACME.com", first_name="ada", last_name="LOVELACE", job_title="VP Marketing")
    outbox = await enrich(deps, event)
    [enriched] = published(outbox)
    lead_id = event.data.lead_id
    assert (enriched.lead_id, enriched.captured_lead_id, enriched.duplicate_of) == (lead_id, lead_id, None)
    assert (enriched.profile.email, enriched.profile.first_name, enriched.profile.seniority) == (
        "ada@acme.com", "Ada", "vp")
    assert outbox.events[0].subject == lead_id
    assert outbox.events[0].correlation_id == event.correlation_id
    assert store.locked_emails == ["ada@acme.com"]
    assert store.fills[lead_id].merged is False
    assert store.fills[lead_id].enriched_at == NOW


async def test_repeat_fill_of_the_same_email_merges_into_the_first_lead():
    store = FakeEnrichmentStore()
    deps = fake_deps(store)
    first, second = captured(email="grace@navy.com"), captured(email="GRACE@Navy.com")
    await enrich(deps, first)
    outbox = await enrich(deps, second)
    [enriched] = published(outbox)
    assert enriched.lead_id == first.data.lead_id
    assert enriched.captured_lead_id == second.data.lead_id
    assert enriched.duplicate_of == first.data.lead_id
    assert outbox.events[0].subject == first.data.lead_id, "keyed by the canonical lead"
    assert store.fills[second.data.lead_id].merged is True
    assert store.fill_count(first.data.lead_id) == 2
    assert sample(deps, "leadflow_enrichment_duplicates_total") == 1.0


async def test_repeat_fill_keeps_what_was_said_first_and_fills_only_the_blanks():
    store = FakeEnrichmentStore()
    deps = fake_deps(store)
    await enrich(deps, captured(email="kj@globex.com", first_name="Katherine", job_title="Director of Research"))
    outbox = await enrich(deps, captured(email="kj@globex.com", first_name="Kathy", phone="+1 757 864 1000",
                                         country="US"))
    [enriched] = published(outbox)
    assert enriched.original.first_name == "Katherine"
    assert enriched.profile.first_name == "Katherine"
    assert enriched.profile.seniority == "director"
    assert enriched.profile.phone_e164 == "+17578641000"
    assert "missing_phone" not in enriched.quality.reasons
    assert store.leads[enriched.lead_id].fill.first_name == "Kathy", "the fill is kept as the person sent it"


async def test_repeat_fill_adds_missing_custom_fields_and_overwrites_none():
    store = FakeEnrichmentStore()
    deps = fake_deps(store)
    await enrich(deps, captured(email="kj@globex.com", custom_fields={"plan": "team", "heard_from": "podcast"}))
    outbox = await enrich(deps, captured(email="kj@globex.com",
                                         custom_fields={"plan": "enterprise", "webinar": "q4"}))
    expected = {"plan": "team", "heard_from": "podcast", "webinar": "q4"}
    assert published(outbox)[0].custom_fields == expected
    assert store.leads[published(outbox)[0].lead_id].custom_fields == expected


async def test_three_fills_of_one_person_stay_one_lead_within_one_batch():
    store = FakeEnrichmentStore()
    deps = fake_deps(store)
    fills = [captured(email="linus@initech.com", first_name=name) for name in ("Linus", "L.", "Lin")]
    outbox = await enrich(deps, *fills)
    assert {data.lead_id for data in published(outbox)} == {fills[0].data.lead_id}
    assert [data.duplicate_of for data in published(outbox)] == [None, fills[0].data.lead_id, fills[0].data.lead_id]
    assert store.fill_count(fills[0].data.lead_id) == 3


async def test_each_address_is_validated_once_unless_the_merged_contact_carries_another(monkeypatch):
    store = FakeEnrichmentStore()
    deps = fake_deps(store)
    read: list[str | None] = []
    validate = normalize.normalize_email
    monkeypatch.setattr(normalize, "normalize_email", lambda raw: read.append(raw) or validate(raw))
    first, again = captured(email="ada@acme.com"), captured(email=" ADA@Acme.com ")
    outbox = await enrich(deps, first, again, captured(email=None), captured(email="not an email"))
    # Each fill's own address once; the repeat fill's merged contact carries the address stored first,
    # which its profile is made from, as before.
    assert read == ["ada@acme.com", " ADA@Acme.com ", None, "not an email", "ada@acme.com"]
    assert [(data.profile.email, data.profile.email_type) for data in published(outbox)] == [
        ("ada@acme.com", "corporate"), ("ada@acme.com", "corporate"), (None, None), (None, "invalid")]


async def test_a_fill_published_again_under_a_new_event_id_is_not_enriched_twice():
    store = FakeEnrichmentStore()
    deps = fake_deps(store)
    first = captured(email="hedy@example.org")
    await enrich(deps, first)
    again = first.model_copy(update={"id": "another-event-id"})
    outbox = await enrich(deps, again)
    assert outbox.events == []
    assert store.fill_count(first.data.lead_id) == 1


async def test_fills_without_a_valid_email_never_merge():
    store = FakeEnrichmentStore()
    deps = fake_deps(store)
    outbox = await enrich(deps, captured(email="not an email", first_name="Ann"), captured(first_name="Ann"))
    leads = [data.lead_id for data in published(outbox)]
    assert len(set(leads)) == 2
    assert [data.duplicate_of for data in published(outbox)] == [None, None]
    assert store.locked_emails == []


# ---- account matching -------------------------------------------------------------------------------


async def test_lead_matches_an_account_by_its_website_domain():
    store = FakeEnrichmentStore()
    store.add_account("acct-acme", "Acme, Inc.", "acme.com", owner_rep_id="rep-ada", tier="enterprise")
    store.add_account("acct-mail", "Mailbox Corp", "mailbox.com")
    deps = fake_deps(store)
    [enriched] = published(await enrich(deps, captured(email="ada@mailbox.com", website="https://www.acme.com/")))
    assert enriched.account is not None
    assert (enriched.account.account_id, enriched.account.method, enriched.account.confidence) == (
        "acct-acme", "domain", 1.0)
    assert (enriched.account.domain, enriched.account.owner_rep_id, enriched.account.tier) == (
        "acme.com", "rep-ada", "enterprise")
    assert sample(deps, "leadflow_enrichment_account_matches_total", method="domain") == 1.0


async def test_lead_matches_an_account_by_its_corporate_mailbox_domain():
    store = FakeEnrichmentStore()
    store.add_account("acct-globex", "Globex Corporation", "globex.com", owner_rep_id="rep-grace")
    deps = fake_deps(store)
    [enriched] = published(await enrich(deps, captured(email="hank@sales.globex.com")))
    assert enriched.account is not None
    assert (enriched.account.account_id, enriched.account.method) == ("acct-globex", "domain")
    assert enriched.profile.company_domain == "globex.com"


async def test_lead_matches_an_account_by_a_misspelt_company_name():
    store = FakeEnrichmentStore()
    store.add_account("acct-engines", "Analytical Engines Ltd", "engines.com", owner_rep_id="rep-ada")
    deps = fake_deps(store)
    [enriched] = published(await enrich(deps, captured(email="ada@gmail.com", company="Analytical Engins")))
    assert enriched.account is not None
    assert (enriched.account.account_id, enriched.account.method) == ("acct-engines", "fuzzy_name")
    assert 0.88 <= enriched.account.confidence < 1.0
    assert enriched.account.domain == "engines.com"
    assert enriched.profile.company_domain == "engines.com", "the account names the company's domain"


async def test_a_company_name_below_the_threshold_matches_no_account():
    store = FakeEnrichmentStore()
    store.add_account("acct-engines", "Analytical Engines Ltd", "engines.com")
    deps = fake_deps(store)
    [enriched] = published(await enrich(deps, captured(email="bob@gmail.com", company="Analog Devices")))
    assert enriched.account is None
    assert "no_account_match" in enriched.quality.reasons
    assert sample(deps, "leadflow_enrichment_account_matches_total", method="none") == 1.0


async def test_a_free_mail_domain_never_matches_an_account_even_one_that_holds_it():
    store = FakeEnrichmentStore()
    # An older import gave the mail service's domain to an account; matching must still ignore it.
    store.add_account("acct-dirty", "Dirty Import", "gmail.com", owner_rep_id="rep-ada")
    deps = fake_deps(store)
    [enriched] = published(await enrich(deps, captured(email="someone@gmail.com", website="gmail.com")))
    assert enriched.account is None
    assert enriched.profile.email_type == "free"
    assert enriched.profile.company_domain is None
    assert {"free_email", "no_account_match"} <= set(enriched.quality.reasons)


async def test_a_disposable_mail_domain_never_matches_an_account():
    store = FakeEnrichmentStore()
    store.add_account("acct-dirty", "Dirty Import", "mailinator.com")
    deps = fake_deps(store)
    [enriched] = published(await enrich(deps, captured(email="temp@mailinator.com")))
    assert enriched.account is None
    assert "disposable_email" in enriched.quality.reasons


async def test_a_directory_change_is_seen_by_the_next_fill():
    store = FakeEnrichmentStore()
    store.add_account("acct-old", "Old Name Holdings", "old.com")
    deps = fake_deps(store)
    [before] = published(await enrich(deps, captured(email="a@gmail.com", company="Brand New Widgets")))
    store.add_account("acct-new", "Brand New Widgets", "widgets.com")
    [after] = published(await enrich(deps, captured(email="b@gmail.com", company="Brand New Widgets")))
    assert before.account is None
    assert after.account is not None and after.account.account_id == "acct-new"


# ---- firmographics ----------------------------------------------------------------------------------


async def test_the_accounts_firmographics_fill_what_the_form_left_blank():
    store = FakeEnrichmentStore()
    store.add_account("acct-initech", "Initech GmbH", "initech.com", industry="Financial Services",
                      employee_count=320, annual_revenue=45e6, country="DE")
    deps = fake_deps(store)
    [enriched] = published(await enrich(deps, captured(email="peter@initech.com", country="Austria")))
    profile = enriched.profile
    assert (profile.company, profile.industry, profile.employee_count, profile.annual_revenue) == (
        "Initech GmbH", "Financial Services", 320, 45e6)
    assert profile.country == "AT", "what the person typed is kept"
    assert "missing_firmographics" not in enriched.quality.reasons


async def test_a_complete_directory_account_means_the_provider_is_not_asked():
    store = FakeEnrichmentStore()
    store.add_account("acct-acme", "Acme", "acme.com", industry="Software", employee_count=1200)
    asked: list[str] = []
    deps = fake_deps(store, provider_answering(asked))
    [enriched] = published(await enrich(deps, captured(email="ada@acme.com")))
    assert asked == []
    assert enriched.partial is False


async def test_the_prefetched_provider_answer_is_applied_without_asking_again():
    store = FakeEnrichmentStore()
    asked: list[str] = []
    deps = fake_deps(store, provider_answering(asked))
    event = captured(email="ann@rockets.com")
    facts = Firmographics(name="Rockets", industry="Aerospace", employee_count=40, country="US")
    prepared = {f"firmographics:{event.id}": ("rockets.com", Lookup(facts, seconds=0.25))}
    [enriched] = published(await enrich(deps, event, prepared=prepared))
    assert asked == []
    assert (enriched.profile.company, enriched.profile.industry, enriched.profile.employee_count) == (
        "Rockets", "Aerospace", 40)
    assert enriched.partial is False
    assert store.fills[event.data.lead_id].enrichment_ms >= 250, "the lookup's time counts towards enrichment"
    assert sample(deps, "leadflow_enrichment_provider_lookups_total", outcome="answered") == 1.0


async def test_a_provider_failure_publishes_the_lead_partial():
    store = FakeEnrichmentStore()
    deps = fake_deps(store, provider_answering([]))
    event = captured(email="ann@slow.com")
    prepared = {f"firmographics:{event.id}": ("slow.com", Lookup(None, "provider_timeout"))}
    [enriched] = published(await enrich(deps, event, prepared=prepared))
    assert (enriched.partial, enriched.partial_reasons) == (True, ["provider_timeout"])
    assert "partial_enrichment" in enriched.quality.reasons
    assert store.fills[event.data.lead_id].partial_reasons == ["provider_timeout"]
    assert sample(deps, "leadflow_enrichment_partial_total", reason="provider_timeout") == 1.0


async def test_a_fill_whose_domain_was_not_prefetched_asks_the_provider_itself():
    store = FakeEnrichmentStore()
    asked: list[str] = []
    deps = fake_deps(store, provider_answering(asked))
    event = captured(email="ann@gmail.com", website="https://newco.com")
    # The batch's prefetch looked up another domain (a repeat fill completed from an earlier one).
    prepared = {f"firmographics:{event.id}": ("other.com", Lookup(None, "provider_error"))}
    [enriched] = published(await enrich(deps, event, prepared=prepared))
    assert asked == ["newco.com"]
    assert (enriched.profile.industry, enriched.profile.employee_count, enriched.profile.country) == (
        "Robotics", 75, "CA")
    assert enriched.partial is False


async def test_without_a_provider_nothing_is_prefetched_and_the_lead_is_not_partial():
    store = FakeEnrichmentStore()
    deps = fake_deps(store)
    event = captured(email="ann@unknown-company.com")
    assert await prefetch_firmographics([event], deps) == {}
    [enriched] = published(await enrich(deps, event))
    assert enriched.partial is False
    assert "missing_firmographics" in enriched.quality.reasons


# ---- a batch -----------------------------------------------------------------------------------------


async def test_fills_in_one_batch_leave_what_they_leave_one_by_one_in_a_few_statements():
    first = captured(email="ada@acme.com", first_name="Ada", custom_fields={"plan": "team"})
    story = [
        first,
        captured(email="grace@gmail.com", company="Globex Corp"),
        captured(email="ADA@acme.com", first_name="Augusta", phone="+44 20 7946 0958", custom_fields={"x": "1"}),
        first.model_copy(update={"id": "published-again"}),
        captured(first_name="No Email"),
        captured(email="grace@gmail.com", job_title="CTO"),
        captured(email="ada@acme.com", country="GB"),
    ]
    alone, together = FakeEnrichmentStore(), FakeEnrichmentStore()
    for store in (alone, together):
        store.add_account("acct-acme", "Acme, Inc.", "acme.com", owner_rep_id="rep-ada")
        store.add_account("acct-globex", "Globex Corporation", "globex.com", owner_rep_id="rep-grace")
    alone_deps, together_deps = fake_deps(alone), fake_deps(together)
    one_by_one = [data for event in story for data in published(await enrich(alone_deps, event))]
    batched = published(await enrich(together_deps, *story))

    assert batched == one_by_one
    assert [data.duplicate_of for data in batched] == [None, None, first.data.lead_id, None,
                                                       batched[1].lead_id, first.data.lead_id]
    assert batched[5].original.phone == "+44 20 7946 0958" and batched[5].original.first_name == "Ada"
    assert batched[1].account is not None and batched[1].account.method == "fuzzy_name"

    def kept(store: FakeEnrichmentStore) -> tuple[Any, Any]:
        return ({k: replace(v, enrichment_ms=0) for k, v in store.leads.items()},
                {k: replace(v, enrichment_ms=0) for k, v in store.fills.items()})

    assert kept(together) == kept(alone)
    # Locks, look-up, accounts by domain, named accounts, write: for the batch, not for each fill.
    assert together.statements == 5
    assert alone.statements == 24
